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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    table = []
    with tempfile.TemporaryDirectory() as workdir:
        for learner in args.learners:
            for seed in args.seeds:
                run, seconds = fit_config(CONFIGS[learner], seed, Path(workdir) / learner / str(seed))
                rows = read_metrics(run)
                reached = first_reaching(rows, GOAL)
                fresh = fresh_evaluation(run / "checkpoints" / "last.ckpt", run_population(run), seed)
                to_goal = (
                    f"round {reached.round}, {reached.env_steps:,} steps, {reached.seconds:.1f} s"
                    if reached
                    else "not reached"
                )
                print(
                    f"{learner} seed {seed}: {len(rows)} rounds, {int(rows[-1]['env_steps']):,} "
                    f"steps, fit {seconds:.1f} s; mean >= {GOAL:.0f}: {to_goal}; last.ckpt on "
                    f"fresh episodes: mean {fresh.mean():.1f}, worst agent {fresh.min():.1f}",
                    flush=True,
                )
                table.append(
                    f"| {learner} | {seed} | "
                    + (
                        f"{reached.env_steps:,} | {reached.seconds:.1f} s"
                        if reached
                        else "not reached | not reached"
                    )
                    + f" | {int(rows[-1]['env_steps']):,} | {fresh.mean():.1f} / {fresh.min():.1f} |"
                )
    print()
    print(
        f"| learner | seed | env steps to mean {GOAL:.0f} | wall time to it (rounds) "
        "| env steps in all | last.ckpt fresh mean / worst |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(table))


if __name__ == "__main__":
    main()
