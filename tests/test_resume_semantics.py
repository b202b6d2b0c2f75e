"""What ``--ckpt_path`` does to the run folder: nothing to resume, earlier rounds, run folders,
and the config a run saves (``config.yaml``) or a resume would use (``--print_config``)."""

import hashlib
import os
import pathlib
import shutil

import pytest
import torch
import yaml
from conftest import TINY_CONFIG, run_cli
from conftest import metrics_without_timings as metrics

from fedrl_lightning import AgentPopulation, Reinforce
from fedrl_lightning.cli.app import main
from fedrl_lightning.federation.trainer import FederatedTrainer
from fedrl_lightning.run.run_folder import RunFolder, resolve_checkpoint

RUN = "lightning_logs/version_0"
TINY = ["--config", str(TINY_CONFIG)]


@pytest.fixture(scope="module")
def six_rounds(tmp_path_factory):
    """A finished 6-round run of the tiny config: its best round is 6, the best of 1-4 is 3."""
    cwd = tmp_path_factory.mktemp("six")
    result = run_cli("fit", *TINY, "--trainer.num_rounds", "6", cwd=cwd)
    assert result.returncode == 0, result.stderr
    rewards = [float(row["eval_reward"]) for row in metrics(cwd)]
    assert max(rewards) == rewards[5] and max(rewards[:4]) == rewards[2] > rewards[3]
    return cwd


def copy_run(source, destination):
    shutil.copytree(source / "lightning_logs", destination / "lightning_logs")
    return destination


def cli(capsys, *args):
    """Run the command line in this process (faster than a subprocess for many calls)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def without_timings(checkpoint):
    """A round checkpoint's contents, less the round times in its history."""
    checkpoint = torch.load(checkpoint, weights_only=True)
    for row in checkpoint["fedrl"]["history"]:
        del row["round_time"]
    return checkpoint


def assert_same_checkpoint(actual, expected):
    actual, expected = without_timings(actual), without_timings(expected)
    assert actual.keys() == expected.keys()
    for key in expected["state_dict"]:
        assert torch.equal(actual["state_dict"][key], expected["state_dict"][key]), key
    assert actual["fedrl"] == expected["fedrl"]  # round, seed, history, strategy, config
    assert actual["hyper_parameters"] == expected["hyper_parameters"]


def assert_same_run(cwd, reference):
    """The run in ``cwd`` ended exactly as ``reference``, and its folder is consistent."""
    assert metrics(cwd) == metrics(reference)
    checkpoints = cwd / RUN / "checkpoints"
    names = sorted(p.name for p in checkpoints.iterdir())
    assert names == sorted(p.name for p in (reference / RUN / "checkpoints").iterdir())
    assert_same_checkpoint(checkpoints / "last.ckpt", reference / RUN / "checkpoints/last.ckpt")
    rounds = [float(row["eval_reward"]) for row in metrics(cwd)]
    best = rounds.index(max(rounds)) + 1
    assert (checkpoints / "best.ckpt").read_bytes() == (
        checkpoints / f"round-{best:04d}.ckpt"
    ).read_bytes()
    assert not list((cwd / RUN).glob("**/.*.tmp"))
    assert sorted(p.name for p in (cwd / "lightning_logs").iterdir()) == ["version_0"]


def folder_hashes(folder):
    return {
        p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.glob("**/*")
        if p.is_file()
    }


def test_last_with_no_run_starts_a_new_run_at_round_1(tmp_path, tiny_run):
    result = run_cli("fit", *TINY, "--ckpt_path", "last", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "--ckpt_path last: no run to resume in lightning_logs; "
        "starting lightning_logs/version_0 at round 1\n"
    )
    assert_same_run(tmp_path, tiny_run[0])


def test_last_starts_an_unfinished_newest_run_again_in_its_folder(
    tmp_path, tiny_run, monkeypatch, capsys
):
    older = copy_run(tiny_run[0], tmp_path)
    monkeypatch.chdir(tmp_path)
    # A start that failed in round 1 leaves version_1 with its config and no completed round.
    code, _, err = cli(capsys, "fit", *TINY, "--data.env_id", "faults:Crashing-v0")
    assert code == 1 and err.startswith("error: round 1: 0 of 2 agents succeeded")
    unfinished = RunFolder(tmp_path / "lightning_logs/version_1")
    assert "faults:Crashing-v0" in unfinished.config.read_text()
    # What a process killed in the middle of round 1 would also leave.
    unfinished.agents.mkdir(exist_ok=True)
    (unfinished.agents / "round-0001-agent-0002.ckpt").write_bytes(b"an agent's checkpoint")
    (unfinished.checkpoints / ".round-0001.ckpt.123.tmp").write_bytes(b"half a file")
    (unfinished.path / "events.out.tfevents.1.host.1.0").write_bytes(b"abandoned events")
    older_files = folder_hashes(older / RUN)

    code, _, err = cli(capsys, "fit", *TINY, "--ckpt_path", "last")

    assert code == 0, err
    assert err == (
        "--ckpt_path last: lightning_logs/version_1 has no completed round; "
        "starting it again at round 1\n"
    )
    assert sorted(p.name for p in (tmp_path / "lightning_logs").iterdir()) == [
        "version_0",
        "version_1",
    ]
    assert folder_hashes(older / RUN) == older_files
    assert metrics(tmp_path, "lightning_logs/version_1") == metrics(tiny_run[0])
    assert_same_checkpoint(unfinished.last_checkpoint, tiny_run[0] / RUN / "checkpoints/last.ckpt")
    assert "faults:Crashing-v0" not in unfinished.config.read_text()
    assert not unfinished.agents.exists()
    assert not list(unfinished.path.glob("**/.*.tmp"))
    assert not (unfinished.path / "events.out.tfevents.1.host.1.0").exists()


