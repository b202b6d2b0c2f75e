"""Personalization on simple_conflict: what each agent deploys, on fresh episodes, 3 seeds.

Usage::

    python benchmarks/personalization.py configs/simple_conflict.yaml \
        configs/simple_conflict_personal.yaml configs/simple_conflict_ifca.yaml \
        [--episodes 1000]

Each config is fitted for seeds 42, 43 and 44 through the real command line. Then every
agent's deployed policy from ``last.ckpt`` (``load_module(last, agent=k)``: the global weights
with its task's and its own parameters, which is the global policy for a run without
personalization) plays ``--episodes`` fresh episodes of its own environment, seeds the run
never used, sampling actions. The oracle of the agent's task plays the same episodes beside
it: a SimpleEnv episode's return is nearly 0 or 100, so even the oracle's mean over 1,000
episodes varies by about 1.3 from agent to agent, and the oracle's own score says what a
perfect policy would have scored on them. The goal is every agent at least 72.

For a clustered run (``--trainer.server Clustered``, IFCA), it also prints the final assignment, the
cluster each agent deploys (its last choice), beside its ``reward_sign``, and whether it
separates the two tasks exactly: every agent of a task in one cluster, and the two tasks in
different ones.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from fresh_evaluation import run_population
from machine import describe_machine
from runs import fit_config

from fedrl_lightning import AgentPopulation, load_module
from fedrl_lightning.federation.server.clustered import deployed_cluster
from fedrl_lightning.rollouts.evaluation import evaluate_agents, fresh_episode_seeds
from fedrl_lightning.run.checkpoints import load_checkpoint

SEEDS = (42, 43, 44)
GOAL = 72.0


def oracle_returns(population: AgentPopulation, agent: int, episodes: int) -> float:
    """The mean return of agent ``agent``'s task's oracle on its fresh episodes."""
    env = population.make_env(agent)
    sign = env.unwrapped.reward_sign
    returns = []
    for reset_seed in fresh_episode_seeds(0, agent, episodes):
        observation, _ = env.reset(seed=reset_seed)
        total, done = 0.0, False
        while not done:
            larger = int(observation[1] > observation[0])
            observation, reward, terminated, truncated, _ = env.step(
                larger if sign > 0 else 1 - larger
            )
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


def deployed_returns(run: Path, episodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Each agent's deployed policy's mean return, and its oracle's, on fresh episodes."""
    population = run_population(run)
    last = run / "checkpoints" / "last.ckpt"
    agents = range(population.num_agents)
    own = [
        evaluate_agents(load_module(last, agent=a).policy, population, [a], episodes, 0)[0].mean
        for a in agents
    ]
    oracle = [oracle_returns(population, a, episodes) for a in agents]
    return np.array(own), np.array(oracle)


def final_assignment(run: Path) -> tuple[str, bool] | None:
    """A clustered run's final ``agent:cluster(sign)`` list, and whether it separates the tasks.

    ``None`` for a run without clusters.
    """
    population = run_population(run)
    shared = load_checkpoint(run / "checkpoints" / "last.ckpt")["fedrl"].get("shared") or {}
    agents = range(population.num_agents)
    clusters = [deployed_cluster(shared, a) for a in agents]
    if clusters[0] is None:
        return None
    signs = [population.make_env(a).unwrapped.reward_sign for a in agents]
    pairs = set(zip(signs, clusters, strict=True))
    exact = len(pairs) == len(set(signs)) == len(set(clusters))
    listed = " ".join(f"{a}:{c}({s:+.0f})" for a, c, s in zip(agents, clusters, signs, strict=True))
    return listed, exact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+", type=Path)
    parser.add_argument("--episodes", type=int, default=1000)
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    table = []
    with tempfile.TemporaryDirectory() as workdir:
        for config in args.configs:
            cells, separated = [], []
            for seed in SEEDS:
                run, seconds = fit_config(config, seed, Path(workdir) / config.stem / str(seed))
                own, oracle = deployed_returns(run, args.episodes)
                worst = int(own.argmin())
                print(
                    f"{config.name} seed {seed} ({seconds:.0f} s): per agent "
                    f"{np.round(own, 1).tolist()}; mean {own.mean():.1f}, worst agent {worst} "
                    f"{own.min():.1f} (its oracle {oracle[worst]:.1f}); oracle mean "
                    f"{oracle.mean():.1f}, worst {oracle.min():.1f}",
                    flush=True,
                )
                assignment = final_assignment(run)
                if assignment is not None:
                    print(
                        f"  final assignment, agent:cluster(reward_sign): {assignment[0]}; "
                        f"separates the tasks exactly: {'yes' if assignment[1] else 'no'}",
                        flush=True,
                    )
                    separated.append(assignment[1])
                cells.append((own.mean(), own.min(), oracle.min(), bool((own >= GOAL).all())))
            seeds = " / ".join(f"{mean:.1f}" for mean, _, _, _ in cells)
            worst = " / ".join(f"{low:.1f}" for _, low, _, _ in cells)
            oracle = " / ".join(f"{low:.1f}" for _, _, low, _ in cells)
            met = sum(ok for *_, ok in cells)
            exact = f"{sum(separated)} of 3 seeds" if separated else "n/a"
            table.append(
                f"| `{config.name}` | {seeds} | {worst} | {oracle} | {met} of 3 seeds | {exact} |"
            )
    print()
    print(
        "| config | mean over agents (seeds 42 / 43 / 44) | worst agent | the oracle's worst "
        f"agent | every agent >= {GOAL:.0f} | clusters separate the tasks exactly |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(table))


if __name__ == "__main__":
    main()
