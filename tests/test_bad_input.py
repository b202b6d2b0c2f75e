"""Bad input: one line naming the option or file, exit 2, no traceback, nothing changed."""

import importlib.util
import shutil

import pytest
from bad_inputs import CASES, COMMAND_CASES, folder_digest, write_input_files
from conftest import TINY_CONFIG, run_cli, run_main


@pytest.fixture(scope="module")
def finished_run(tiny_run, tmp_path_factory):
    """A folder holding a finished tiny run and the files that the cases name."""
    source, _ = tiny_run
    folder = tmp_path_factory.mktemp("bad_input")
    shutil.copytree(source / "lightning_logs", folder / "lightning_logs")
    write_input_files(folder)
    return folder


def case_id(case):
    return f"{case[0]}: {' '.join(case[1])}"


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(case, finished_run, monkeypatch):
    _, args, names = case
    if "HalfCheetah" in " ".join(args):
        assert importlib.util.find_spec("mujoco") is None, "the case needs MuJoCo absent"
    config = [] if "--config" in args else ["--config", str(TINY_CONFIG)]
    before = folder_digest(finished_run)
    code, _, stderr = run_main(["fit", *config, *args], finished_run, monkeypatch)
    assert code == 2, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert names in lines[0]
    assert folder_digest(finished_run) == before


@pytest.mark.parametrize("case", COMMAND_CASES, ids=[case_id(c) for c in COMMAND_CASES])
def test_subcommands_bad_input_is_one_line_and_changes_nothing(case, finished_run, monkeypatch):
    _, args, names = case
    before = folder_digest(finished_run)
    code, _, stderr = run_main(args, finished_run, monkeypatch)
    assert code == 2, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert names in lines[0]
    assert folder_digest(finished_run) == before


def test_catalogue_covers_every_category():
    categories = {category for category, _, _ in CASES}
    assert len(CASES) >= 60
    assert len(categories) >= 12


@pytest.mark.parametrize(
    "args",
    [
        ["--trainer.strategy", "FedTrimmedAvg", "--trainer.strategy.beta", "0.6"],
        ["--seed_everything=-5"],
        ["--trainer.accelerator", "gpu"],
        ["--trainer.num_round", "3"],
    ],
)
def test_real_command_line_prints_one_line(tmp_path, args):
    result = run_cli("fit", "--config", str(TINY_CONFIG), *args, cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert not (tmp_path / "lightning_logs").exists()


def test_usage_names_the_module(tmp_path):
    result = run_cli("fit", "--help", cwd=tmp_path)
    assert result.stdout.startswith("usage: python -m fedrl_lightning [options] fit")
    assert "Train a federation" in result.stdout


def test_seed_everything_true_picks_and_records_a_seed(tmp_path):
    result = run_cli("fit", "--config", str(TINY_CONFIG), "--seed_everything", "true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    picked = int(result.stdout.split("picked ")[1].split()[0])
    config = (tmp_path / "lightning_logs/version_0/config.yaml").read_text()
    assert f"seed_everything: {picked}\n" in config
    rerun = run_cli("fit", "--config", "lightning_logs/version_0/config.yaml", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "picked" not in rerun.stdout
    first = (tmp_path / "lightning_logs/version_0/metrics.csv").read_text().splitlines()
    second = (tmp_path / "lightning_logs/version_1/metrics.csv").read_text().splitlines()
    strip_time = [",".join(row.split(",")[:-1]) for row in first]  # round_time is last
    assert strip_time == [",".join(row.split(",")[:-1]) for row in second]
