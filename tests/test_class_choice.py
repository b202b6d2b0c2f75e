"""Choosing another class (``--model PPO``) over a config written for the default one."""

from pathlib import Path

import pytest
import yaml
from conftest import TINY_CONFIG, TINY_PPO_CONFIG, run_main

CARTPOLE = Path(__file__).parents[1] / "configs" / "cartpole.yaml"  # REINFORCE's options
LEFT_OUT = f"{CARTPOLE}: model.normalize_returns is not an argument of PPO; it is left out\n"
SMALL = ["--trainer.num_rounds", "1", "--trainer.agents_per_round", "2"]
SMALL += ["--trainer.episodes_per_round", "2", "--trainer.eval_episodes", "2"]
SMALL += ["--data.num_agents", "2", "--data.num_envs", "2", "--data.episodes_per_update", "2"]


def printed_model(args, tmp_path, monkeypatch):
    code, out, err = run_main(["fit", *args, "--print_config"], tmp_path, monkeypatch)
    assert code == 0, err
    return yaml.safe_load(out)["model"], err


def test_the_config_s_shared_options_carry_over_and_the_others_are_left_out(tmp_path, monkeypatch):
    model, err = printed_model(["--config", str(CARTPOLE), "--model", "PPO"], tmp_path, monkeypatch)
    assert model["class_path"] == "fedrl_lightning.PPO"
    options = model["init_args"]
    assert "normalize_returns" not in options
    assert (options["lr"], options["gamma"], options["hidden_dim"]) == (
        0.01,
        0.99,
        64,
    )  # the config's
    assert (options["gae_lambda"], options["norm_adv"]) == (0.95, True)  # PPO's own defaults
    assert err == LEFT_OUT


def test_an_option_given_on_the_command_line_wins(tmp_path, monkeypatch):
    args = ["--config", str(CARTPOLE), "--model", "PPO", "--model.lr", "0.02"]
    model, err = printed_model(args, tmp_path, monkeypatch)
    assert model["init_args"]["lr"] == 0.02
    assert err == LEFT_OUT


def test_the_switched_run_trains_and_resumes_with_the_same_command(tmp_path, monkeypatch):
    args = ["fit", "--config", str(CARTPOLE), "--model", "PPO", "--model.lr", "0.01", *SMALL]
    code, out, err = run_main(args, tmp_path, monkeypatch)
    assert code == 0, err
    assert err == LEFT_OUT
    assert "Finished 1 round in" in out
    saved = yaml.safe_load((tmp_path / "lightning_logs/version_0/config.yaml").read_text())
    assert saved["model"]["class_path"] == "fedrl_lightning.PPO"
    assert saved["model"]["init_args"]["lr"] == 0.01

    code, out, err = run_main(
        [*args, "--trainer.num_rounds", "2", "--ckpt_path", "last"], tmp_path, monkeypatch
    )
    assert code == 0, err
    assert "Finished 1 round (resumed after round 1)" in out


@pytest.mark.parametrize(
    "config, args, expected",
    [
        # A config that names its class: jsonargparse's class change, as before.
        (TINY_PPO_CONFIG, ["--model", "A2C"], {"norm_adv": False, "lr": 1e-3, "num_layers": 2}),
        (TINY_CONFIG, ["--model", "PPO"], {"lr": 3e-4, "hidden_dim": 16}),
    ],
)
def test_other_switches_are_unchanged(config, args, expected, tmp_path, monkeypatch):
    model, err = printed_model(["--config", str(config), *args], tmp_path, monkeypatch)
    assert err == ""
    for name, value in expected.items():
        assert model["init_args"][name] == value, name


def test_a_strategy_s_options_are_left_out_for_another_strategy(tmp_path, monkeypatch):
    config = tmp_path / "weighted.yaml"
    config.write_text("trainer:\n  strategy:\n    min_weight: 0.2\n")
    args = ["fit", "--config", str(TINY_CONFIG), "--config", str(config)]
    code, out, err = run_main(
        [*args, "--trainer.strategy", "FedAvg", "--print_config"], tmp_path, monkeypatch
    )
    assert code == 0, err
    assert yaml.safe_load(out)["trainer"]["strategy"] == {
        "class_path": "fedrl_lightning.FedAvg",
        "init_args": {"weight_by": "episodes"},
    }
    assert err == (
        f"{config}: trainer.strategy.min_weight is not an argument of FedAvg; it is left out\n"
    )
