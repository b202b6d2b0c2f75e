import numpy as np
import pytest
import torch

from fedrl_lightning import AgentPopulation, FederatedTrainer, Reinforce
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.learners.base import ENV_HPARAMS


@pytest.fixture(scope="module")
def pendulum():
    return AgentPopulation("Pendulum-v1", num_agents=2)


def one_round(tmp_path, **kwargs):
    return FederatedTrainer(
        num_rounds=1,
        agents_per_round=2,
        episodes_per_round=1,
        eval_episodes=1,
        default_root_dir=str(tmp_path),
        enable_progress_bar=False,
        seed=5,
        **kwargs,
    )


def refusal(tmp_path, model, population):
    """The one-line error of fitting ``model`` on ``population``; no run folder is made."""
    with pytest.raises(ConfigError) as caught:
        one_round(tmp_path).fit(model, population)
    assert not (tmp_path / "lightning_logs").exists()
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_default_module_on_pendulum_is_refused_before_the_run_starts(tmp_path, pendulum):
    message = refusal(tmp_path, Reinforce(hidden_dim=8), pendulum)
    assert message == (
        "the model does not fit data.env_id Pendulum-v1: "
        "model.observation_dim is 4, the environment's is 3; "
        "model.continuous is False, the environment's is True; "
        "model.num_actions is 2, the environment's is 1; "
        "build it with Reinforce.for_population(population, ...)"
    )


def test_a_wrong_observation_size_is_the_only_difference_named(tmp_path):
    cartpole = AgentPopulation("CartPole-v1", num_agents=2)
    message = refusal(tmp_path, Reinforce(observation_dim=5, hidden_dim=8), cartpole)
    assert "model.observation_dim is 5, the environment's is 4;" in message
    assert message.count("model.") == 1


def test_other_action_bounds_are_refused(tmp_path, pendulum):
    model = Reinforce(
        observation_dim=3, num_actions=1, continuous=True, action_low=[-1.0], action_high=[2.0]
    )
    message = refusal(tmp_path, model, pendulum)
    assert "model.action_low is [-1.0], the environment's is [-2.0]" in message
    assert "action_high" not in message and "observation_dim" not in message


def test_a_resume_with_a_mismatched_module_leaves_the_run_alone(tmp_path, pendulum):
    cartpole = AgentPopulation("CartPole-v1", num_agents=2)
    torch.manual_seed(0)
    one_round(tmp_path).fit(Reinforce.for_population(cartpole, hidden_dim=8), cartpole)
    run = tmp_path / "lightning_logs"
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match="model.observation_dim is 4, the environment's is 3"):
        one_round(tmp_path).fit(Reinforce(hidden_dim=8), pendulum, ckpt_path="last")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_for_population_fits_a_tiny_pendulum_federation(tmp_path, pendulum):
    torch.manual_seed(0)
    model = Reinforce.for_population(pendulum, hidden_dim=8, lr=0.01)
    assert {name: model.hparams[name] for name in ENV_HPARAMS} == {
        "observation_dim": 3,
        "num_actions": 1,
        "continuous": True,
        "action_low": [-2.0],
        "action_high": [2.0],
    }
    assert model.hparams.hidden_dim == 8 and model.hparams.lr == 0.01
    (row,) = one_round(tmp_path).fit(model, pendulum)
    assert row["episodes"] == 2 and row["env_steps"] == 400  # Pendulum's episodes: 200 steps
    assert -16.3 * 200 <= row["eval_reward"] <= 0  # a step costs at most pi^2 + 0.1 * 64 + 0.004

    trained = Reinforce.load_from_checkpoint(
        tmp_path / "lightning_logs/version_0/checkpoints/last.ckpt"
    )
    action = trained.act(np.zeros(3, np.float32))
    assert action.shape == (1,) and -2 <= action[0] <= 2


def test_for_population_builds_subclasses_and_refuses_given_sizes(pendulum):
    class Wider(Reinforce):
        def __init__(self, width_factor: int = 2, **kwargs) -> None:
            super().__init__(**kwargs)
            self.width_factor = width_factor

    model = Wider.for_population(pendulum, width_factor=3, hidden_dim=8)
    assert type(model) is Wider and model.width_factor == 3
    assert model.hparams.observation_dim == 3 and model.hparams.continuous

    with pytest.raises(ConfigError, match=r"^Reinforce.for_population: observation_dim"):
        Reinforce.for_population(pendulum, observation_dim=3)
