"""The DQN speed benchmark against CleanRL: the fit it times, and its breakdown's arithmetic."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import vs_cleanrl_dqn  # noqa: E402
from vs_cleanrl_dqn import breakdown, cleanrl_arguments, our_fit_arguments  # noqa: E402

from fedrl_lightning.cli.app import main  # noqa: E402


def test_our_fit_takes_cleanrls_hyperparameters(tmp_path, capsys):
    """The options the benchmark passes parse as CleanRL's DQN, over CleanRL's steps."""
    argv = our_fit_arguments(50_000, 10_000, tmp_path)
    assert argv[1:4] == ["-m", "fedrl_lightning", "fit"]
    assert main([*argv[3:], "--print_config"]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    model = config["model"]["init_args"]
    assert config["model"]["class_path"] == "fedrl_lightning.DQN"
    expected = {
        "hidden_dim": 120,
        "num_layers": 2,
        "lr": 2.5e-4,
        "buffer_size": 10_000,
        "batch_size": 128,
        "learning_starts": 10_000,
        "train_freq": 10,
        "gradient_steps": 1,
        "target_update_interval": 500,
        "tau": 1.0,
        "exploration_initial_eps": 1.0,
        "exploration_final_eps": 0.05,
        "exploration_steps": 25_000,  # CleanRL's exploration_fraction 0.5 of 50k
        "double_q": False,
        "loss": "mse",
        "max_grad_norm": None,
        "steps_per_round": 10_000,
    }
    assert {name: model[name] for name in expected} | {"lr": float(model["lr"])} == expected
    trainer, data = config["trainer"], config["data"]
    assert trainer["num_rounds"] * model["steps_per_round"] == 50_000
    assert (trainer["agents_per_round"], data["num_agents"], data["env_id"]) == (
        1,
        1,
        "CartPole-v1",
    )
    cleanrl = cleanrl_arguments(Path("dqn.py"), 50_000)
    assert "--total-timesteps=50000" in cleanrl and "--env-id=CartPole-v1" in cleanrl
    for name, (cleanrl_name, value) in vs_cleanrl_dqn.SHARED.items():
        assert f"--{cleanrl_name}={value}" in cleanrl, name


def test_steps_must_fill_whole_rounds(tmp_path):
    with pytest.raises(ValueError, match="multiple of 10000"):
        our_fit_arguments(55_000, 10_000, tmp_path)


def test_the_breakdowns_parts_add_up_to_the_rounds_time():
    """Each part is a difference of nested timers: together they are the whole, not more."""
    seconds = {
        "env.step": 1.0,
        "acting": 0.5,
        "ReplayBuffer.add": 0.25,
        "ReplayBuffer.sample": 0.125,
        "dataset": 2.0,
        "fetch": 2.5,
        "signature check": 0.1,
        "logger connector": 0.2,
        "batch_to_device": 0.3,
        "DQN.training_step": 4.0,
        "_optimize": 3.0,
        "optimizers()": 0.01,
        "zero_grad": 0.2,
        "manual_backward": 1.5,
        "autograd backward": 1.25,
        "clip_gradients": 0.0,
        "LightningOptimizer.step": 1.0,
        "Adam.step": 0.75,
        "epoch loop": 8.0,
        "Trainer.fit": 8.5,
    }
    parts = {"seconds": seconds, "calls": {"Trainer.fit": 2}, "rounds_seconds": 10.0}
    entries = breakdown(parts)
    assert sum(v for name, v, _ in entries if not name.startswith("↳")) == pytest.approx(10.0)
    loop = [i for i, (name, _, _) in enumerate(entries) if name.startswith("Lightning's")]
    assert entries[loop[0]][1] == pytest.approx(8.0 - 2.0 - 4.0)
    inside = [v for name, v, _ in entries if name.startswith("↳")]
    assert sum(inside) == pytest.approx(entries[loop[0]][1])
    assert inside[3] == pytest.approx(0.5)  # the fetch less the dataset
