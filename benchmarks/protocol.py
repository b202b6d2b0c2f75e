"""The figures protocol: held-out seeds, IQM and mean with bootstrap CIs, results as data.

A learning figure is a claim users will re-run, so it is measured the way Agarwal et al.
("Deep RL at the Edge of the Statistical Precipice", NeurIPS 2021) recommend:

- at least 10 training seeds that the config was never tuned on (:data:`REPORTING_SEEDS`;
  tuning happens on :data:`TUNING_SEEDS`);
- per seed, ``last.ckpt`` on fresh episodes;
- the interquartile mean (IQM) and the mean over seeds, each with a 95% stratified bootstrap
  confidence interval from ``rliable``;
- the per-seed values, and the fraction of seeds that meet the goal.

A goal is met when the IQM reaches it **and** enough seeds meet it on their own (8 of 10
unless the goal says otherwise): a goal met only on average is a miss.

Every benchmark built on this module writes one results file under ``benchmarks/results/``
(:func:`write_results`) holding the commit, whether the tree was clean, the machine, the
config's hash, the seeds, the per-seed numbers, the summary and the wall time. The docs' tables
are generated from these files (``benchmarks/render_figures.py``), never typed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

TUNING_SEEDS: tuple[int, ...] = tuple(range(10))
"""Seeds a config may be tuned on; never reported as a figure."""

REPORTING_SEEDS: tuple[int, ...] = tuple(range(100, 110))
"""Seeds a figure is reported on; no config was tuned on them."""

BOOTSTRAP_REPS = 50_000
"""Bootstrap resamples for each confidence interval."""

SOURCES = ("fedrl_lightning", "configs", "benchmarks", "pyproject.toml", "constraints.txt")
"""What a figure depends on: a change to any of these (results files aside) makes the tree
unclean for a measurement."""


@dataclass(frozen=True)
class Goal:
    """What a figure must reach over its seeds.

    The goal is met when the IQM reaches ``iqm`` (where set) and at least ``seeds_needed``
    seeds each meet the per-seed conditions: value at ``seed_value`` or better, worst agent at
    ``seed_worst`` or better, and at most ``max_env_steps`` env steps.

    Attributes:
        text: The goal in words, as the docs print it.
        iqm: The IQM over seeds must reach it; ``None``: no bound on the IQM.
        seed_value: A seed's value must reach it; ``None``: no bound.
        seed_worst: A seed's worst agent must reach it; ``None``: no bound.
        seeds_needed: How many of the seeds must meet the per-seed conditions.
        max_env_steps: The most env steps (summed over all agents) a seed may take.
        lower_is_better: ``True`` where reaching means being at or below (such as "stays at
            -200", or env steps to a goal).
    """

    text: str
    iqm: float | None = None
    seed_value: float | None = None
    seed_worst: float | None = None
    seeds_needed: int = 8
    max_env_steps: int | None = None
    lower_is_better: bool = False

    def reaches(self, value: float, bound: float | None) -> bool:
        """Whether ``value`` is at ``bound`` or on its better side; ``True`` without a bound."""
        if bound is None:
            return True
        return value <= bound if self.lower_is_better else value >= bound

    def seed_meets(self, value: float, worst: float, env_steps: int) -> bool:
        """Whether one seed's ``value``, ``worst`` agent and ``env_steps`` meet the goal."""
        steps_ok = self.max_env_steps is None or env_steps <= self.max_env_steps
        value_ok = self.reaches(value, self.seed_value)
        return value_ok and self.reaches(worst, self.seed_worst) and steps_ok


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% bootstrap confidence interval."""

    value: float
    low: float
    high: float


def interval_estimates(values: Sequence[float], reps: int = BOOTSTRAP_REPS) -> dict[str, Estimate]:
    """The IQM and the mean of ``values`` (one per seed), each with a 95% bootstrap CI.

    ``rliable``'s stratified bootstrap over the seeds of one task (with one task, stratified
    and plain resampling agree), its percentile interval, seeded so the same values always give
    the same interval.

    Returns:
        ``{"iqm": ..., "mean": ...}``.
    """
    from rliable import library, metrics

    scores = np.asarray(values, dtype=np.float64).reshape(-1, 1)

    def aggregates(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x)])

    np.random.seed(0)  # rliable's bootstrap draws from numpy's global generator
    points, intervals = library.get_interval_estimates({"x": scores}, aggregates, reps=reps)
    low, high = intervals["x"]
    return {
        name: Estimate(float(points["x"][i]), float(low[i]), float(high[i]))
        for i, name in enumerate(("iqm", "mean"))
    }


def summarize(
    seeds: Sequence[dict[str, Any]], goal: Goal | None, reps: int = BOOTSTRAP_REPS
) -> dict[str, Any]:
    """The summary of a figure's per-seed records.

    Args:
        seeds: Per-seed records, each with ``value``, ``worst_agent`` and ``env_steps``.
        goal: The figure's goal; ``None`` for a figure that is only reported.
        reps: Bootstrap resamples for each interval.

    Returns:
        The IQM and mean of the values and of the worst agents with their CIs, the seeds that
        meet the goal, and whether the goal is met.
    """
    values = [s["value"] for s in seeds]
    worst = [s["worst_agent"] for s in seeds]
    summary: dict[str, Any] = {
        "seeds": len(seeds),
        **{k: asdict(v) for k, v in interval_estimates(values, reps).items()},
        "worst_agent": {k: asdict(v) for k, v in interval_estimates(worst, reps).items()},
    }
    if goal is not None:
        summary |= verdict(seeds, goal, summary["iqm"]["value"])
    return summary


def verdict(seeds: Sequence[dict[str, Any]], goal: Goal, iqm: float) -> dict[str, Any]:
    """How many ``seeds`` meet ``goal``, and whether it is met given the seeds' ``iqm``.

    Returns:
        ``{"seeds_meeting_goal": int, "goal_met": bool}``.
    """
    met = sum(goal.seed_meets(s["value"], s["worst_agent"], s["env_steps"]) for s in seeds)
    return {
        "seeds_meeting_goal": int(met),
        "goal_met": bool(goal.reaches(iqm, goal.iqm) and met >= goal.seeds_needed),
    }


def git(*args: str) -> str:
    """The output of ``git args`` in the repository, stripped; ``""`` where git fails."""
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def provenance() -> dict[str, Any]:
    """The commit, whether the sources were clean, and the machine, for a results file."""
    from machine import cpu_model, describe_machine

    dirty = git("status", "--porcelain", "--", *SOURCES, ":!benchmarks/results")
    return {
        "commit": git("rev-parse", "HEAD") or "unknown",
        "clean": dirty == "" and git("rev-parse", "HEAD") != "",
        "cpu": cpu_model(),
        "machine": describe_machine(),
        "cores": os.cpu_count(),
    }


def config_hash(config: Path, overrides: Sequence[str] = ()) -> str:
    """A short SHA-256 of what the config sets, and of the overrides given beside it.

    The config's parsed content is hashed, not its bytes, so its comments can change without
    a re-measure; any value that changes does change the hash.
    """
    import yaml

    content = json.dumps(yaml.safe_load(config.read_text()), sort_keys=True)
    digest = hashlib.sha256(content.encode())
    for override in overrides:
        digest.update(b"\0" + override.encode())
    return digest.hexdigest()[:16]


def results_path(name: str) -> Path:
    """Where figure ``name``'s results file lives."""
    return RESULTS / f"{name}.json"


