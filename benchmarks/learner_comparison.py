"""REINFORCE, A2C and PPO on heterogeneous CartPole: steps and wall time to a mean of 475.

Usage::

    python benchmarks/learner_comparison.py [--learners REINFORCE A2C PPO] [--seeds 42 43 44]

Each learner's shipped config (10 agents, half-pole lengths 0.1-0.9) is fitted through the
real command line for each seed, one run after another. From the run's ``metrics.csv``: the
first round whose evaluation mean reaches 475, with the training env steps of all agents up
to it and the rounds' summed ``round_time`` (the process's start-up excluded). Then
``last.ckpt`` (not ``best.ckpt``) is evaluated on 20 fresh episodes per agent, with seeds the
run never used.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from fresh_evaluation import fresh_evaluation, run_population
from machine import describe_machine
from milestones import first_reaching, read_metrics
from runs import fit_config

CONFIGS = {
    "REINFORCE": Path("configs/cartpole_hetero.yaml"),
    "A2C": Path("configs/cartpole_hetero_a2c.yaml"),
    "PPO": Path("configs/cartpole_hetero_ppo.yaml"),
}
GOAL = 475.0


def fit_and_measure(learner: str, seed: int, workdir: Path) -> str:
    """Fit ``learner``'s config with ``seed``, print its figures, and return its table row."""
    run, seconds = fit_config(CONFIGS[learner], seed, workdir / learner / str(seed))
    rows = read_metrics(run)
    steps = int(rows[-1]["env_steps"])
    reached = first_reaching(rows, GOAL)
    fresh = fresh_evaluation(run / "checkpoints" / "last.ckpt", run_population(run), seed)
    to_goal = (
        f"round {reached.round}, {reached.env_steps:,} steps, {reached.seconds:.1f} s"
        if reached
        else "not reached"
    )
    print(
        f"{learner} seed {seed}: {len(rows)} rounds, {steps:,} steps, fit {seconds:.1f} s; "
        f"mean >= {GOAL:.0f}: {to_goal}; last.ckpt on fresh episodes: mean "
        f"{fresh.mean():.1f}, worst agent {fresh.min():.1f}",
        flush=True,
    )
    goal_cells = (
        f"{reached.env_steps:,} | {reached.seconds:.1f} s" if reached else "not reached | -"
    )
    fresh_cells = f"{fresh.mean():.1f} / {fresh.min():.1f}"
    return f"| {learner} | {seed} | {goal_cells} | {steps:,} | {fresh_cells} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    with tempfile.TemporaryDirectory() as workdir:
        table = [
            fit_and_measure(learner, seed, Path(workdir))
            for learner in args.learners
            for seed in args.seeds
        ]
    print()
    print(
        f"| learner | seed | env steps to mean {GOAL:.0f} | wall time to it (rounds) "
        "| env steps in all | last.ckpt fresh mean / worst |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(table))


if __name__ == "__main__":
    main()
