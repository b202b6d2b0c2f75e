"""Solved control tasks: each config's final policy on fresh episodes, 3 seeds, beside its goal.

Usage::

    python benchmarks/solved_tasks.py configs/acrobot_ppo.yaml [CONFIG ...]

Each config is fitted for seeds 42, 43 and 44 through the real command line. The run's
``last.ckpt`` (never ``best.ckpt``) is then evaluated on 20 fresh episodes per agent, with
seeds the run never used, sampling actions as the policy does in training; the deterministic
policy (the most likely action, or the Gaussian's mean) is evaluated on the same episodes
beside it. Env steps are the run's own count, summed over all agents' training episodes.
The 3-seed mean is printed beside the goal and the anchor the issue names for that config.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fresh_evaluation import fresh_evaluation, run_population
from machine import describe_machine
from runs import fit_config

SEEDS = (42, 43, 44)
EPISODES_PER_AGENT = 20


@dataclass(frozen=True)
class Goal:
    """What a config must reach, and the published figure it is compared with.

    Attributes:
        mean: The least 3-seed mean return over all agents.
        max_steps: The most env steps (summed over all agents) a run may take.
        anchor: The published figure, in words.
        worst: The least 3-seed mean of the worst agent's return; ``None``: no bound.
    """

    mean: float
    max_steps: int
    anchor: str
    worst: float | None = None

    def describe(self) -> str:
        """The goal in words, such as ``mean >= -85 within 300,000 steps``."""
        worst = f" and worst agent >= {self.worst:g}" if self.worst is not None else ""
        return f"mean >= {self.mean:g}{worst} within {self.max_steps:,} steps"

    def met(self, mean: float, worst: float, steps: int) -> bool:
        """Whether 3-seed means ``mean`` and ``worst`` reach the goal in the most ``steps``."""
        worst_ok = self.worst is None or worst >= self.worst
        return mean >= self.mean and worst_ok and steps <= self.max_steps


GOALS: dict[str, Goal] = {
    "cartpole_hetero_ppo.yaml": Goal(
        490.0,
        150_000,
        "CleanRL PPO, single agent, standard pole: first 475 average at 132k-209k steps",
        worst=475.0,
    ),
    "acrobot_ppo.yaml": Goal(-85.0, 300_000, "CleanRL PPO: -86 at 500k steps"),
    "pendulum_hetero_ppo.yaml": Goal(
        -200.0, 300_000, "RL Zoo PPO: -172 +- 104 at 100k steps, single agent, with gSDE"
    ),
    "lunarlander_ppo.yaml": Goal(
        200.0,
        1_000_000,
        "RL Zoo PPO: 242 at 1M steps, single agent; "
        "FedHPD, 10 federated agents: 160 after 3,000 episodes each",
    ),
}


@dataclass(frozen=True)
class SeedResult:
    """One seed's run of a config.

    Attributes:
        seed: The run seed.
        env_steps: Training env steps, summed over all agents.
        seconds: Wall time of the whole ``fit`` command.
        per_agent: Each agent's mean return over fresh episodes, actions sampled.
        per_agent_deterministic: The same with deterministic actions.
    """

    seed: int
    env_steps: int
    seconds: float
    per_agent: np.ndarray
    per_agent_deterministic: np.ndarray


def run_seed(config: Path, seed: int, root: Path) -> SeedResult:
    """Fit ``config`` with ``seed`` under ``root``, then evaluate its ``last.ckpt``."""
    run, seconds = fit_config(config, seed, root)
    with open(run / "metrics.csv") as f:
        env_steps = int(list(csv.DictReader(f))[-1]["env_steps"])
    population = run_population(run)
    last = run / "checkpoints" / "last.ckpt"
    return SeedResult(
        seed,
        env_steps,
        seconds,
        fresh_evaluation(last, population, seed, EPISODES_PER_AGENT),
        fresh_evaluation(last, population, seed, EPISODES_PER_AGENT, deterministic=True),
    )


def report(config: Path, results: list[SeedResult]) -> None:
    """Print the 3-seed figures of ``config`` beside its goal and anchor."""
    mean = float(np.mean([r.per_agent.mean() for r in results]))
    worst = float(np.mean([r.per_agent.min() for r in results]))
    steps = float(np.mean([r.env_steps for r in results]))
    most_steps = max(r.env_steps for r in results)
    seconds = float(np.mean([r.seconds for r in results]))
    det_mean = float(np.mean([r.per_agent_deterministic.mean() for r in results]))
    det_worst = float(np.mean([r.per_agent_deterministic.min() for r in results]))
    print(
        f"  {len(results)}-seed mean: {mean:.1f} (worst agent {worst:.1f}) in {steps:,.0f} "
        f"steps, {seconds:.0f} s per seed; deterministic {det_mean:.1f} (worst {det_worst:.1f})"
    )
    goal = GOALS.get(config.name)
    if goal is None:
        print(f"  no goal for {config.name}; known: {', '.join(GOALS)}")
        return
    verdict = "MET" if goal.met(mean, worst, most_steps) else "MISSED"
    print(f"  goal: {goal.describe()}: {verdict}")
    print(f"  anchor: {goal.anchor}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", type=Path, nargs="+", help="config files to fit")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="run seeds")
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    print(f"{EPISODES_PER_AGENT} fresh episodes per agent on last.ckpt, actions sampled")
    with tempfile.TemporaryDirectory() as workdir:
        for config in args.configs:
            print(f"{config}:")
            results = []
            for seed in args.seeds:
                result = run_seed(config, seed, Path(workdir) / config.stem / str(seed))
                results.append(result)
                print(
                    f"  seed {seed}: {result.env_steps:,} env steps, {result.seconds:.0f} s, "
                    f"mean {result.per_agent.mean():.1f}, worst agent "
                    f"{result.per_agent.min():.1f} (agent {result.per_agent.argmin()}); "
                    f"deterministic mean {result.per_agent_deterministic.mean():.1f}, "
                    f"worst {result.per_agent_deterministic.min():.1f}",
                    flush=True,
                )
            report(config, results)


if __name__ == "__main__":
    main()