def test_resuming_an_earlier_round_discards_the_later_ones(
    tmp_path, six_rounds, monkeypatch, capsys
):
    copy_run(six_rounds, tmp_path)
    monkeypatch.chdir(tmp_path)
    checkpoints = tmp_path / RUN / "checkpoints"
    round_4 = (checkpoints / "round-0004.ckpt").read_bytes()
    round_4_path = f"{RUN}/checkpoints/round-0004.ckpt"

    code, _, err = cli(capsys, "fit", "--ckpt_path", round_4_path, "--trainer.num_rounds", "4")

    assert code == 0, err
    assert err == f"resuming {RUN} after round 4: discarded 2 later rounds (5-6)\n"
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "best.ckpt",
        "last.ckpt",
        "round-0001.ckpt",
        "round-0002.ckpt",
        "round-0003.ckpt",
        "round-0004.ckpt",
    ]
    assert (checkpoints / "last.ckpt").read_bytes() == round_4
    # The best of the kept rounds is round 3; best.ckpt was round 6 of the abandoned run.
    assert (checkpoints / "best.ckpt").read_bytes() == (
        checkpoints / "round-0003.ckpt"
    ).read_bytes()
    assert metrics(tmp_path) == metrics(six_rounds)[:4]

    code, _, err = cli(capsys, "fit", "--ckpt_path", "last", "--trainer.num_rounds", "6")

    assert code == 0, err
    assert err == ""  # nothing later than round 4 is left to discard
    assert_same_run(tmp_path, six_rounds)


class Killed(BaseException):
    """The process dying: raised instead of the next change to the file system."""


def kill_at(monkeypatch, moment):
    """Make the ``moment``-th rename or delete, and every one after it, never happen."""
    changes = []

    def changing(original):
        def change(*args, **kwargs):
            changes.append(args[0])
            if len(changes) > moment:
                raise Killed
            return original(*args, **kwargs)

        return change

    monkeypatch.setattr(os, "replace", changing(os.replace))
    monkeypatch.setattr(pathlib.Path, "unlink", changing(pathlib.Path.unlink))


@pytest.mark.parametrize("moment", range(7))
def test_a_kill_while_discarding_later_rounds_leaves_a_resumable_folder(
    tmp_path, six_rounds, monkeypatch, capsys, moment
):
    copy_run(six_rounds, tmp_path)
    monkeypatch.chdir(tmp_path)
    # Discarding rounds 5-6 writes last.ckpt and metrics.csv and deletes two round
    # checkpoints; then the run writes config.yaml, BestCheckpoint mends best.ckpt, and
    # round 5 starts.
    with monkeypatch.context() as patch:
        kill_at(patch, moment)
        with pytest.raises(Killed):
            main(["fit", "--ckpt_path", f"{RUN}/checkpoints/round-0004.ckpt"])
    capsys.readouterr()

    code, _, err = cli(capsys, "fit", "--ckpt_path", "last")

    assert code == 0, err
    assert_same_run(tmp_path, six_rounds)
    # Killed before last.ckpt was rewritten, the folder was untouched: `last` is round 6. After,
    # `last` is round 4, and its resume discards the round checkpoints not yet deleted.
    left = {1: "2 later rounds (5-6)", 2: "2 later rounds (5-6)", 3: "1 later round (5)"}
    expected = f"resuming {RUN} after round 4: discarded {left[moment]}\n" if moment in left else ""
    assert err == expected


