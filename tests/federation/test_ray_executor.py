"""The Ray executor from Python, on the test process's shared Ray instance (``shared_ray``).

The command-line runs on Ray are in tests/federation/test_ray_command_line.py.
"""

import pytest
import torch
from faults import FlakyModule

from fedrl_lightning import AgentPopulation, FederatedTrainer
from fedrl_lightning.federation.sampling import sample_agents
from fedrl_lightning.federation.server.choice import Gradient
from fedrl_lightning.federation.strategies import FedMedian
from fedrl_lightning.run.console import quiet_lightning

ray = pytest.importorskip("ray")
# Ray starts processes of its own: one Ray test at a time (xdist runs a group on one worker).
# Each starts Ray, or a fit on it: slow.
pytestmark = [pytest.mark.xdist_group("ray"), pytest.mark.slow]

AGENTS_PER_ROUND = 4


def run(tmp_path, executor, num_rounds=3, round_timeout=None, trainer_options=None, **faults):
    torch.manual_seed(0)
    model = FlakyModule(hidden_dim=8, **faults)
    trainer = FederatedTrainer(
        **(trainer_options or {}),
        num_rounds=num_rounds,
        agents_per_round=AGENTS_PER_ROUND,
        episodes_per_round=2,
        eval_episodes=2,
        default_root_dir=str(tmp_path / executor),
        enable_progress_bar=False,
        executor=executor,
        round_timeout=round_timeout,
        seed=3,
    )
    population = AgentPopulation(
        num_agents=6,
        heterogeneity={"noise_scale": [0.0, 0.5]},
        byzantine={"agents": [1], "attack": "sign_flip"},
        max_episode_steps=40,  # the episode cap, truncating on the workers as in this process
    )
    with quiet_lightning(verbose=False):
        history = trainer.fit(model, population)
    return model, history


def without_times(history):
    return [{k: v for k, v in row.items() if k != "round_time"} for row in history]


def test_ray_gives_the_same_weights_and_metrics_as_sequential(tmp_path, shared_ray):
    faults = {"crash_prob": 0.2, "nan_prob": 0.2}  # failures must match too
    sequential_model, sequential = run(tmp_path, "sequential", num_rounds=4, **faults)
    ray_model, on_ray = run(tmp_path, "ray", num_rounds=4, **faults)

    assert without_times(on_ray) == without_times(sequential)
    assert sum(row["num_failed_agents"] for row in sequential) > 0
    for key, value in sequential_model.state_dict().items():
        assert torch.equal(ray_model.state_dict()[key], value), key


def test_gradient_mode_on_ray_matches_sequential(tmp_path, shared_ray):
    """Gradients, a sign-flipping agent and failing fits, FedMedian, Adam on the server."""

    def options():
        return {"server": Gradient(optimizer="adam", lr=0.01), "strategy": FedMedian()}

    faults = {"crash_prob": 0.2, "nan_prob": 0.2}
    sequential_model, sequential = run(tmp_path, "sequential", trainer_options=options(), **faults)
    ray_model, on_ray = run(tmp_path, "ray", trainer_options=options(), **faults)

    assert without_times(on_ray) == without_times(sequential)
    assert all(row["gradient_norm"] > 0 for row in sequential)
    assert sum(row["num_failed_agents"] for row in sequential) > 0
    assert sum(row["num_byzantine_agents"] for row in sequential) > 0
    for key, value in sequential_model.state_dict().items():
        assert torch.equal(ray_model.state_dict()[key], value), key


def test_a_lost_worker_fails_its_agent_only(tmp_path, shared_ray):
    _, history = run(tmp_path, "ray", num_rounds=2, exit_prob=0.3)
    lost = [row for row in history if row["num_failed_agents"]]
    assert lost, "no worker was lost; pick another seed"
    for row in history:
        assert row["num_failed_agents"] < AGENTS_PER_ROUND
        assert set(map(int, row["failed_agents"].split())) <= set(
            sample_agents(6, AGENTS_PER_ROUND, 3, row["round"])
        )


def test_a_hanging_fit_times_out_and_the_round_goes_on(tmp_path, shared_ray):
    # With this seed, of the 4 agents sampled (0, 3, 4, 5) only agent 4 draws below 0.2 (as
    # a sequential run with crash_prob 0.2 shows), so only it hangs, and the other three finish
    # on the second CPU whatever order Ray runs them in: each takes under a second, and a new
    # Ray worker (one lost in an earlier test) a few seconds to start, well within 15 s.
    _, history = run(tmp_path, "ray", num_rounds=1, round_timeout=15.0, hang_prob=0.2)
    (row,) = history
    assert row["failed_agents"] == "4"
    assert 15.0 <= row["round_time"] < 45.0
