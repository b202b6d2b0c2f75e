import math

import numpy as np
import pytest
import torch
from conftest import TRAINER_KWARGS, fit_cartpole_federation

from fedrl_lightning import AgentPopulation, EpisodeBatch
from fedrl_lightning.federation.local_fit import LocalFit, fit_agent
from fedrl_lightning.learners import A2C, PPO
from fedrl_lightning.run.checkpoints import load_checkpoint
from fedrl_lightning.run.console import quiet_lightning

CARTPOLE_RANDOM_RETURN = 22.0


def critic_reading_first_feature() -> A2C:
    """An A2C whose separate critic gives ``V(s) = relu(s[0])``."""
    module = A2C(observation_dim=2, hidden_dim=2, gamma=0.9, gae_lambda=1.0)
    with torch.no_grad():
        for layer in (module.critic[0], module.critic[2]):
            layer.weight.zero_()
            layer.bias.zero_()
            layer.weight[0, 0] = 1.0
    return module


def test_critic_targets_bootstrap_after_truncation_and_not_after_termination():
    module = critic_reading_first_feature()
    # Two identical two-step episodes, rewards 1 and 1, V(s0) = 1, V(s1) = 2; the observation
    # after the last step has V = 5. The first is truncated, the second terminated.
    observations = torch.tensor([[[1.0, 0.0], [2.0, 0.0]]] * 2)
    batch = EpisodeBatch(
        observations=observations,
        actions=torch.zeros(2, 2, dtype=torch.int64),
        returns=torch.zeros(2, 2),
        mask=torch.ones(2, 2, dtype=torch.bool),
        episode_returns=torch.tensor([2.0, 2.0]),
        rewards=torch.ones(2, 2),
        terminated=torch.tensor([False, True]),
        truncated=torch.tensor([True, False]),
        final_observations=torch.tensor([[5.0, 0.0], [5.0, 0.0]]),
        log_probs=torch.zeros(2, 2),
    )
    values = module.value(batch.observations)
    assert values.tolist() == [[1.0, 2.0], [1.0, 2.0]]
    advantages, returns = module.advantages_and_returns(batch, values)
    # Truncated: R1 = 1 + 0.9 * V(final) = 5.5, R0 = 1 + 0.9 * 5.5 = 5.95.
    # Terminated: R1 = 1, R0 = 1 + 0.9 * 1 = 1.9.
    assert returns.flatten().tolist() == pytest.approx([5.95, 5.5, 1.9, 1.0])
    assert advantages.flatten().tolist() == pytest.approx([4.95, 3.5, 0.9, -1.0])


def test_proximal_term_covers_the_critic():
    module = A2C(hidden_dim=4)
    anchor = {k: v.clone() for k, v in module.state_dict().items()}
    module.set_proximal_term(anchor, mu=2.0)
    assert module._proximal_term().item() == 0.0
    with torch.no_grad():
        module.critic[2].bias += 0.5
    # mu / 2 * 0.5^2 from the critic's one moved weight.
    assert module._proximal_term().item() == pytest.approx(0.25)


def local_fit(tmp_path, module_class, hparams, agent_id=2, name="agent.ckpt", population=None):
    """One agent's local fit, as a federated round runs it; returns the global and sent states."""
    population = population or AgentPopulation(num_agents=4)
    torch.manual_seed(0)
    module = module_class.for_population(population, **hparams)
    global_state = module.state_dict()
    task = LocalFit(
        agent_id=agent_id,
        round_idx=3,
        run_seed=7,
        module_class=module_class,
        model_hparams=dict(module.hparams),
        global_state=global_state,
        num_episodes=4,
        checkpoint_path=tmp_path / name,
        trainer_kwargs=TRAINER_KWARGS,
    )
    with quiet_lightning(verbose=False):
        path = fit_agent(task, population)
    return global_state, load_checkpoint(path)


@pytest.mark.parametrize(
    ("module_class", "critic", "key"),
    [
        (A2C, "separate", "critic.0.weight"),
        (A2C, "shared", "critic.weight"),
        (PPO, "separate", "critic.0.weight"),
        (PPO, "shared", "critic.weight"),
    ],
)
def test_the_critic_is_in_the_agent_checkpoint_and_trains(tmp_path, module_class, critic, key):
    hparams = {"hidden_dim": 8, "lr": 0.01, "critic": critic}
    start, checkpoint = local_fit(tmp_path, module_class, hparams)
    sent = checkpoint["state_dict"]
    assert sent.keys() == start.keys()
    assert key in sent
    assert not torch.equal(sent[key], start[key])
    assert not torch.equal(sent["policy.head.weight"], start["policy.head.weight"])
    assert checkpoint["agent_stats"]["num_episodes"] == 4
    # A local fit is a function of (run seed, round, agent): the same again, another agent not.
    _, again = local_fit(tmp_path, module_class, hparams, name="again.ckpt")
    _, other = local_fit(tmp_path, module_class, hparams, agent_id=1, name="other.ckpt")
    assert all(torch.equal(sent[k], again["state_dict"][k]) for k in sent)
    assert not torch.equal(sent[key], other["state_dict"][key])
    assert (
        module_class.load_from_checkpoint(tmp_path / "agent.ckpt", weights_only=True).training
        is False
    )


@pytest.mark.parametrize("module_class", [A2C, PPO])
def test_continuous_actions_on_pendulum_stay_in_bounds(tmp_path, module_class):
    pendulum = AgentPopulation(env_id="Pendulum-v1", num_agents=2, max_episode_steps=20)
    hparams = {"hidden_dim": 8, "log_std_init": 2.0}  # std 7.4: samples often leave [-2, 2]
    start, checkpoint = local_fit(tmp_path, module_class, hparams, agent_id=1, population=pendulum)
    assert checkpoint["agent_stats"]["num_steps"] == 4 * 20
    assert math.isfinite(checkpoint["agent_stats"]["mean_return"])
    assert not torch.equal(checkpoint["state_dict"]["critic.0.weight"], start["critic.0.weight"])
    module = module_class.load_from_checkpoint(tmp_path / "agent.ckpt", weights_only=True)
    torch.manual_seed(0)
    actions = module.act(np.random.default_rng(0).normal(size=(500, 3)) * 10)
    assert actions.shape == (500, 1)
    assert actions.min() >= -2.0 and actions.max() <= 2.0
    assert (np.abs(actions) == 2.0).any()


def test_a2c_beats_a_random_policy_on_a_cartpole_federation():
    history, _ = fit_cartpole_federation(
        lambda population: A2C.for_population(
            population, hidden_dim=32, lr=1e-2, gae_lambda=1.0, norm_adv=True
        )
    )
    assert history[-1]["eval_reward"] >= CARTPOLE_RANDOM_RETURN + 60, [
        round(r["eval_reward"]) for r in history
    ]
