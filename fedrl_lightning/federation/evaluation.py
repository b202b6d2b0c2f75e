"""Evaluating a policy on many environments at once."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from fedrl_lightning.policy import MLPPolicy
from fedrl_lightning.rollouts import rollout_wave

__all__ = ["evaluate_policy"]


def evaluate_policy(
    policy: MLPPolicy,
    env: gym.vector.VectorEnv,
    env_seeds: list[int],
    action_seed: int,
) -> np.ndarray:
    """Run one episode in every sub-environment, in lock-step, sampling from the policy.

    Args:
        policy: The policy to evaluate.
        env: A vector environment with next-step autoreset.
        env_seeds: One reset seed per sub-environment.
        action_seed: Seed for action sampling.

    Returns:
        The undiscounted return of each sub-environment's first episode.
    """
    rng = np.random.default_rng(action_seed)
    episodes = rollout_wave(env, policy.actor(), rng, env_seeds)
    return np.array([sum(episode.rewards) for episode in episodes])
