"""Local adaptation: fine-tuning is a real local fit of its own, and never changes training."""

import csv
import math
import tempfile

import numpy as np
import pytest
import torch
from conftest import metrics_without_timings, run_cli

from fedrl_lightning import AgentPopulation, FederatedTrainer, Reinforce
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.evaluation import evaluate_personalized
from fedrl_lightning.federation.local_adaptation import LocalAdaptation
from fedrl_lightning.federation.local_fit import LocalFit, fit_agent
from fedrl_lightning.run.checkpoints import load_checkpoint
from fedrl_lightning.run.console import quiet_lightning
from fedrl_lightning.seeding import Stream, derive_seed

FINETUNED = "eval_reward_finetuned"


def population(**options):
    return AgentPopulation(num_agents=4, max_episode_steps=30, **options)


def fit(finetune_episodes=0, lr=0.01, **options):
    """Four rounds of 2 of 4 Simple agents: the rows, the final weights, the trainer."""
    agents = population(**options)
    trainer = FederatedTrainer(
        num_rounds=4,
        agents_per_round=2,
        episodes_per_round=3,
        eval_episodes=3,
        eval_agents=3,
        finetune_episodes=finetune_episodes,
        default_root_dir=tempfile.mkdtemp(),
        enable_progress_bar=False,
        seed=5,
    )
    torch.manual_seed(0)
    model = Reinforce.for_population(agents, hidden_dim=8, lr=lr)
    with quiet_lightning(verbose=False):
        history = trainer.fit(model, agents)
    return history, model.state_dict(), trainer


def training_columns(row):
    return {k: v for k, v in row.items() if not k.startswith(FINETUNED) and k != "round_time"}


@pytest.fixture(scope="module")
def runs():
    return {"plain": fit(), "finetuned": fit(finetune_episodes=4)}


def test_finetuning_does_not_change_training(runs):
    plain, plain_weights, _ = runs["plain"]
    tuned, tuned_weights, _ = runs["finetuned"]
    assert [training_columns(row) for row in tuned] == [training_columns(row) for row in plain]
    assert tuned_weights.keys() == plain_weights.keys()
    for key, value in plain_weights.items():
        assert torch.equal(tuned_weights[key], value), key
    assert not any(key.startswith(FINETUNED) for key in plain[0])


def test_finetuned_columns_follow_the_personalized_naming(runs):
    rows, _, trainer = runs["finetuned"]
    evaluated = [0, 2, 3]  # 3 of 4 agents, evenly spaced
    per_agent = [rows[-1][f"{FINETUNED}_per_agent/{a}"] for a in evaluated]
    assert rows[-1][FINETUNED] == pytest.approx(np.mean(per_agent))
    assert rows[-1][f"{FINETUNED}_min"] == min(per_agent)
    numeric = [k for k, v in rows[-1].items() if isinstance(v, int | float)]
    assert set(numeric) <= set(trainer.metric_names())
    assert f"{FINETUNED}_per_agent/2" in trainer.metric_names()  # EarlyStopping can watch it


def test_finetuning_is_deterministic(runs):
    again, _, _ = fit(finetune_episodes=4)
    assert [{k: v for k, v in row.items() if k != "round_time"} for row in again] == [
        {k: v for k, v in row.items() if k != "round_time"} for row in runs["finetuned"][0]
    ]


def test_a_finetune_is_a_local_fit_from_streams_of_its_own(tmp_path):
    agents = population()
    torch.manual_seed(0)
    model = Reinforce.for_population(agents, hidden_dim=8, lr=0.05)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    adaptation = LocalAdaptation(model, agents, episodes=3)
    with quiet_lightning(verbose=False):
        adapted = adaptation.adapt(state, agent=1, seed=5, round_idx=2)
        by_hand = fit_agent(
            LocalFit(
                agent_id=1,
                round_idx=2,
                run_seed=derive_seed(5, 2, 1, Stream.FINETUNE),
                module_class=Reinforce,
                model_hparams=dict(model.hparams),
                global_state=state,
                num_episodes=3,
                checkpoint_path=tmp_path / "by_hand.ckpt",
                trainer_kwargs={"enable_progress_bar": False, "enable_model_summary": False},
            ),
            agents,
        )
        training = fit_agent(  # the agent's own fit in round 2, from the training streams
            LocalFit(
                agent_id=1,
                round_idx=2,
                run_seed=5,
                module_class=Reinforce,
                model_hparams=dict(model.hparams),
                global_state=state,
                num_episodes=3,
                checkpoint_path=tmp_path / "training.ckpt",
                trainer_kwargs={"enable_progress_bar": False, "enable_model_summary": False},
            ),
            agents,
        )
    expected = load_checkpoint(by_hand)["state_dict"]
    for key, value in expected.items():
        assert torch.equal(adapted[key], value), key
    assert not torch.equal(adapted["policy.head.weight"], state["policy.head.weight"])
    other = load_checkpoint(training)["state_dict"]
    assert not torch.equal(adapted["policy.head.weight"], other["policy.head.weight"])
    adaptation.close()


