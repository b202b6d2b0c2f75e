import math

import pytest
import torch
from conftest import TINY_CONFIG, run_cli
from faults import FlakyModule

from fedrl_lightning import AgentPopulation, FederatedTrainer
from fedrl_lightning.errors import FederationError
from fedrl_lightning.federation.sampling import sample_agents
from fedrl_lightning.run.console import quiet_lightning

AGENTS_PER_ROUND = 4
EPISODES = 2


def flaky_run(tmp_path, crash_prob=0.0, nan_prob=0.0, min_agents=1):
    torch.manual_seed(0)
    model = FlakyModule(crash_prob=crash_prob, nan_prob=nan_prob, hidden_dim=8)
    trainer = FederatedTrainer(
        num_rounds=8,
        agents_per_round=AGENTS_PER_ROUND,
        episodes_per_round=EPISODES,
        min_agents_per_round=min_agents,
        eval_episodes=2,
        default_root_dir=str(tmp_path),
        enable_progress_bar=False,
        seed=5,
    )
    with quiet_lightning(verbose=False):
        history = trainer.fit(model, AgentPopulation(num_agents=6))
    return model, history


@pytest.mark.parametrize("kind", ["crash", "nan"])
def test_failed_agents_are_left_out_and_the_run_goes_on(tmp_path, kind):
    probs = {"crash_prob": 0.3} if kind == "crash" else {"nan_prob": 0.3}
    model, history = flaky_run(tmp_path, **probs)

    assert len(history) == 8
    assert sum(row["num_failed_agents"] for row in history) > 0
    previous_episodes = 0
    for row in history:
        failed = [int(a) for a in row["failed_agents"].split()]
        assert len(failed) == row["num_failed_agents"] < AGENTS_PER_ROUND
        assert set(failed) <= set(sample_agents(6, AGENTS_PER_ROUND, 5, row["round"]))
        # only the agents that succeeded count towards the experience aggregated
        succeeded = AGENTS_PER_ROUND - len(failed)
        assert row["episodes"] - previous_episodes == succeeded * EPISODES
        previous_episodes = row["episodes"]
        assert math.isfinite(row["train_reward"]) and math.isfinite(row["eval_reward"])
    for tensor in model.state_dict().values():
        assert torch.isfinite(tensor).all()
    last = torch.load(
        tmp_path / "lightning_logs/version_0/checkpoints/last.ckpt", weights_only=True
    )
    for tensor in last["state_dict"].values():
        assert torch.isfinite(tensor).all()


def test_failures_are_reproducible(tmp_path):
    _, first = flaky_run(tmp_path / "a", crash_prob=0.15, nan_prob=0.15)
    _, again = flaky_run(tmp_path / "b", crash_prob=0.15, nan_prob=0.15)
    assert any(r["failed_agents"] for r in first)
    assert [r["failed_agents"] for r in first] == [r["failed_agents"] for r in again]


def test_run_stops_when_too_few_agents_succeed(tmp_path):
    with pytest.raises(FederationError, match=r"round 1: 0 of 4 agents succeeded.*injected crash"):
        flaky_run(tmp_path, crash_prob=1.0)


def test_min_agents_per_round_cannot_exceed_agents_per_round():
    with pytest.raises(ValueError, match="trainer.min_agents_per_round"):
        FederatedTrainer(agents_per_round=2, min_agents_per_round=3)


def test_cli_reports_a_federation_that_cannot_go_on_in_one_line(tmp_path):
    result = run_cli(
        "fit", "--config", str(TINY_CONFIG), "--data.env_id", "faults:Crashing-v0", cwd=tmp_path
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: round 1: 0 of 2 agents succeeded")
    assert "RuntimeError: injected crash in step" in result.stderr
