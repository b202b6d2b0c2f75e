"""Nothing lost: a refused command leaves a finished run byte for byte, and a late failure
puts back what the command wrote."""

import contextlib
import io
import os
import shlex
from pathlib import Path

import pytest
from conftest import TINY_CONFIG
from doc_blocks import marked_blocks

import fedrl_lightning.cli.commands.evaluate as evaluate
from fedrl_lightning.cli.app import main
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.run.outputs import Outputs, check_output

RUN = "lightning_logs/version_0"
LAST = f"{RUN}/checkpoints/last.ckpt"
BEST = f"{RUN}/checkpoints/best.ckpt"


def run_in(folder, args):
    """``main(args)`` in ``folder``: the exit code and stderr."""
    cwd = os.getcwd()
    os.chdir(folder)
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(args)
    finally:
        os.chdir(cwd)
    return code, stderr.getvalue()


def snapshot(folder: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path below ``folder``: its mode, and its bytes if it is a file."""
    return {
        str(path.relative_to(folder)): (
            path.lstat().st_mode,
            path.read_bytes() if path.is_file() and not path.is_symlink() else None,
        )
        for path in sorted(folder.rglob("*"))
    }


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    """A folder holding a finished tiny CartPole run (it renders frames, for videos)."""
    folder = tmp_path_factory.mktemp("nothing_lost")
    args = ["fit", "--config", str(TINY_CONFIG), "--data.env_id", "CartPole-v1"]
    code, stderr = run_in(folder, args)
    assert code == 0, stderr
    (folder / "clip.mp4").write_bytes(b"not a folder")
    return folder


REFUSED = [
    ["export", "--ckpt_path", LAST, "--out", LAST],
    ["export", "--out", f"{RUN}/config.yaml"],
    ["export", "--ckpt_path", BEST, "--format", "torchscript"],
    ["evaluate", "--ckpt_path", BEST, "--out", BEST],
    ["evaluate", "--ckpt_path", RUN, "--record_video", "clip.mp4"],
    ["evaluate", "--out", f"{RUN}/metrics.csv"],
    ["evaluate", "--video_agents", "0"],
    ["report", RUN, "--out", f"{RUN}/metrics.csv"],
    ["report", RUN, "--out", "clip.mp4/figures"],
    ["report", RUN, "--labels", "a", "b"],
]


@pytest.mark.parametrize("args", REFUSED, ids=" ".join)
def test_a_refused_command_leaves_the_finished_run_byte_for_byte(cartpole_run, args):
    before = snapshot(cartpole_run)
    code, stderr = run_in(cartpole_run, args)
    assert code == 2, stderr
    assert len(stderr.splitlines()) == 1 and stderr.startswith("error: "), stderr
    assert "Traceback" not in stderr
    assert snapshot(cartpole_run) == before


def test_evaluate_puts_back_its_csv_when_recording_fails_late(cartpole_run, monkeypatch):
    csv = cartpole_run / RUN / "checkpoints" / "evaluation.csv"
    assert run_in(cartpole_run, ["evaluate", "--episodes", "1"])[0] == 0
    written = csv.read_bytes()
    before = snapshot(cartpole_run)

    def fails_after_one_video(policy, population, agents, folder, *args):
        (folder / "agent-0-episode-0.mp4").write_bytes(b"half a video")
        raise ConfigError(f"--record_video {folder}: the disk is full")

    monkeypatch.setattr(evaluate, "record_videos", fails_after_one_video)
    args = ["evaluate", "--episodes", "2", "--record_video", "videos/new"]
    code, stderr = run_in(cartpole_run, args)
    assert code == 2, stderr
    assert "the disk is full" in stderr
    assert csv.read_bytes() == written  # the two-episode table was written, then put back
    assert not (cartpole_run / "videos").exists()
    assert snapshot(cartpole_run) == before


def test_outputs_put_back_files_and_modes_and_remove_new_folders(tmp_path):
    kept = tmp_path / "kept.txt"
    kept.write_text("before")
    kept.chmod(0o640)
    with pytest.raises(RuntimeError), Outputs() as outputs:
        outputs.write_text("after", kept)
        outputs.make_folder(tmp_path / "a" / "b")
        outputs.write_bytes(b"new", tmp_path / "a" / "b" / "new.bin")
        assert kept.read_text() == "after"
        raise RuntimeError("a late failure")
    assert kept.read_text() == "before"
    assert kept.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt"]


def test_output_paths_compare_resolved(cartpole_run):
    run = cartpole_run / RUN
    (cartpole_run / "to_metrics.csv").symlink_to(run / "metrics.csv")
    with pytest.raises(ConfigError, match="would overwrite metrics.csv"):
        check_output(cartpole_run / "to_metrics.csv", "--out")
    with pytest.raises(ConfigError, match="which this command reads"):
        check_output(
            run / "checkpoints" / ".." / "checkpoints" / "last.ckpt",
            "--out",
            [run / "checkpoints" / "last.ckpt"],
        )
    own = run / "checkpoints" / "evaluation.csv"
    assert check_output(own, "--out", own=[own]) == own
    assert check_output(cartpole_run / "elsewhere.csv", "--out") == cartpole_run / "elsewhere.csv"
    (cartpole_run / "to_metrics.csv").unlink()


MARKER = "<!-- tests/test_nothing_lost.py runs the next block"


def docs_examples() -> list[tuple[str, str]]:
    """Each command and its error line, from the docs' text blocks after the marker."""
    examples = []
    for block in marked_blocks(MARKER):
        assert block.lang == "text", block.where
        lines = block.text.splitlines()
        for command, error in zip(lines, lines[1:], strict=False):
            if command.startswith("$ python -m fedrl_lightning "):
                assert error.startswith("error: "), error
                examples.append((command.removeprefix("$ python -m fedrl_lightning "), error))
    return examples


@pytest.mark.parametrize("command, error", docs_examples())
def test_docs_examples_print_what_the_docs_say(cartpole_run, command, error):
    before = snapshot(cartpole_run)
    code, stderr = run_in(cartpole_run, shlex.split(command))
    assert code == 2
    assert stderr.replace(str(cartpole_run.resolve()), "/home/me") == error + "\n"
    assert snapshot(cartpole_run) == before
