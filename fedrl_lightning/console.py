"""What a federated run shows on the console: progress over rounds, nothing else."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from lightning.fabric.utilities.warnings import PossibleUserWarning
from tqdm.auto import tqdm

__all__ = [
    "PlainRoundLog",
    "RoundProgress",
    "progress_fields",
    "quiet_lightning",
    "round_progress",
]

LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")
LOGGER_CHATTER = "lightning.pytorch.loggers"  # "Experiment with name ... not found. Creating it."


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


def round_progress(total: int, enabled: bool, done: int = 0) -> RoundProgress:
    """What shows progress over rounds, starting after the ``done`` rounds.

    A progress bar when ``enabled`` and the console is a terminal; otherwise one plain line
    per round, so that a log file stays readable.
    """
    if enabled and sys.stdout.isatty() and sys.stderr.isatty():
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