def test_config_yaml_reruns_the_experiment_even_after_a_resume(
    tmp_path, tiny_run, monkeypatch, capsys
):
    first, rerun = tmp_path / "first", tmp_path / "rerun"
    first.mkdir(), rerun.mkdir()
    monkeypatch.chdir(first)
    assert cli(capsys, "fit", *TINY, "--trainer.num_rounds", "2")[0] == 0
    code, out, err = cli(capsys, "fit", "--ckpt_path", "last", "--trainer.num_rounds", "3")
    assert code == 0, err
    assert "resumed after round 2" in out
    config = (first / RUN / "config.yaml").read_text()
    assert "ckpt_path" not in config
    assert (
        "ckpt_path" not in without_timings(first / RUN / "checkpoints/last.ckpt")["fedrl"]["config"]
    )
    (rerun / "experiment.yaml").write_text(config)

    result = run_cli("fit", "--config", "experiment.yaml", cwd=rerun)  # the real command line

    assert result.returncode == 0, result.stderr
    assert "resumed" not in result.stdout
    assert_same_run(rerun, tiny_run[0])
    assert_same_run(first, tiny_run[0])


def test_print_config_with_ckpt_path_prints_the_resumed_run_and_writes_nothing(
    tmp_path, tiny_run, monkeypatch, capsys
):
    copy_run(tiny_run[0], tmp_path)
    before = folder_hashes(tmp_path)

    result = run_cli(
        "fit", "--print_config", "--ckpt_path", "last", "--trainer.num_rounds", "5", cwd=tmp_path
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    printed = yaml.safe_load(result.stdout)
    assert printed["trainer"]["num_rounds"] == 5
    saved = yaml.safe_load((tmp_path / RUN / "config.yaml").read_text())
    for section in ("model", "data"):
        assert printed[section] == saved[section]
    assert (printed["seed_everything"], printed["model"]["init_args"]["hidden_dim"]) == (
        7,
        16,
    )  # not defaults
    assert printed["ckpt_path"] == f"{RUN}/checkpoints/last.ckpt"
    assert folder_hashes(tmp_path) == before

    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "fit", "--print_config", "--ckpt_path", "last", "--model.lr", "1")
    assert code == 2 and err.startswith("error: --model.lr: the run in")
    assert out == ""
    assert folder_hashes(tmp_path) == before


def test_print_config_with_nothing_to_resume_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", *TINY, "--ckpt_path", "last", "--print_config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["ckpt_path"] == "last"
    assert not list(tmp_path.iterdir())


def test_a_run_folder_as_ckpt_path_resumes_its_last_checkpoint(
    tmp_path, tiny_run, six_rounds, monkeypatch, capsys
):
    copy_run(tiny_run[0], tmp_path)
    monkeypatch.chdir(tmp_path)
    newer = RunFolder(tmp_path / "lightning_logs/version_1")
    newer.prepare()  # an unfinished newer run, which `last` would start again

    code, out, err = cli(capsys, "fit", "--ckpt_path", RUN, "--trainer.num_rounds", "4")

    assert code == 0, err
    assert err == ""
    assert "resumed after round 3" in out
    assert metrics(tmp_path) == metrics(six_rounds)[:4]
    assert newer.checkpoints.is_dir() and not list(newer.checkpoints.iterdir())

    code, _, err = cli(capsys, "fit", "--ckpt_path", "lightning_logs/version_1")
    assert code == 2
    assert err == (
        "error: --ckpt_path lightning_logs/version_1: a folder with no completed round to "
        "resume (no lightning_logs/version_1/checkpoints/last.ckpt)\n"
    )


def test_last_resumes_a_round_saved_just_before_the_kill_that_missed_last_ckpt(
    tmp_path, six_rounds, monkeypatch, capsys
):
    # Killed in round 1 between writing round-0001.ckpt and last.ckpt: round 1 is complete.
    run = RunFolder(copy_run(six_rounds, tmp_path) / RUN)
    for path in run.checkpoints.iterdir():
        if path.name != "round-0001.ckpt":
            path.unlink()
    run.metrics.unlink()
    assert resolve_checkpoint("last", tmp_path) == run.round_checkpoint(1)
    monkeypatch.chdir(tmp_path)

    code, out, err = cli(capsys, "fit", "--ckpt_path", "last")

    assert code == 0, err
    assert "resumed after round 1" in out
    assert_same_run(tmp_path, six_rounds)


def test_the_python_api_records_its_notices_and_does_not_print_them(tmp_path, capfd):
    trainer = FederatedTrainer(
        num_rounds=1,
        agents_per_round=1,
        episodes_per_round=1,
        eval_episodes=1,
        enable_progress_bar=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(Reinforce(hidden_dim=8), AgentPopulation(num_agents=2), ckpt_path="last")

    assert trainer.notices == [
        f"--ckpt_path last: no run to resume in {tmp_path / 'lightning_logs'}; "
        f"starting {tmp_path / RUN} at round 1"
    ]
    assert trainer.completed_rounds == 1
    out, err = capfd.readouterr()
    assert err == ""
    assert out.startswith("round 1/1: train ")  # the plain progress line, no notice
    assert out.count("\n") == 1
