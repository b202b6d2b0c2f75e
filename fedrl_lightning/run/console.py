"""What a federated run shows on the console: progress over rounds, and what a fit did."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from lightning.fabric.utilities.warnings import PossibleUserWarning
from tqdm.auto import tqdm

__all__ = [
    "PlainRoundLog",
    "finished_line",
    "RoundProgress",
    "progress_fields",
    "quiet_lightning",
    "round_progress",
    "terminal_fits_a_bar",
]

LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")
LOGGER_CHATTER = "lightning.pytorch.loggers"  # "Experiment with name ... not found. Creating it."
MIN_BAR_COLUMNS = 20
"""The narrowest terminal a progress bar is drawn on; a narrower one gets plain lines."""


@contextmanager
def quiet_lightning(verbose: bool) -> Iterator[None]:
    """Silence Lightning's per-fit banners and hints unless ``verbose``.

    Lightning's loggers' notices (MLflow's "creating experiment") are silenced too.

    Lightning's info messages (device banners, "fit stopped") and its
    ``PossibleUserWarning`` hints (such as the dataloader worker count, which cannot matter for
    an in-process rollout) would otherwise repeat for every agent of every round.
    """
    if verbose:
        yield
        return
    loggers = [logging.getLogger(name) for name in (*LIGHTNING_LOGGERS, LOGGER_CHATTER)]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR if logger.name == LOGGER_CHATTER else logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=PossibleUserWarning)
            warnings.filterwarnings("ignore", message=".*IterableDataset.*__len__")
            warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


class RoundProgress(Protocol):
    """What the round loop reports to: tqdm's bar, or :class:`PlainRoundLog`."""

    def set_postfix(self, fields: dict[str, str], /) -> None:
        """Show the newest round's figures (positional: tqdm names the argument otherwise)."""

    def update(self) -> object:
        """Count one more round done (tqdm returns whether it redrew; nobody reads it)."""

    def close(self) -> None:
        """End the display."""


class PlainRoundLog:
    """One plain line per round on stdout, for log files and runs without a progress bar.

    Args:
        total: The run's last round.
        done: Rounds already done (a resumed run).
    """

    def __init__(self, total: int, done: int = 0) -> None:
        self.total = total
        self.done = done
        self.fields: dict[str, str] = {}

    def set_postfix(self, fields: dict[str, str]) -> None:
        """Keep the newest round's figures for :meth:`update`."""
        self.fields = dict(fields)

    def update(self) -> None:
        """Print the round that just ended."""
        self.done += 1
        figures = ", ".join(f"{name} {value}" for name, value in self.fields.items())
        print(f"round {self.done}/{self.total}: {figures}", flush=True)

    def close(self) -> None:
        """Nothing to end."""


def terminal_fits_a_bar() -> bool:
    """Whether stdout and stderr are a terminal that a progress bar can be drawn on.

    The bar goes to stderr. A terminal that reports no size (0x0, as under ``script -c``) or
    fewer than :data:`MIN_BAR_COLUMNS` columns would show nothing at all: tqdm hides a bar
    below the terminal's last row.
    """
    if not (sys.stdout.isatty() and sys.stderr.isatty()):
        return False
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return size.columns >= MIN_BAR_COLUMNS and size.lines >= 1


def round_progress(total: int, enabled: bool, done: int = 0) -> RoundProgress:
    """What shows progress over rounds, starting after the ``done`` rounds.

    A progress bar when ``enabled`` and the console is a terminal with room for it (see
    :func:`terminal_fits_a_bar`); otherwise one plain line per round, so that a log file stays
    readable.
    """
    if enabled and terminal_fits_a_bar():
        return tqdm(total=total, initial=done, desc="rounds", unit="round")
    return PlainRoundLog(total, done)


def progress_fields(row: dict[str, Any]) -> dict[str, str]:
    """What the progress display shows of a round's metrics row."""
    fields = {
        "train": f"{row['train_reward']:.1f}",
        "eval": f"{row['eval_reward']:.1f}",
        "worst": f"{row['eval_reward_min']:.1f}",
    }
    if "eval_reward_personalized" in row:  # each evaluated agent's own policy
        fields["own"] = f"{row['eval_reward_personalized']:.1f}"
        fields["own worst"] = f"{row['eval_reward_personalized_min']:.1f}"
    if row["num_failed_agents"]:
        fields["failed"] = str(row["num_failed_agents"])
    return fields


def finished_line(history: Sequence[dict[str, Any]], resumed_round: int, seconds: float) -> str:
    """The line that sums up a fit: the rounds this command ran and what they trained.

    Every count is this command's; a resumed run adds the whole run's totals, named so:
    ``Finished 5 rounds (resumed after round 50) in 9.8 s: 250 training episodes, 24,870
    environment steps (the whole run: 55 rounds, 2,750 episodes, 270,144 steps).``

    Args:
        history: The run's metrics rows, those of the rounds it resumed after included; their
            ``episodes`` and ``env_steps`` are the run's running totals.
        resumed_round: The round this command resumed after; 0 for a new run.
        seconds: How long the fit took.

    Returns:
        The line, without a newline.
    """
    last = history[-1]
    before = {"episodes": 0, "env_steps": 0}
    if resumed_round:
        before = next(row for row in history if int(row["round"]) == resumed_round)
    run_rounds = int(last["round"])
    rounds = _count(run_rounds - resumed_round, "round")
    episodes = int(last["episodes"]) - int(before["episodes"])
    steps = int(last["env_steps"]) - int(before["env_steps"])
    resumed = f" (resumed after round {resumed_round})" if resumed_round else ""
    line = (
        f"Finished {rounds}{resumed} in {seconds:.1f} s: {episodes:,} training episodes, "
        f"{steps:,} environment steps"
    )
    if not resumed_round:
        return f"{line}."
    return (
        f"{line} (the whole run: {_count(run_rounds, 'round')}, {int(last['episodes']):,} "
        f"episodes, {int(last['env_steps']):,} steps)."
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("s" if number != 1 else "")
