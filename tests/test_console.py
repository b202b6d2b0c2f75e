"""The progress display: a bar on a terminal with room for it, else one plain line per round."""

import contextlib
import csv
import fcntl
import os
import pty
import struct
import termios
import threading

import pytest
from conftest import TINY_CONFIG
from tqdm.auto import tqdm

from fedrl_lightning.cli.app import main
from fedrl_lightning.run.console import PlainRoundLog, finished_line, round_progress


@contextlib.contextmanager
def terminal(rows, columns):
    """A real pseudo-terminal of ``rows`` x ``columns``: its text file, and what it shows."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    shown = []

    def read():
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed
                return
            if not chunk:
                return
            shown.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    console = open(follower, "w", buffering=1, closefd=True)
    try:
        yield console, shown
    finally:
        console.close()
        reader.join(timeout=10)
        os.close(leader)


@pytest.mark.parametrize(
    "rows, columns, bar",
    [(24, 80, True), (1, 20, True), (0, 0, False), (24, 0, False), (0, 80, False), (24, 10, False)],
)
def test_a_bar_only_where_the_terminal_has_room_for_it(rows, columns, bar, monkeypatch):
    with terminal(rows, columns) as (console, _):
        monkeypatch.setattr("sys.stdout", console)
        monkeypatch.setattr("sys.stderr", console)
        display = round_progress(3, enabled=True)
        display.close()
    assert isinstance(display, tqdm) == bar
    assert isinstance(display, PlainRoundLog) == (not bar)


def test_a_0x0_terminal_shows_the_plain_line_of_every_round(tmp_path, monkeypatch):
    """As under ``script -c``: a terminal that reports no size."""
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", str(TINY_CONFIG), "--trainer.enable_progress_bar", "true"]
    with terminal(0, 0) as (console, shown):
        monkeypatch.setattr("sys.stdout", console)
        monkeypatch.setattr("sys.stderr", console)
        assert main(args) == 0
    lines = b"".join(shown).decode().splitlines()
    rounds = [line.split(":")[0] for line in lines if line.startswith("round ")]
    assert rounds == ["round 1/3", "round 2/3", "round 3/3"]
    assert any(line.startswith("Finished 3 rounds") for line in lines)


def rows(episodes, steps):
    """Metrics rows of rounds 1, 2, ...: the run's running totals, as metrics.csv has them."""
    return [
        {"round": i + 1, "episodes": e, "env_steps": s}
        for i, (e, s) in enumerate(zip(episodes, steps, strict=True))
    ]


def test_a_new_run_s_summary_counts_the_whole_run():
    history = rows([10, 20, 30], [100, 250, 1400])
    assert finished_line(history, 0, 2.04) == (
        "Finished 3 rounds in 2.0 s: 30 training episodes, 1,400 environment steps."
    )


def test_a_resumed_run_s_summary_counts_this_command_s_rounds_and_names_the_whole_run():
    history = rows([10, 20, 30, 40, 50], [100, 250, 400, 1650, 2000])
    # Rounds 4 and 5 ran: 50 - 30 episodes, 2,000 - 400 steps.
    assert finished_line(history, 3, 1.5) == (
        "Finished 2 rounds (resumed after round 3) in 1.5 s: 20 training episodes, "
        "1,600 environment steps (the whole run: 5 rounds, 50 episodes, 2,000 steps)."
    )
    assert finished_line(history[:1], 1, 0.0) == (
        "Finished 0 rounds (resumed after round 1) in 0.0 s: 0 training episodes, "
        "0 environment steps (the whole run: 1 round, 10 episodes, 100 steps)."
    )


def test_a_resumed_fit_prints_this_command_s_counts(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tiny = ["--config", str(TINY_CONFIG), "--trainer.logger", "false"]
    assert main(["fit", *tiny, "--trainer.num_rounds", "2"]) == 0
    capsys.readouterr()
    assert main(["fit", "--ckpt_path", "last", "--trainer.num_rounds", "3"]) == 0
    out = capsys.readouterr().out
    with open(tmp_path / "lightning_logs/version_0/metrics.csv") as f:
        steps = [int(row["env_steps"]) for row in csv.DictReader(f)]
    # tiny.yaml: 2 agents a round, 2 episodes each, so 4 episodes a round.
    assert (
        "Finished 1 round (resumed after round 2) in " in out
        and f"s: 4 training episodes, {steps[2] - steps[1]:,} environment steps (the whole run: "
        f"3 rounds, 12 episodes, {steps[2]:,} steps).\n"
        in out
    ), out
