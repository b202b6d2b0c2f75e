"""A multi-task federation (CartPole + Acrobot) against each task federated alone.

Usage::

    python benchmarks/multitask.py [--config configs/cartpole_acrobot_multitask.yaml]

Fits the config (ten agents, two tasks of five, a global trunk between task-scoped input and
output layers) with seeds 42, 43 and 44, and then each task alone: the same config with only
that task's five agents and half the agents per round, so every agent trains on the same
number of episodes in expectation. Each run's ``last.ckpt`` is evaluated on 20 fresh episodes
per agent with what the agent deploys (``load_module(last, agent=k)``), sampling actions.

The ratio compares each task's return in the multi-task federation with its return alone as
scores over a random policy, ``(multi - random) / (alone - random)``, so that Acrobot's
negative returns compare the same way as CartPole's positive ones; 1.0 means no loss.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import yaml
from fresh_evaluation import run_population
from machine import describe_machine
from milestones import read_metrics
from runs import fit_config

from fedrl_lightning import load_module
from fedrl_lightning.rollouts.evaluation import evaluate_agents

SEEDS = (42, 43, 44)
EPISODES = 20
RANDOM = {"CartPole-v1": 22.0, "Acrobot-v1": -500.0}
"""About what a random policy scores."""


def task_returns(run: Path) -> dict[str, float]:
    """Each task's mean return of what its agents deploy, on fresh episodes."""
    population = run_population(run)
    last = run / "checkpoints" / "last.ckpt"
    means: dict[str, list[float]] = {}
    for agent in range(population.num_agents):
        env_id = population.task_population(population.task_of(agent)).env_id
        policy = load_module(last, agent=agent).policy
        result = evaluate_agents(policy, population, [agent], EPISODES, 0)[0]
        means.setdefault(env_id, []).append(result.mean)
    return {env_id: float(np.mean(values)) for env_id, values in means.items()}


def alone(config: dict, task: dict, workdir: Path) -> Path:
    """The config with only ``task``'s agents, half the agents per round."""
    single = yaml.safe_load(yaml.safe_dump(config))
    tasks = single["data"]["tasks"]
    single["data"]["num_agents"] = single["data"]["num_agents"] // len(tasks)
    single["data"]["tasks"] = [task]
    single["data"]["env_id"] = task["env_id"]
    single["trainer"]["agents_per_round"] = single["trainer"]["agents_per_round"] // len(tasks)
    path = workdir / f"alone_{task['env_id']}.yaml"
    path.write_text(yaml.safe_dump(single))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", type=Path, default=Path("configs/cartpole_acrobot_multitask.yaml")
    )
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    config = yaml.safe_load(args.config.read_text())
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        runs = {"multi-task": args.config}
        runs |= {task["env_id"]: alone(config, task, workdir) for task in config["data"]["tasks"]}
        for name, path in runs.items():
            for seed in SEEDS:
                run, seconds = fit_config(path, seed, workdir / name / str(seed))
                returns = task_returns(run)
                steps = int(read_metrics(run)[-1]["env_steps"])
                print(f"{name} seed {seed}: {returns}, {steps:,} env steps, {seconds:.0f} s")
                for env_id, value in returns.items():
                    results.setdefault(env_id, {}).setdefault(name, []).append(value)
    print()
    print("| task | multi-task (seeds 42 / 43 / 44) | alone | ratio over random, per seed |")
    print("| --- | --- | --- | --- |")
    for env_id, by_run in results.items():
        multi, single = np.array(by_run["multi-task"]), np.array(by_run[env_id])
        ratios = (multi - RANDOM[env_id]) / (single - RANDOM[env_id])
        print(
            f"| {env_id} | {' / '.join(f'{v:.1f}' for v in multi)} | "
            f"{' / '.join(f'{v:.1f}' for v in single)} | "
            f"{' / '.join(f'{r:.2f}' for r in ratios)} (mean {ratios.mean():.2f}) |"
        )


if __name__ == "__main__":
    main()
