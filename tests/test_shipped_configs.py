import csv
from pathlib import Path

import pytest
from conftest import run_cli

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
SMALL = [
    "--trainer.num_rounds", "1",
    "--trainer.agents_per_round", "2",
    "--trainer.episodes_per_round", "2",
    "--trainer.eval_episodes", "1",
    "--data.episodes_per_update", "2",
]  # fmt: skip


def test_every_environment_has_a_config():
    names = {path.stem for path in CONFIGS}
    assert {
        "default",
        "simple_tuned",
        "cartpole",
        "cartpole_hetero",
        "acrobot",
        "pendulum",
        "cartpole_hetero_ppo",
        "cartpole_hetero_a2c",
        "acrobot_ppo",
        "pendulum_hetero_ppo",
        "lunarlander_ppo",
        "mountaincar_rnd",
        "mountaincar_continuous_rnd",
    } <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda path: path.stem)
def test_a_tiny_fit_runs_on_each_shipped_config(tmp_path, config):
    result = run_cli("fit", "--config", str(config), *SMALL, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "lightning_logs/version_0/metrics.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert int(row["episodes"]) == 4
    assert float(row["eval_reward_min"]) <= float(row["eval_reward"])
