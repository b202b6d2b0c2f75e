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


def test_a_linear_lr_schedule_anneals_the_learners_rate_by_round():
    seen = []

    class Recording(PPO):
        def training_step(self, batch, batch_idx):
            seen.append(self.optimizers().param_groups[0]["lr"])
            return super().training_step(batch, batch_idx)

    fit_cartpole_federation(
        lambda population: Recording.for_population(population, lr=0.01),
        num_rounds=4,
        num_agents=2,
        episodes_per_round=1,
        eval_episodes=1,
        lr_schedule="linear",
    )
    assert seen == pytest.approx([0.01] * 2 + [0.0075] * 2 + [0.005] * 2 + [0.0025] * 2)
