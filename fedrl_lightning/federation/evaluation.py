"""Evaluating a policy on many environments at once."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from fedrl_lightning.policy import CategoricalMLPPolicy

__all__ = ["evaluate_policy"]


def evaluate_policy(
    policy: CategoricalMLPPolicy,
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
    actor = policy.actor()
    observations, _ = env.reset(seed=env_seeds)
    returns = np.zeros(env.num_envs)
    active = np.ones(env.num_envs, dtype=bool)
    while active.any():
        noise = rng.gumbel(size=(env.num_envs, actor.num_actions)).astype(np.float32)
        actions = actor.sample(np.asarray(observations, dtype=np.float32), noise)
        observations, rewards, terminated, truncated, _ = env.step(actions)
        returns += np.where(active, rewards, 0.0)
        active &= ~(terminated | truncated)
    return returns
