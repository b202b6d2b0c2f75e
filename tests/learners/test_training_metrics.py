"""Each round reports the learners' training metrics, averaged over its agents."""

import math
import tempfile

import pytest
import torch

from fedrl_lightning import A2C, PPO, AgentPopulation, FederatedTrainer, Reinforce


def fit(learner: type) -> list[dict]:
    population = AgentPopulation(env_id="CartPole-v1", num_agents=3)
    trainer = FederatedTrainer(
        num_rounds=2,
        agents_per_round=2,
        episodes_per_round=4,
        eval_episodes=1,
        default_root_dir=tempfile.mkdtemp(),
        enable_progress_bar=False,
        seed=0,
    )
    torch.manual_seed(0)
    return trainer.fit(learner.for_population(population, lr=0.01), population)


@pytest.mark.parametrize("learner", [Reinforce, A2C, PPO])
def test_rounds_report_loss_and_entropy(learner):
    for row in fit(learner):
        assert math.isfinite(row["train_loss"])
        assert 0.0 < row["train_entropy"] <= math.log(2) + 1e-6  # two actions


def test_ppo_reports_its_kl_and_clip_fraction():
    rows = fit(PPO)
    for row in rows:
        assert 0.0 <= row["train_approx_kl"] < 1.0
        assert 0.0 <= row["train_clip_fraction"] <= 1.0
    assert any(row["train_approx_kl"] > 0 for row in rows)  # the policy moved off the rollout's