def write_results(name: str, results: dict[str, Any]) -> Path:
    """Write ``results`` as figure ``name``'s results file, atomically; return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = results_path(name)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(results, indent=1, sort_keys=False) + "\n")
    os.replace(partial, path)
    return path


class TableResults:
    """A measurement that is a table, not a learning figure (timings, counts), as a results file.

    Built when the benchmark starts, so its provenance is the commit and tree the measurement
    ran on, and written at its end: ``benchmarks/render_figures.py`` makes the page
    ``docs/figures/NAME.md`` from it. Building one prints the machine. Timings are only as
    good as the machine was quiet, so the file keeps the one-minute load average at the start
    and at the end.

    Args:
        name: The results file's and the page's name (``benchmarks/results/NAME.json``).
        title: The page's title.
        command: The command that measures it.
        columns: The table's column names.
    """

    def __init__(self, name: str, title: str, command: str, columns: Sequence[str]) -> None:
        self.name = name
        self.results: dict[str, Any] = {
            "table": name,
            "topic": name,
            "title": title,
            "command": command,
            **provenance(),
            "load_before": round(os.getloadavg()[0], 2),
            "columns": list(columns),
            "rows": [],
            "notes": [],
        }
        self.started = time.perf_counter()
        print(f"machine: {self.results['machine']}")

    @staticmethod
    def add_no_write(parser: argparse.ArgumentParser) -> None:
        """Give a benchmark's ``parser`` the ``--no-write`` flag (print only)."""
        parser.add_argument("--no-write", action="store_true", help="print only; write no results")

    def add_row(self, *cells: Any) -> None:
        """Append one row; it must have a cell per column."""
        if len(cells) != len(self.results["columns"]):
            raise ValueError(f"{len(cells)} cells for {len(self.results['columns'])} columns")
        self.results["rows"].append(list(cells))

    def add_note(self, note: str) -> None:
        """Append a line printed under the table."""
        self.results["notes"].append(note)

    def write(self, totals: bool = False) -> Path:
        """Write the results file, with the wall time so far; return its path.

        Args:
            totals: Whether the last row holds totals (printed in bold).
        """
        self.results["totals"] = totals
        self.results["load_after"] = round(os.getloadavg()[0], 2)
        self.results["wall_seconds"] = round(time.perf_counter() - self.started, 1)
        return write_results(self.name, self.results)
