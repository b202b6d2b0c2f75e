"""Rollout throughput on CartPole-v1: environment steps per second for num_envs 1, 8 and 64.

Usage::

    python benchmarks/rollout_throughput.py [--no-write]

An agent's ``EpisodeDataset`` rolls out episodes in batches of 64, stepping ``num_envs``
copies of the environment in lock-step. Two policies: a fresh one, whose episodes are short
and uneven (about 20 steps), and a balancing one, whose episodes all last 500 steps. Only
steps that belong to an episode count; steps that a finished sub-environment idles through,
waiting for the rest of its wave, do not. Writes ``benchmarks/results/rollout.json``, from
which ``benchmarks/render_figures.py`` makes ``docs/figures/rollout.md``.
"""

from __future__ import annotations

import argparse
import time

import torch
from protocol import TableResults

from fedrl_lightning import AgentPopulation, EpisodeDataset, Reinforce

PER_BATCH = 64


def balance(module: Reinforce) -> None:
    """Make the policy push towards ``theta + 0.2 * theta_dot``: it keeps every pole up."""
    with torch.no_grad():
        for parameter in module.policy.parameters():
            parameter.zero_()
        module.policy.hidden.weight[0] = torch.tensor([0.0, 0.0, 1.0, 0.2])
        module.policy.hidden.weight[1] = -module.policy.hidden.weight[0]
        module.policy.head.weight[1, :2] = torch.tensor([1000.0, -1000.0])


def steps_per_second(num_envs: int, balancing: bool) -> tuple[float, int]:
    """Throughput and steps counted for one pass over the dataset."""
    torch.manual_seed(0)
    population = AgentPopulation("CartPole-v1", num_agents=1, num_envs=num_envs)
    module = Reinforce(population.observation_dim, population.num_actions)
    if balancing:
        balance(module)
    dataset = EpisodeDataset(
        env=population.make_rollout_env(0),
        policy=module.policy,
        num_episodes=128 if balancing else 512,
        episodes_per_update=PER_BATCH,
        gamma=0.99,
        env_seed=0,
        action_seed=1,
    )
    started = time.perf_counter()
    steps = sum(int(batch.mask.sum()) for batch in dataset)
    return steps / (time.perf_counter() - started), steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    TableResults.add_no_write(parser)
    args = parser.parse_args()
    table = TableResults(
        "rollout",
        "Rollout throughput on CartPole-v1",
        "python benchmarks/rollout_throughput.py",
        ["policy", "num_envs", "env steps per second", "steps counted"],
    )
    for balancing in (False, True):
        policy = "balancing (500-step episodes)" if balancing else "fresh (short, uneven episodes)"
        print(policy)
        for num_envs in (1, 8, 64):
            rate, steps = steps_per_second(num_envs, balancing)
            print(f"  num_envs {num_envs:>2}: {rate:>9,.0f} env steps/s ({steps:,} steps)")
            table.add_row(policy, num_envs, f"{rate:,.0f}", f"{steps:,}")
    table.add_note(
        f"Batches of {PER_BATCH} episodes, one process, torch's default threads; steps that a "
        "finished sub-environment idles through do not count."
    )
    if not args.no_write:
        print(f"wrote {table.write()}")


if __name__ == "__main__":
    main()
