"""The progress display: a bar on a terminal with room for it, else one plain line per round."""

import contextlib
import fcntl
import os
import pty
import struct
import termios
import threading

import pytest
from conftest import TINY_CONFIG
from tqdm.auto import tqdm

from fedrl_lightning.cli import main
from fedrl_lightning.console import PlainRoundLog, round_progress


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
