import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY_CONFIG, cli_command, cli_env, run_cli

from fedrl_lightning import Reinforce
from fedrl_lightning.run.checkpoints import load_checkpoint


def read_metrics(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_fit_writes_the_run_folder(tiny_run):
    cwd, _ = tiny_run
    run_dir = cwd / "lightning_logs" / "version_0"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["trainer"]["num_rounds"] == 3
    assert config["data"]["num_agents"] == 3
    assert config["seed_everything"] == 7
    assert config["trainer"]["strategy"]["class_path"].endswith("RewardWeighted")

    rows = read_metrics(run_dir)
    assert [int(r["round"]) for r in rows] == [1, 2, 3]
    for row in rows:
        assert 0 <= float(row["eval_reward_min"]) <= float(row["eval_reward"]) <= 100
        assert 0 <= float(row["train_reward"]) <= 100
        assert float(row["round_time"]) > 0
        per_agent = [float(row[f"eval_reward_per_agent/{a}"]) for a in range(3)]
        assert sum(per_agent) / 3 == pytest.approx(float(row["eval_reward"]))
        assert min(per_agent) == pytest.approx(float(row["eval_reward_min"]))
    assert [int(r["episodes"]) for r in rows] == [4, 8, 12]
    assert [int(r["env_steps"]) for r in rows] == [400, 800, 1200]

    assert list(run_dir.glob("events.out.tfevents.*"))
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert checkpoints == [
        "best.ckpt",
        "last.ckpt",
        "round-0001.ckpt",
        "round-0002.ckpt",
        "round-0003.ckpt",
    ]
    best = max(rows, key=lambda row: float(row["eval_reward"]))
    best_state = torch.load(run_dir / "checkpoints/best.ckpt", weights_only=True)
    round_state = torch.load(
        run_dir / f"checkpoints/round-{int(best['round']):04d}.ckpt", weights_only=True
    )
    for key, value in round_state["state_dict"].items():
        assert torch.equal(best_state["state_dict"][key], value)
    assert not (run_dir / "agents").exists()  # agent checkpoints deleted once aggregated


def test_round_checkpoints_load_as_modules(tiny_run):
    cwd, _ = tiny_run
    folder = cwd / "lightning_logs" / "version_0" / "checkpoints"
    module = Reinforce.load_from_checkpoint(folder / "last.ckpt")
    assert module.hparams.hidden_dim == 16
    last = load_checkpoint(folder / "last.ckpt")
    third = load_checkpoint(folder / "round-0003.ckpt")
    first = load_checkpoint(folder / "round-0001.ckpt")
    for key, value in last["state_dict"].items():
        assert torch.equal(value, third["state_dict"][key])
        assert torch.equal(module.state_dict()[key], value)
    assert not torch.equal(
        first["state_dict"]["policy.head.weight"], last["state_dict"]["policy.head.weight"]
    )
    assert last["fedrl"]["round"] == 3


def test_console_is_quiet_with_a_summary(tiny_run):
    _, result = tiny_run
    assert "Finished 3 rounds" in result.stdout
    assert "Run folder: lightning_logs/version_0" in result.stdout
    noise = ("GPU available", "LOCAL_RANK", "Trainable params", "Seed set", "`Trainer.fit` stopped")
    for text in noise:
        assert text not in result.stdout + result.stderr


def test_same_command_twice_gives_identical_results(tiny_run, tmp_path):
    cwd, _ = tiny_run
    again = run_cli("fit", "--config", str(TINY_CONFIG), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    first = load_checkpoint(cwd / "lightning_logs/version_0/checkpoints/last.ckpt")["state_dict"]
    second = load_checkpoint(tmp_path / "lightning_logs/version_0/checkpoints/last.ckpt")[
        "state_dict"
    ]
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    columns = ("round", "train_reward", "eval_reward", "eval_reward_min", "episodes", "env_steps")
    rows_a = read_metrics(cwd / "lightning_logs/version_0")
    rows_b = read_metrics(tmp_path / "lightning_logs/version_0")
    assert [[r[c] for c in columns] for r in rows_a] == [[r[c] for c in columns] for r in rows_b]


def test_overrides_and_strategy_by_name(tmp_path):
    result = run_cli(
        "fit",
        "--config",
        str(TINY_CONFIG),
        "--trainer.num_rounds",
        "1",
        "--trainer.strategy",
        "FedAvg",
        "--model.lr",
        "0.01",
        "--data.num_agents",
        "4",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((tmp_path / "lightning_logs/version_0/config.yaml").read_text())
    assert config["trainer"]["strategy"]["class_path"].endswith("FedAvg")
    assert config["model"]["init_args"]["lr"] == 0.01
    assert config["data"]["num_agents"] == 4
    assert len(read_metrics(tmp_path / "lightning_logs/version_0")) == 1


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--trainer.agents_per_round", "4"], "trainer.agents_per_round"),
        (["--trainer.num_rounds", "0"], "trainer.num_rounds"),
        (["--data.num_agents", "0"], "data.num_agents"),
        (["--trainer.episodes_per_round=-2"], "trainer.episodes_per_round"),
        (["--model.gamma", "1.5"], "model.gamma"),
        (["--model.gamma", "0"], "model.gamma"),
        (["--model.lr=-0.1"], "model.lr"),
        (["--data.env_id", "Nope-v0"], "data.env_id"),
        (["--trainer.strategy", "Nope"], "trainer.strategy"),
        (["--config", "missing.yaml"], "missing.yaml"),
    ],
)
def test_bad_input_is_one_line_naming_the_option(tmp_path, args, names):
    config = [] if "--config" in args else ["--config", str(TINY_CONFIG)]
    result = run_cli("fit", *config, *args, cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    assert names in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "lightning_logs").exists()


def test_help_documents_every_option(tmp_path):
    result = run_cli("fit", "--help", cwd=tmp_path)
    assert result.returncode == 0
    for option in (
        "--seed_everything",
        "--config",
        "--print_config",
        "--trainer.num_rounds",
        "--trainer.agents_per_round",
        "--trainer.episodes_per_round",
        "--trainer.strategy",
        "--trainer.default_root_dir",
        "--data.num_agents",
        "--data.env_id",
        "--model",
        "--model.help",
    ):
        assert option in result.stdout, option
    learner = run_cli("fit", "--model.help", "PPO", cwd=tmp_path)  # a learner's own options
    assert learner.returncode == 0, learner.stderr
    for option in ("--model.lr", "--model.gamma", "--model.hidden_dim", "--model.clip_coef"):
        assert option in learner.stdout, option


def test_print_config_round_trips(tmp_path):
    printed = run_cli("fit", "--config", str(TINY_CONFIG), "--print_config", cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    (tmp_path / "printed.yaml").write_text(printed.stdout)
    config = yaml.safe_load(printed.stdout)
    assert config["trainer"]["num_rounds"] == 3
    assert config["model"]["init_args"]["hidden_dim"] == 16
    again = run_cli("fit", "--config", "printed.yaml", "--print_config", cwd=tmp_path)
    assert again.stdout == printed.stdout


def test_log_files_get_one_plain_line_per_round(tiny_run):
    _, result = tiny_run  # stdout is a pipe here, as in a cluster job's log
    lines = [line for line in result.stdout.splitlines() if line.startswith("round ")]
    assert [line.split(":")[0] for line in lines] == ["round 1/3", "round 2/3", "round 3/3"]
    assert all("train " in line and "eval " in line and "worst " in line for line in lines)
    assert "\r" not in result.stdout + result.stderr


@pytest.mark.slow
def test_fedrl_script_finds_environments_in_the_current_folder(tmp_path):
    (tmp_path / "mymod.py").write_text(
        "import gymnasium as gym\n"
        "gym.register('Mine-v0', entry_point='fedrl_lightning.population.envs.simple:SimpleEnv',"
        " max_episode_steps=10)\n"
    )
    script = Path(sys.executable).parent / "fedrl"
    args = ["fit", "--config", str(TINY_CONFIG), "--data.env_id", "mymod:Mine-v0"]
    result = subprocess.run(
        [str(script), *args], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "Finished 3 rounds" in result.stdout
    usage = subprocess.run([str(script), "fit", "--help"], capture_output=True, text=True)
    assert usage.stdout.startswith("usage: fedrl [options] fit")


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--model", "PPO"], {"lr": 3e-4, "gae_lambda": 0.95}),  # PPO's own defaults
        (["--model.lr", "0.001", "--model", "PPO"], {"lr": 0.001}),  # given values stay
        (["--model", "PPO", "--model.lr", "0.001"], {"lr": 0.001}),
        (["--model", "A2C", "--model.hidden_dim", "32"], {"lr": 1e-3, "hidden_dim": 32}),
        (["--trainer.strategy", "FedAvgM"], {"server_lr": 1.0}),
    ],
)
def test_a_chosen_class_gets_its_own_defaults(tmp_path, args, expected):
    """Not the default class's values for the arguments they share (jsonargparse's #460)."""
    result = run_cli("fit", *args, "--print_config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    section = config["trainer"]["strategy"] if "strategy" in args[0] else config["model"]
    for name, value in expected.items():
        assert section["init_args"][name] == value, name


def test_a_command_s_chosen_class_is_not_the_next_command_s_default(tmp_path):
    """A process builds the parser once (``FedRLCLI.setup_parser``) and each command parses
    with a copy: ``--model PPO`` makes PPO the default of its own copy only."""
    printed = ["fit", "--config", str(TINY_CONFIG), "--print_config"]
    before = run_cli(*printed, cwd=tmp_path)
    ppo = run_cli(*printed, "--model", "PPO", cwd=tmp_path)
    after = run_cli(*printed, cwd=tmp_path)
    assert before.returncode == ppo.returncode == after.returncode == 0, ppo.stderr
    assert yaml.safe_load(ppo.stdout)["model"]["class_path"] == "fedrl_lightning.PPO"
    assert yaml.safe_load(after.stdout)["model"]["class_path"] == "fedrl_lightning.Reinforce"
    assert after.stdout == before.stdout


def test_help_lists_every_subcommand(tmp_path):
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for name in ("fit", "evaluate", "test", "report", "export"):
        assert f"\n    {name} " in result.stdout, name
    assert "The same as evaluate." in result.stdout


def test_a_reader_that_goes_away_ends_the_command_quietly(tiny_run):
    """``evaluate | head -1``: no BrokenPipeError traceback, the pipe's exit code."""
    cwd, _ = tiny_run
    process = subprocess.Popen(
        cli_command("evaluate", "--episodes", "2", "--out", "piped.csv"),
        cwd=cwd,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()  # nobody reads what the command prints
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 141, stderr
    assert stderr == b""
