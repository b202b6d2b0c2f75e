"""Each round reports the learners' training metrics, averaged over its agents."""

import math

import pytest
from conftest import fit_cartpole_federation

from fedrl_lightning import A2C, PPO, Reinforce


def fit(learner: type) -> list[dict]:
    history, _ = fit_cartpole_federation(
        lambda population: learner.for_population(population, lr=0.01),
        num_rounds=2,
        num_agents=3,
        episodes_per_round=4,
        eval_episodes=1,
    )
    return history


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
