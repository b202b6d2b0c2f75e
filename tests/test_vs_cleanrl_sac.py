"""The SAC speed benchmark against CleanRL: the fit it times takes CleanRL's settings."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import vs_cleanrl_sac  # noqa: E402
from vs_cleanrl_sac import cleanrl_arguments, our_fit_arguments  # noqa: E402

from fedrl_lightning.cli.app import main  # noqa: E402


def test_our_fit_takes_cleanrls_hyperparameters(tmp_path, capsys):
    """The options the benchmark passes parse as CleanRL's SAC, over CleanRL's steps."""
    argv = our_fit_arguments(10_000, 5_000, tmp_path)
    assert argv[1:4] == ["-m", "fedrl_lightning", "fit"]
    assert main([*argv[3:], "--print_config"]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    model = config["model"]["init_args"]
    assert config["model"]["class_path"] == "fedrl_lightning.SAC"
    expected = {
        "hidden_dim": 256,
        "num_layers": 2,
        "lr": 3e-4,
        "q_lr": 1e-3,
        "buffer_size": 100_000,
        "batch_size": 256,
        "learning_starts": 5_000,
        "train_freq": 1,
        "gradient_steps": 1,
        "target_update_interval": 1,
        "tau": 0.005,
        "gamma": 0.99,
        "autotune": True,
        "steps_per_round": 5_000,
    }
    numbers = {"lr": float(model["lr"]), "q_lr": float(model["q_lr"]), "tau": float(model["tau"])}
    assert {name: model[name] for name in expected} | numbers == expected
    trainer, data = config["trainer"], config["data"]
    assert trainer["num_rounds"] * model["steps_per_round"] == 10_000
    assert (trainer["agents_per_round"], data["num_agents"], data["env_id"]) == (
        1,
        1,
        "Pendulum-v1",
    )
    cleanrl = cleanrl_arguments(Path("sac_continuous_action.py"), 10_000)
    assert "--total-timesteps=10000" in cleanrl and "--env-id=Pendulum-v1" in cleanrl
    for name, (cleanrl_name, value) in vs_cleanrl_sac.SHARED.items():
        assert f"--{cleanrl_name}={value}" in cleanrl, name