def test_finetuning_restores_torchs_generator():
    agents = population()
    model = Reinforce.for_population(agents, hidden_dim=8)
    adaptation = LocalAdaptation(model, agents, episodes=2)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with quiet_lightning(verbose=False):
        adaptation.adapt(model.state_dict(), agent=0, seed=5, round_idx=1)
    assert torch.equal(torch.rand(3), expected)
    adaptation.close()


def test_a_byzantine_agent_finetunes_honestly():
    honest, attacked = population(), population(byzantine={"agents": [1], "attack": "sign_flip"})
    model = Reinforce.for_population(honest, hidden_dim=8, lr=0.05)
    results = []
    with quiet_lightning(verbose=False):
        for agents in (honest, attacked):
            adaptation = LocalAdaptation(model, agents, episodes=3)
            results.append(adaptation.adapt(model.state_dict(), agent=1, seed=5, round_idx=1))
            adaptation.close()
    assert attacked.byzantine.attack_of(1) == "sign_flip"  # the run's population is untouched
    for key, value in results[0].items():
        assert torch.equal(results[1][key], value), key


def test_with_lr_zero_the_finetuned_policy_plays_the_global_policys_episodes():
    """Fine-tuning that cannot move: the same returns as the global policy on those episodes."""
    rows, weights, _ = fit(finetune_episodes=2, lr=0.0)
    agents = population()
    model = Reinforce.for_population(agents, hidden_dim=8, lr=0.0)
    model.load_state_dict(weights)
    envs = {a: agents.make_vector_env([a] * 3) for a in (0, 2, 3)}
    returns = evaluate_personalized(lambda a: model.policy, envs, 3, run_seed=5, round_idx=4)
    for env in envs.values():
        env.close()
    assert [rows[-1][f"{FINETUNED}_per_agent/{a}"] for a in (0, 2, 3)] == returns.tolist()


def test_negative_finetune_episodes_are_refused():
    with pytest.raises(ConfigError, match="trainer.finetune_episodes must not be negative"):
        FederatedTrainer(finetune_episodes=-1)


def test_each_agent_finetunes_its_tasks_policy_of_its_tasks_sizes(tmp_path):
    """CartPole and Acrobot agents, task-scoped input and output layers: in fit and evaluate."""
    tasks = "[{env_id: CartPole-v1}, {env_id: Acrobot-v1}]"
    args = ["--model", "PPO", "--model.num_layers", "2", "--model.hidden_dim", "8"]
    args += ["--data.tasks", tasks, "--data.num_agents", "2", "--data.max_episode_steps", "30"]
    args += ["--trainer.num_rounds", "2", "--trainer.agents_per_round", "2"]
    args += ["--trainer.episodes_per_round", "2", "--trainer.eval_episodes", "2"]
    args += ["--trainer.server", "Shared"]
    args += ["--trainer.server.task", "[policy.hidden.*, policy.head.*, critic.0.*]"]
    result = run_cli("fit", *args, "--trainer.finetune_episodes", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (row, _) = metrics_without_timings(tmp_path)
    tuned = [float(row[f"{FINETUNED}_per_agent/{a}"]) for a in (0, 1)]
    assert all(math.isfinite(r) for r in tuned)
    assert tuned[1] <= 0 < tuned[0]  # Acrobot's returns are negative, CartPole's positive
    evaluated = run_cli(
        "evaluate", "--episodes", "2", "--finetune_episodes", "2", "--out", "t.csv", cwd=tmp_path
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert "each task's global policy fine-tuned for 2 episodes" in evaluated.stdout
    with open(tmp_path / "t.csv") as f:
        assert [r["task"] for r in csv.DictReader(f)] == ["0", "1"]
