"""Heterogeneous CartPole: learning curve, final and best policy, and wall time, for 3 seeds.

Usage::

    python benchmarks/cartpole_hetero.py [--config configs/cartpole_hetero.yaml]

Each seed is fitted through the real command line. The run's own evaluation (20 episodes per
agent after every round) gives the learning curve. Then ``last.ckpt`` and ``best.ckpt`` are
evaluated again on 20 fresh episodes per agent, with seeds the run never used, so the best
round's score is not the lucky draw that selected it.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import numpy as np
import yaml
from machine import describe_machine
from runs import fit_config

from fedrl_lightning import AgentPopulation, Reinforce
from fedrl_lightning.rollouts.evaluation import evaluate_policy

SEEDS = (42, 43, 44)
EPISODES_PER_AGENT = 20
CURVE_EVERY = 10


def fresh_evaluation(checkpoint: Path, population: AgentPopulation, seed: int) -> np.ndarray:
    """Mean return per agent over fresh episodes."""
    module = Reinforce.load_from_checkpoint(checkpoint)
    agents = [a for a in range(population.num_agents) for _ in range(EPISODES_PER_AGENT)]
    env = population.make_vector_env(agents)
    seeds = [900_000_000 + seed * 10_000 + i for i in range(len(agents))]
    returns = evaluate_policy(module.policy, env, seeds, action_seed=seed + 1).returns
    env.close()
    return returns.reshape(population.num_agents, EPISODES_PER_AGENT).mean(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/cartpole_hetero.yaml"))
    args = parser.parse_args()
    data = yaml.safe_load(args.config.read_text())["data"]
    print(f"machine: {describe_machine()}")
    with tempfile.TemporaryDirectory() as workdir:
        for seed in SEEDS:
            run, seconds = fit_config(args.config, seed, Path(workdir) / str(seed))
            with open(run / "metrics.csv") as f:
                rows = list(csv.DictReader(f))
            population = AgentPopulation(
                data["env_id"],
                num_agents=data["num_agents"],
                heterogeneity=data.get("heterogeneity"),
            )
            curve = ", ".join(
                f"{r['round']}: {float(r['eval_reward']):.0f}/{float(r['eval_reward_min']):.0f}"
                for r in rows
                if int(r["round"]) % CURVE_EVERY == 0
            )
            print(f"seed {seed}: {seconds:.0f} s, {rows[-1]['episodes']} training episodes")
            print(f"  curve (round: mean/worst): {curve}")
            for name in ("last", "best"):
                per_agent = fresh_evaluation(run / "checkpoints" / f"{name}.ckpt", population, seed)
                print(
                    f"  {name}.ckpt on fresh episodes: mean {per_agent.mean():.1f}, "
                    f"worst agent {per_agent.min():.1f} (agent {per_agent.argmin()})"
                )


if __name__ == "__main__":
    main()
