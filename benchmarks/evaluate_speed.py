"""The evaluate command's batched evaluation against SB3's evaluate_policy pattern.

Usage::

    python benchmarks/evaluate_speed.py [--run RUN_FOLDER] [--episodes 100] [--no-write]

Without ``--run``, fits ``configs/cartpole_hetero_ppo.yaml`` (seed 43) first, for a policy
that balances every pole for 500 steps. Then the same policy, acting deterministically, plays
10 agents x ``--episodes`` fresh episodes of CartPole (up to 500 steps each) twice:

- **batched**: ``fedrl_lightning.rollouts.evaluation.evaluate_agents``, what ``python -m
  fedrl_lightning evaluate`` runs: every episode of every agent is one sub-environment of one
  vector environment, stepped in lock-step with one (numpy) policy call per step;
- **one at a time**: SB3's ``evaluate_policy`` pattern, one episode after another, one step at
  a time, ``module.act(obs, deterministic=True)`` (torch) on a single environment.

Both use the same reset seeds, so they must give the same returns; the benchmark checks it.
Both run on one thread. The whole command, ``python -m fedrl_lightning evaluate``, is also
timed as a process, its start-up included. Writes ``benchmarks/results/evaluation_speed.json``
(not with ``--run``: then the policy is not the benchmark's), from which
``benchmarks/render_figures.py`` makes ``docs/figures/evaluation_speed.md``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from fresh_evaluation import run_population
from protocol import TableResults
from runs import fit_config

from fedrl_lightning import AgentPopulation, load_module
from fedrl_lightning.learners import Learner
from fedrl_lightning.rollouts.evaluation import evaluate_agents, fresh_episode_seeds

SEED = 0


def one_episode_at_a_time(
    module: Learner, population: AgentPopulation, episodes: int
) -> tuple[np.ndarray, int]:
    """SB3's pattern: returns ``[agents, episodes]`` and the steps taken."""
    returns = np.zeros((population.num_agents, episodes))
    steps = 0
    for agent in range(population.num_agents):
        env = population.make_env(agent)
        for i, reset_seed in enumerate(fresh_episode_seeds(SEED, agent, episodes)):
            observation, _ = env.reset(seed=reset_seed)
            done = False
            while not done:
                action = module.act(observation, deterministic=True)
                observation, reward, terminated, truncated, _ = env.step(action)
                returns[agent, i] += reward
                steps += 1
                done = terminated or truncated
        env.close()
    return returns, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a run folder of a CartPole run")
    parser.add_argument("--episodes", type=int, default=100)
    TableResults.add_no_write(parser)
    args = parser.parse_args()
    table = TableResults(
        "evaluation_speed",
        "Evaluation: batched against one episode at a time",
        "python benchmarks/evaluate_speed.py",
        ["evaluation", "wall time", "env steps per second", "vs one at a time"],
    )
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as workdir:
        run = args.run
        if run is None:
            run, seconds = fit_config(Path("configs/cartpole_hetero_ppo.yaml"), 43, Path(workdir))
            print(f"fitted configs/cartpole_hetero_ppo.yaml (seed 43) in {seconds:.1f} s")
        checkpoint = run / "checkpoints" / "last.ckpt"
        module = load_module(checkpoint)
        population = run_population(run)
        agents = list(range(population.num_agents))

        started = time.perf_counter()
        batched = evaluate_agents(module.policy, population, agents, args.episodes, SEED, True)
        batched_seconds = time.perf_counter() - started
        started = time.perf_counter()
        looped, steps = one_episode_at_a_time(module, population, args.episodes)
        looped_seconds = time.perf_counter() - started
        batched_returns = np.stack([result.returns for result in batched])
        same = np.array_equal(batched_returns, looped)
        batched_steps = int(sum(result.lengths.sum() for result in batched))

        command = [sys.executable, "-m", "fedrl_lightning", "evaluate", "--ckpt_path", str(run)]
        command += ["--episodes", str(args.episodes), "--deterministic", "true"]
        command += ["--out", str(Path(workdir) / "evaluation.csv")]
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        command_seconds = time.perf_counter() - started

    print(
        f"{population.num_agents} agents x {args.episodes} episodes, {steps:,} steps "
        f"(batched: {batched_steps:,}), mean return {looped.mean():.1f}; "
        f"same returns episode for episode: {same}"
    )
    table.add_row(
        "one episode at a time (SB3's pattern)",
        f"{looped_seconds:.2f} s",
        f"{steps / looped_seconds:,.0f}",
        "1.0x",
    )
    table.add_row(
        "batched (`evaluate_agents`)",
        f"{batched_seconds:.2f} s",
        f"{batched_steps / batched_seconds:,.0f}",
        f"{looped_seconds / batched_seconds:.1f}x",
    )
    table.add_row(
        "`python -m fedrl_lightning evaluate`, whole process",
        f"{command_seconds:.2f} s",
        "",
        f"{looped_seconds / command_seconds:.1f}x",
    )
    table.add_note(
        f"{population.num_agents} agents x {args.episodes} fresh episodes of CartPole, "
        f"{steps:,} env steps, mean return {looped.mean():.1f}, deterministic actions, one "
        f"thread; the same returns episode for episode: {'yes' if same else '**no**'}. The "
        "policy: `configs/cartpole_hetero_ppo.yaml` fitted with seed 43."
    )
    print()
    print("| " + " | ".join(table.results["columns"]) + " |")
    for row in table.results["rows"]:
        print("| " + " | ".join(row) + " |")
    print(table.results["notes"][-1])
    if not (args.no_write or args.run):
        print(f"wrote {table.write()}")


if __name__ == "__main__":
    main()
