"""What the report's figures plot, computed from run records: plain numpy, no drawing.

Each function takes a :class:`~fedrl_lightning.run.run_record.RunRecord` and returns
arrays or (round, agent) pairs, so the tests can check them against ``metrics.csv`` by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from fedrl_lightning.run.run_record import RunRecord

__all__ = [
    "MARK_KINDS",
    "XAxis",
    "agent_band",
    "agent_marks",
    "agent_names",
    "heatmap",
    "marked_rounds",
    "run_labels",
    "x_values",
]

XAxis = Literal["rounds", "env_steps"]
"""What the x axis of the learning curve and the traffic shows."""
MARK_KINDS = {"failed": "failed_agents", "byzantine": "byzantine_agents"}
"""The agents a figure marks, by kind: the record's attribute that lists them per round."""


def x_values(run: RunRecord, x: XAxis) -> np.ndarray:
    """Each round's position on the x axis: its number, or the env steps taken by its end."""
    return run.rounds.astype(np.float64) if x == "rounds" else run.column("env_steps")


def agent_band(run: RunRecord) -> tuple[np.ndarray, np.ndarray]:
    """The lowest and highest per-agent evaluation return of each round.

    Agents left out of a round's evaluation (an empty cell) are skipped; a round that
    evaluated none gets ``NaN``.
    """
    if not run.agent_returns:
        empty = np.full(len(run.rounds), np.nan)
        return empty, empty.copy()
    table = np.stack(list(run.agent_returns.values()))
    evaluated = ~np.isnan(table)
    low = np.where(evaluated, table, np.inf).min(axis=0)
    high = np.where(evaluated, table, -np.inf).max(axis=0)
    none = ~evaluated.any(axis=0)
    return np.where(none, np.nan, low), np.where(none, np.nan, high)


def agent_marks(run: RunRecord, kind: str) -> list[tuple[int, int]]:
    """The (round, agent) pairs of the ``failed`` or ``byzantine`` agents, round by round."""
    lists = getattr(run, MARK_KINDS[kind])
    return [
        (int(round_idx), agent)
        for round_idx, agents in zip(run.rounds, lists, strict=True)
        for agent in agents
    ]


def marked_rounds(run: RunRecord, kind: str) -> np.ndarray:
    """The rounds with at least one ``failed`` or ``byzantine`` agent."""
    lists = getattr(run, MARK_KINDS[kind])
    return np.asarray([r for r, agents in zip(run.rounds, lists, strict=True) if agents], int)


def heatmap(run: RunRecord) -> tuple[list[int], np.ndarray]:
    """The agents' evaluation returns as a table of agents × rounds.

    The rows are every evaluated agent and every agent that failed or was Byzantine in some
    round, in order of id. An agent that a round did not evaluate has ``NaN`` there.

    Returns:
        The agent of each row, and the table, of shape ``[agents, rounds]``.
    """
    marked = {agent for kind in MARK_KINDS for _, agent in agent_marks(run, kind)}
    agents = sorted(set(run.agent_returns) | marked)
    table = np.full((len(agents), len(run.rounds)), np.nan)
    for row, agent in enumerate(agents):
        if agent in run.agent_returns:
            table[row] = run.agent_returns[agent]
    return agents, table


def agent_names(run: RunRecord, agents: Sequence[int]) -> list[str]:
    """Labels of ``agents`` for an axis: the id and what ``agents.csv`` says of it.

    For example ``0: length 0.1`` for a heterogeneous CartPole, or ``2: sign_flip`` for a
    Byzantine agent.
    """
    table = {row.get("agent"): row for row in run.agents}
    names = []
    for agent in agents:
        details = []
        for key, value in table.get(str(agent), {}).items():
            if key == "agent" or not value:
                continue
            details.append(value if key == "byzantine" else f"{key} {_short(value)}")
        names.append(f"{agent}: {', '.join(details)}" if details else str(agent))
    return names


def run_labels(runs: Sequence[RunRecord]) -> list[str]:
    """Default labels of ``runs``: strategy, learner and seed, as ``FedAvg · PPO · seed 42``.

    With several runs, only what differs between them is kept (``seed 42``, ``seed 43``). If
    that leaves two runs with the same label, each gets its folder added.
    """
    parts = [
        [run.strategy, run.learner, None if run.seed is None else f"seed {run.seed}"]
        for run in runs
    ]
    if len(runs) > 1:
        differ = [i for i in range(3) if len({p[i] for p in parts}) > 1]
        if differ:
            parts = [[p[i] for i in differ] for p in parts]
    labels = [" · ".join(part for part in p if part) for p in parts]
    if len(set(labels)) < len(labels):
        labels = [
            f"{label} ({run.path})" if label else str(run.path)
            for label, run in zip(labels, runs, strict=True)
        ]
    return [label or str(run.path) for label, run in zip(labels, runs, strict=True)]


def _short(value: str) -> str:
    """A number in ``agents.csv`` with 3 significant digits; other text as it is."""
    try:
        return f"{float(value):.3g}"
    except ValueError:
        return value
