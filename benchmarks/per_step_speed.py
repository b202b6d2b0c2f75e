"""Time per env step of our fit against a CleanRL script: the runs, timed alike, and the table.

``vs_cleanrl_dqn.py`` and ``vs_cleanrl_sac.py`` each build the two commands (the same task,
steps and hyperparameters); this module runs them in turn, each a fresh process pinned to
core 0 with one thread, and writes the rows the two tables share.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import sys
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from milestones import read_metrics
from protocol import TableResults
from vs_cleanrl import load, timestamped_lines

CLEANRL = Path("/work/cleanrl")
"""Where the comparisons look for CleanRL's scripts by default (not part of this repository)."""
CLEANRL_PYTHON = "/work/cleanrl/.venv/bin/python"
"""A Python that runs them (CleanRL pins gymnasium 0.29.1)."""
GOAL = 1.1
"""The issue's goal: ours takes at most 1.1 times CleanRL's time per env step."""
SPS = re.compile(r"^SPS: (\d+)")
COLUMNS = ["run", "wall time", "CPU time", "per env step", "per env step, start-up left out"]


class Run(NamedTuple):
    """One timed process, in seconds."""

    wall: float
    """From the process's start to its end."""
    cpu: float
    """The CPU time it used (user and system): not the time it waited for the core."""
    loop: float
    """Wall time without its start-up: our summed round times, or CleanRL's loop."""


def one_agent_fit(
    learner: str, model: dict[str, str], env_id: str, steps: int, steps_per_round: int, root: Path
) -> list[str]:
    """Our fit as CleanRL's script runs: one agent, ``steps`` env steps of ``env_id``.

    A federation of one agent, one agent a round, ``steps_per_round`` steps a round, one
    evaluation episode after each; ``model`` is the learner's options.

    Raises:
        ValueError: If ``steps`` is not a whole number of rounds.
    """
    if steps % steps_per_round:
        raise ValueError(f"--steps ({steps}) must be a multiple of {steps_per_round}")
    options = model | {"steps_per_round": str(steps_per_round)}
    return [
        sys.executable,
        "-m",
        "fedrl_lightning",
        "fit",
        f"--model={learner}",
        *(f"--model.{name}={value}" for name, value in options.items()),
        f"--data.env_id={env_id}",
        "--data.num_agents=1",
        "--trainer.agents_per_round=1",
        f"--trainer.num_rounds={steps // steps_per_round}",
        "--trainer.strategy=FedAvg",
        "--trainer.eval_episodes=1",
        "--trainer.eval_agents=1",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={root}",
        "--seed_everything=1",
    ]


def children_cpu_seconds() -> float:
    """User and system CPU seconds of this process's finished children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_ours(command: list[str], root: Path) -> Run:
    """Our fit as a fresh process, its run under ``root``; its loop is the summed round times.

    The summed ``round_time`` of ``metrics.csv``: each round's fits, aggregation and
    evaluation, without the process's start-up.
    """
    cpu = children_cpu_seconds()
    _, seconds = timestamped_lines(command, os.getcwd())
    cpu = children_cpu_seconds() - cpu
    run = max(root.glob("lightning_logs/version_*"), key=lambda p: p.stat().st_mtime)
    rounds = sum(float(row["round_time"]) for row in read_metrics(run))
    return Run(seconds, cpu, rounds)


def run_cleanrl(command: list[str], steps: int, workdir: Path) -> Run:
    """A CleanRL script as a fresh process; its loop is ``steps`` over its last ``SPS``."""
    cpu = children_cpu_seconds()
    lines, seconds = timestamped_lines(command, str(workdir))
    cpu = children_cpu_seconds() - cpu
    rates = [int(m[1]) for _, line in lines if (m := SPS.match(line))]
    if not rates:
        raise RuntimeError("CleanRL printed no SPS line: did it train at all?")
    return Run(seconds, cpu, steps / rates[-1])


def microseconds(seconds: float, steps: int) -> str:
    """Seconds over ``steps`` as microseconds per step."""
    return f"{seconds / steps * 1e6:.0f} µs"


def parse_arguments(doc: str, script: str, steps: int, steps_per_round: int) -> Namespace | None:
    """The command line of a comparison with CleanRL's ``script``, and its defaults.

    Returns:
        The arguments; ``None``, once said, where CleanRL's script is not found.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(
        "--cleanrl", type=Path, default=CLEANRL / script, help=f"CleanRL's {script}"
    )
    parser.add_argument("--cleanrl-python", default=CLEANRL_PYTHON)
    parser.add_argument("--steps", type=int, default=steps, help="env steps of each run")
    parser.add_argument("--steps-per-round", type=int, default=steps_per_round)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, in turn")
    TableResults.add_no_write(parser)
    args = parser.parse_args()
    if not args.cleanrl.is_file():
        print(f"CleanRL's {script} not found at {args.cleanrl}: comparison skipped")
        return None
    return args


