import csv
from pathlib import Path

import pytest
import yaml
from conftest import run_cli

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
SMALL = [
    "--trainer.num_rounds", "1",
    "--trainer.agents_per_round", "2",
    "--trainer.episodes_per_round", "2",
    "--trainer.eval_episodes", "1",
    "--data.episodes_per_update", "2",
]  # fmt: skip
# An off-policy learner counts env steps, not episodes: 60 an agent, learning after 30.
OFF_POLICY_SMALL = ["--model.steps_per_round", "60", "--model.learning_starts", "30"]


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
        "cartpole_hetero_dqn",
    } <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda path: path.stem)
def test_a_tiny_fit_runs_on_each_shipped_config(tmp_path, config):
    model = yaml.safe_load(config.read_text()).get("model") or {}
    off_policy = model.get("class_path", "").rpartition(".")[2] in {"DQN", "SAC", "TD3"}
    small = [*SMALL, *OFF_POLICY_SMALL] if off_policy else SMALL
    result = run_cli("fit", "--config", str(config), *small, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "lightning_logs/version_0/metrics.csv") as f:
        (row,) = list(csv.DictReader(f))
    if off_policy:
        assert int(row["env_steps"]) == 120 and int(row["episodes"]) >= 2
    else:
        assert int(row["episodes"]) == 4
    assert float(row["eval_reward_min"]) <= float(row["eval_reward"])
