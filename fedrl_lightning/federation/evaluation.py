"""Evaluating a policy on many environments at once."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from fedrl_lightning.policy import MLPPolicy
from fedrl_lightning.rollouts import Episode, rollout_wave
from fedrl_lightning.seeding import Stream, derive_seed

__all__ = ["evaluate_policy", "evaluate_round", "evaluated_agents", "run_episodes"]


def evaluated_agents(num_agents: int, count: int | None) -> list[int]:
    """``count`` agent ids evenly spaced over ``0 .. num_agents - 1``; all of them if ``None``."""
    if count is None or count >= num_agents:
        return list(range(num_agents))
    return sorted({int(a) for a in np.linspace(0, num_agents - 1, count).round()})


def evaluate_round(
    policy: MLPPolicy,
    env: gym.vector.VectorEnv,
    eval_agents: list[int],
    episodes: int,
    run_seed: int,
    round_idx: int,
) -> np.ndarray:
    """The global policy's mean return per evaluated agent after round ``round_idx``.

    Args:
        policy: The global policy.
        env: One sub-environment per entry of ``eval_agents``.
        eval_agents: Each evaluated agent's id, ``episodes`` times in a row.
        episodes: Episodes per agent.
        run_seed: The run's seed; every episode's seed derives from it, the round and the agent.
        round_idx: The round just aggregated.

    Returns:
        One mean return per evaluated agent, in order.
    """
    seeds = [
        (derive_seed(run_seed, round_idx, agent, Stream.EVAL_ENV) + i % episodes) % 2**32
        for i, agent in enumerate(eval_agents)
    ]
    action_seed = derive_seed(run_seed, round_idx, -1, Stream.EVAL_ACTIONS)
    returns = evaluate_policy(policy, env, seeds, action_seed)
    return returns.reshape(-1, episodes).mean(axis=1)


def evaluate_policy(
    policy: MLPPolicy,
    env: gym.vector.VectorEnv,
    env_seeds: list[int],
    action_seed: int,
    deterministic: bool = False,
) -> np.ndarray:
    """Run one episode in every sub-environment, in lock-step, sampling from the policy.

    Args:
        policy: The policy to evaluate.
        env: A vector environment with next-step autoreset.
        env_seeds: One reset seed per sub-environment.
        action_seed: Seed for action sampling.
        deterministic: Take the most likely action, or the Gaussian's mean, instead.

    Returns:
        The undiscounted return of each sub-environment's first episode.
    """
    episodes = run_episodes(policy, env, env_seeds, action_seed, deterministic)
    return np.array([sum(episode.rewards) for episode in episodes])


def run_episodes(
    policy: MLPPolicy,
    env: gym.vector.VectorEnv,
    env_seeds: list[int],
    action_seed: int,
    deterministic: bool = False,
) -> list[Episode]:
    """The first episode of every sub-environment, in lock-step, as :func:`evaluate_policy` runs."""
    rng = np.random.default_rng(action_seed)
    return rollout_wave(env, policy.actor(), rng, env_seeds, deterministic)
