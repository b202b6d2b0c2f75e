"""Reading a run's ``metrics.csv``: the rows, and the first round whose eval mean reaches a goal."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Milestone:
    """The first round whose evaluation mean reached a goal.

    Attributes:
        round: The round, counted from 1.
        env_steps: Training env steps of all agents up to and including that round.
        seconds: The rounds' ``round_time`` summed up to and including that round (the
            process's start-up is not in it).
    """

    round: int
    env_steps: int
    seconds: float


def read_metrics(run: Path) -> list[dict[str, str]]:
    """The rows of ``run``'s ``metrics.csv``, one per round."""
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


def first_reaching(rows: list[dict[str, str]], goal: float) -> Milestone | None:
    """The first round whose ``eval_reward`` is at least ``goal``; ``None`` if none is."""
    seconds = 0.0
    for row in rows:
        seconds += float(row["round_time"])
        if float(row["eval_reward"]) >= goal:
            return Milestone(int(row["round"]), int(row["env_steps"]), seconds)
    return None
