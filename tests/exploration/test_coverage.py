"""Coverage: grid cells by hand, bounds from statistics, and a federation's curve end to end."""

import csv
import math

import numpy as np
import pytest
import torch
from conftest import TINY_CURIOSITY_CONFIG, run_cli
from test_resume import final_weights, killed_against_reference

from fedrl_lightning import PPO
from fedrl_lightning.exploration.coverage import CoverageGrid
from fedrl_lightning.federation.components.coverage import Coverage, CoveragePart
from fedrl_lightning.federation.messages import AgentUpdate
from fedrl_lightning.federation.updates import InvalidUpdate, read_update
from fedrl_lightning.policy.normalization import ObservationNormalizer
from fedrl_lightning.run.checkpoints import atomic_save, policy_checkpoint

RUN = "lightning_logs/version_0"


def test_cells_by_hand():
    grid = CoverageGrid(low=(0.0, 0.0), high=(1.0, 2.0))
    observations = np.array([[0.01, 0.01], [0.99, 1.99], [0.5, 1.0], [-5.0, 5.0], [0.02, 0.0]])
    # Cell (i, j) is i * 20 + j; outside the bounds, the edge cells.
    assert grid.cells(observations).tolist() == [0, 19, 210, 399]
    assert grid.num_cells == 400


def columns(coverage, visited):
    """A round's ``coverage`` column once its agents sent ``visited`` (``None``: no cells)."""
    extras = [{} if cells is None else {"coverage": cells} for cells in visited]
    coverage.aggregate([AgentUpdate(a, {}, 1, 1, 0.0, extras=e) for a, e in enumerate(extras)], 1)
    return coverage.round_columns()


def test_an_unbounded_dimension_takes_its_bounds_from_the_statistics_once():
    coverage = Coverage.over(low=[0.0, -math.inf], high=[1.0, math.inf])
    statistics = {"policy.normalizer": ObservationNormalizer(2)}
    assert coverage.grid_for(statistics) is None  # nothing observed yet
    assert math.isnan(columns(coverage, [None])["coverage"])
    statistics["policy.normalizer"].observe(torch.tensor([[0.5, -1.0], [0.5, 3.0]]))
    grid = coverage.grid_for(statistics)
    assert grid.low == (0.0, 1.0 - 3 * 2.0) and grid.high == (1.0, 1.0 + 3 * 2.0)
    statistics["policy.normalizer"].observe(torch.tensor([[0.5, 100.0]]))
    assert coverage.grid_for(statistics) is grid  # fixed at the first round with statistics
    assert columns(coverage, [torch.tensor([0, 5]), torch.tensor([5, 7])]) == {"coverage": 3 / 400}
    resumed = Coverage.over(low=[0.0, -math.inf], high=[1.0, math.inf])
    resumed.load_state_dict(coverage.state_dict())
    assert resumed.grid == grid and resumed.visited == {0, 5, 7}


def rows(cwd):
    with open(cwd / RUN / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_curiosity_and_coverage_resume_bit_identically_after_sigkill(tmp_path):
    reference, killed, _ = killed_against_reference(tmp_path, TINY_CURIOSITY_CONFIG)
    weights = final_weights(killed)
    assert float(weights["curiosity.obs_normalizer.count"]) > 0
    assert float(weights["curiosity.reward_normalizer.count"]) > 0
    coverage = [float(row["coverage"]) for row in rows(reference)]
    # SimpleEnv is unbounded: round 1's agents had no grid yet; then it only grows.
    assert math.isnan(coverage[0])
    assert 0 < coverage[1] and coverage[1:] == sorted(coverage[1:]) and coverage[-1] <= 1
    assert all(float(row["train_intrinsic_reward"]) > 0 for row in rows(reference))


def test_an_agent_scoped_predictor_stays_with_its_agent(tmp_path):
    scopes = "[curiosity.predictor.*]"
    result = run_cli(
        "fit",
        "--config",
        str(TINY_CURIOSITY_CONFIG),
        "--trainer.server",
        "Shared",
        "--trainer.server.agent",
        scopes,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    initial = torch.load(tmp_path / RUN / "checkpoints/round-0001.ckpt", weights_only=True)
    last = final_weights(tmp_path)
    predictor = [k for k in last if k.startswith("curiosity.predictor.")]
    assert predictor
    for key in predictor:  # never aggregated: the global copy is the initial one
        assert torch.equal(last[key], initial["state_dict"][key]), key
    personal = sorted((tmp_path / RUN / "personal").iterdir())
    assert personal
    saved = torch.load(personal[0], weights_only=True)
    assert set(saved["state_dict"]) == set(predictor)
    assert not torch.equal(saved["state_dict"][predictor[0]], last[predictor[0]])
    # The pooled statistics stay global: every agent's observations are in them.
    assert float(last["curiosity.obs_normalizer.count"]) > 0


@pytest.mark.parametrize(
    "cells, accepted",
    [
        (torch.tensor([3, 1, 3], dtype=torch.int64), True),
        (torch.tensor([400], dtype=torch.int64), False),
        (torch.tensor([-1], dtype=torch.int64), False),
        (torch.tensor([1.0]), False),
        ([1, 2], False),
    ],
)
def test_an_agents_visited_cells_are_checked_before_they_count(tmp_path, cells, accepted):
    model = PPO(observation_dim=2, num_actions=3, hidden_dim=4)
    stats = {"num_episodes": 1, "num_steps": 5, "mean_return": 0.0, "visited_cells": cells}
    path = tmp_path / "agent.ckpt"
    atomic_save(policy_checkpoint(model.state_dict(), {}, "PPO", agent_stats=stats), path)
    grid = {"coverage": CoveragePart(CoverageGrid(low=(0.0, 0.0), high=(1.0, 1.0)))}  # 400 cells
    if accepted:
        update = read_update(path, 0, model.state_dict(), extras=grid)
        assert update.extras["coverage"].tolist() == [1, 3]
    else:
        with pytest.raises(InvalidUpdate):
            read_update(path, 0, model.state_dict(), extras=grid)
