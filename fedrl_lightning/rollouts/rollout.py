"""Rolling out episodes with a numpy actor: one environment, or a vector of them in lock-step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import gymnasium as gym
import numpy as np

from fedrl_lightning.policy.actors import NumpyActor

if TYPE_CHECKING:
    from fedrl_lightning.policy.networks import MLPPolicy

__all__ = ["Episode", "rollout_episode", "rollout_wave", "run_episodes"]

NOISE_CHUNK = 256  # steps of action-sampling noise drawn per generator call


class Episode(NamedTuple):
    """One episode, step by step.

    Attributes:
        observations: The observation at each step.
        actions: The action taken at each step, as the policy sampled it.
        rewards: The reward of each step.
        terminated: The episode reached a terminal state of the environment.
        truncated: The episode was cut short, by a time limit, without terminating; false
            when its last step also terminated, so at most one of the two flags is true.
        final_observation: The observation the environment returned after the last step,
            float32 (before any reset); a learner bootstraps from it when ``truncated``.
    """

    observations: Sequence[np.ndarray] | np.ndarray
    actions: Sequence[Any] | np.ndarray
    rewards: Sequence[float]
    terminated: bool
    truncated: bool
    final_observation: np.ndarray


def rollout_episode(
    env: gym.Env,
    actor: NumpyActor,
    rng: np.random.Generator,
    seed: int | None,
    deterministic: bool = False,
) -> Episode:
    """Run one episode in ``env``, resetting it with ``seed``.

    ``deterministic`` acts with zero noise: the most likely action, or the Gaussian's mean.
    """
    env_step, sample, env_action = env.step, actor.sample, actor.env_action
    observation, _ = env.reset(seed=seed)
    observations: list[np.ndarray] = []
    actions: list[Any] = []
    rewards: list[float] = []
    noise = np.empty((0, actor.output_dim), np.float32)
    done = False
    step = 0
    while not done:
        if step == len(noise):
            noise = _noise(actor, rng, NOISE_CHUNK, deterministic)
            step = 0
        observation = np.asarray(observation, dtype=np.float32)
        action = sample(observation, noise[step])
        step += 1
        observations.append(observation)
        actions.append(action)
        observation, reward, terminated, truncated, _ = env_step(env_action(action))
        rewards.append(float(reward))
        done = terminated or truncated
    final_observation = np.array(observation, dtype=np.float32)
    return Episode(
        observations,
        actions,
        rewards,
        bool(terminated),
        bool(truncated and not terminated),
        final_observation,
    )


def rollout_wave(
    env: gym.vector.VectorEnv,
    actor: NumpyActor,
    rng: np.random.Generator,
    seed: int | list[int] | None,
    deterministic: bool = False,
) -> list[Episode]:
    """Reset every sub-environment and run them in lock-step until each finished an episode.

    ``deterministic`` acts with zero noise: the most likely action, or the Gaussian's mean.

    A sub-environment that finishes early idles until the others do; what its autoreset
    produces meanwhile is not recorded, so no episode runs across a reset. Its final
    observation is the ``next_obs`` row of the step it finished on, which next-step autoreset
    (gymnasium's default, and the native vector environments') returns before resetting.

    Returns:
        The first episode of each sub-environment, in order.
    """
    # gymnasium types VectorEnv.reset's seed as one int; its vector envs take a list too
    observations, _ = env.reset(seed=seed)  # type: ignore[arg-type]
    steps: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    alive = np.ones(env.num_envs, dtype=bool)
    lengths = np.zeros(env.num_envs, dtype=np.int64)
    ended_terminated = np.zeros(env.num_envs, dtype=bool)
    final_observations = np.zeros_like(np.asarray(observations, dtype=np.float32))
    while alive.any():
        observations = np.asarray(observations, dtype=np.float32)
        actions = actor.sample(observations, _noise(actor, rng, env.num_envs, deterministic))
        next_observations, rewards, terminated, truncated, _ = env.step(actor.env_action(actions))
        steps.append((observations, actions, np.asarray(rewards, dtype=np.float64)))
        lengths += alive
        terminated = np.asarray(terminated, dtype=bool)
        finished = alive & (terminated | np.asarray(truncated, dtype=bool))
        final_observations[finished] = np.asarray(next_observations)[finished]
        ended_terminated |= finished & terminated
        alive &= ~finished
        observations = next_observations
    all_observations = np.stack([obs for obs, _, _ in steps])
    all_actions = np.stack([act for _, act, _ in steps])
    all_rewards = np.stack([rew for _, _, rew in steps])
    return [
        Episode(
            all_observations[:n, i],
            all_actions[:n, i],
            all_rewards[:n, i].tolist(),
            bool(ended_terminated[i]),
            not ended_terminated[i],
            final_observations[i],
        )
        for i, n in enumerate(lengths)
    ]


def _noise(
    actor: NumpyActor, rng: np.random.Generator, count: int, deterministic: bool
) -> np.ndarray:
    """``count`` steps of the actor's sampling noise; zeros, drawing nothing, if deterministic.

    Zero Gumbel noise takes the most likely discrete action, zero Gaussian noise the mean.
    """
    if deterministic:
        return np.zeros((count, actor.output_dim), np.float32)
    return actor.noise(rng, count)


def run_episodes(
    policy: MLPPolicy,
    env: gym.vector.VectorEnv,
    env_seeds: list[int],
    action_seed: int,
    deterministic: bool = False,
) -> list[Episode]:
    """The first episode of every sub-environment of ``env``, in lock-step, with ``policy``.

    Args:
        policy: The policy; its numpy actor acts.
        env: A vector environment with next-step autoreset.
        env_seeds: One reset seed per sub-environment.
        action_seed: Seeds the action noise.
        deterministic: Take the most likely action, or the Gaussian's mean, instead.
    """
    rng = np.random.default_rng(action_seed)
    return rollout_wave(env, policy.actor(), rng, env_seeds, deterministic)
