"""Rollout throughput on CartPole-v1: environment steps per second for num_envs 1, 8 and 64.

Usage::

    python benchmarks/rollout_throughput.py

An agent's ``EpisodeDataset`` rolls out 512 episodes with a fresh policy, in batches of 64
episodes, stepping ``num_envs`` copies of the environment in lock-step. Only steps that belong
to an episode count; steps a finished sub-environment idles through do not.
"""

from __future__ import annotations

import time

import torch
from machine import describe_machine

from fedrl_lightning import AgentPopulation, EpisodeDataset, ReinforceModule

EPISODES = 512
PER_BATCH = 64


def steps_per_second(num_envs: int) -> tuple[float, int]:
    """Throughput and steps counted for one pass over the dataset."""
    torch.manual_seed(0)
    population = AgentPopulation("CartPole-v1", num_agents=1, num_envs=num_envs)
    module = ReinforceModule(population.observation_dim, population.num_actions)
    dataset = EpisodeDataset(
        env=population.make_rollout_env(0),
        policy=module.policy,
        num_episodes=EPISODES,
        episodes_per_update=PER_BATCH,
        gamma=0.99,
        env_seed=0,
        action_seed=1,
    )
    started = time.perf_counter()
    steps = sum(int(batch.mask.sum()) for batch in dataset)
    return steps / (time.perf_counter() - started), steps


def main() -> None:
    print(f"machine: {describe_machine()}")
    for num_envs in (1, 8, 64):
        rate, steps = steps_per_second(num_envs)
        print(f"num_envs {num_envs:>2}: {rate:>9,.0f} env steps/s ({steps:,} steps)")


if __name__ == "__main__":
    main()