def run_in_turn(
    args: Namespace,
    our_fit_arguments: Callable[[int, int, Path], list[str]],
    cleanrl_arguments: Callable[[Path, int], list[str]],
    workdir: Path,
) -> tuple[list[Run], list[Run]]:
    """Our fit and CleanRL's script in turn, ``args.repeats`` times each.

    Args:
        args: The command line (:func:`parse_arguments`).
        our_fit_arguments: Our fit's command, from the steps, the steps a round and the root
            folder its run goes under (a new one each repeat, under ``workdir``).
        cleanrl_arguments: CleanRL's options, from its script and the steps; run in
            ``workdir`` by ``args.cleanrl_python``.
        workdir: A scratch folder.

    Returns:
        Our runs and CleanRL's.
    """
    cleanrl = [args.cleanrl_python, *cleanrl_arguments(args.cleanrl, args.steps)]
    ours: list[Run] = []
    theirs: list[Run] = []
    for repeat in range(1, args.repeats + 1):
        root = workdir / str(repeat) / "ours"
        print(f"ours, run {repeat}: starting, {load()}", flush=True)
        ours.append(run_ours(our_fit_arguments(args.steps, args.steps_per_round, root), root))
        print(f"  {ours[-1]}", flush=True)
        print(f"CleanRL, run {repeat}: starting, {load()}", flush=True)
        theirs.append(run_cleanrl(cleanrl, args.steps, workdir))
        print(f"  {theirs[-1]}", flush=True)
    return ours, theirs


def add_comparison(
    table: TableResults, ours: list[Run], cleanrl: list[Run], steps: int, startup: str
) -> dict[str, float]:
    """Each run's row, the medians' ratio and the note that says whether the goal is met.

    Args:
        table: The results table, of :data:`COLUMNS`.
        ours: Our runs.
        cleanrl: CleanRL's runs.
        steps: Env steps of each run.
        startup: What start-up means for CleanRL's script, for the note.

    Returns:
        Ours over CleanRL's, medians, for each of :class:`Run`'s fields.
    """
    for who, runs in (("ours", ours), ("CleanRL's", cleanrl)):
        for i, run in enumerate(runs, 1):
            table.add_row(
                f"{who}, run {i}",
                f"{run.wall:.2f} s",
                f"{run.cpu:.2f} s",
                microseconds(run.wall, steps),
                microseconds(run.loop, steps),
            )
    ratio = {
        field: statistics.median(getattr(o, field) for o in ours)
        / statistics.median(getattr(c, field) for c in cleanrl)
        for field in Run._fields
    }
    table.add_row(
        "ours / CleanRL's (medians)",
        f"{ratio['wall']:.2f}x",
        f"{ratio['cpu']:.2f}x",
        f"{ratio['wall']:.2f}x",
        f"{ratio['loop']:.2f}x",
    )
    met = "met" if ratio["loop"] <= GOAL else "missed"
    table.add_note(
        f"{steps:,} env steps each, {len(ours)} runs of each in turn, one core each. "
        f"Goal: at most {GOAL}x CleanRL's time per env step: **{met}** without start-up "
        f"({ratio['loop']:.2f}x); {ratio['wall']:.2f}x with it (starting Python and importing "
        f"torch, Lightning and the CLI count for ours, {startup} for CleanRL's). CPU time "
        "is what each process used of its core, start-up included; wall time adds what it "
        f"waited for the core while other processes ran on it (load average "
        f"{table.results['load_before']:.2f} at the start)."
    )
    return ratio
