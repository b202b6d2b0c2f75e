"""Episodes rolled out with the live policy, served to Lightning as an IterableDataset."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch.utils.data import IterableDataset

from fedrl_lightning.actors import NumpyActor
from fedrl_lightning.policy import MLPPolicy
from fedrl_lightning.returns import discounted_returns
from fedrl_lightning.rollouts import Episode, rollout_episode, rollout_wave

__all__ = ["EpisodeBatch", "EpisodeDataset"]


class EpisodeBatch(NamedTuple):
    """Whole episodes, padded to the longest one.

    Attributes:
        observations: ``[episodes, steps, observation]`` float32.
        actions: ``[episodes, steps]`` int64 for discrete actions, or
            ``[episodes, steps, action_dim]`` float32 for continuous ones.
        returns: ``[episodes, steps]`` float32 discounted returns ``G_t``.
        mask: ``[episodes, steps]`` bool, true on real steps.
        episode_returns: ``[episodes]`` float32 undiscounted sum of rewards.
        rewards: ``[episodes, steps]`` float32 reward of each step, 0 on padding.
        terminated: ``[episodes]`` bool, true where the episode reached a terminal state.
        truncated: ``[episodes]`` bool, true where the episode was cut short (by the time
            limit) without terminating; at most one of ``terminated`` and ``truncated`` is
            true, and every whole episode has one.
        final_observations: ``[episodes, observation]`` float32, the observation after each
            episode's last step (before any reset), from which an actor-critic learner
            bootstraps the value of a truncated episode.
        log_probs: ``[episodes, steps]`` float32, the log-probability the behaviour policy
            (the actor that rolled the episode out) gave each action; 0 on padding.

    The fields after ``episode_returns`` serve actor-critic learners; they come last, so the
    first five keep their positions.
    """

    observations: torch.Tensor
    actions: torch.Tensor
    returns: torch.Tensor
    mask: torch.Tensor
    episode_returns: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    final_observations: torch.Tensor
    log_probs: torch.Tensor


class EpisodeDataset(IterableDataset):
    """Rolls out ``num_episodes`` episodes with the policy's current weights.

    Each item is one :class:`EpisodeBatch` of ``episodes_per_update`` whole episodes, so a
    training step that updates the policy changes how the next batch is collected. Rollouts
    run without gradients; each batch records the log-probabilities its actor gave
    the actions it took (computed once per batch, batched).

    Given a vector environment, episodes are rolled out in lock-step waves of ``num_envs``:
    each wave resets every sub-environment and runs until each has finished one episode. When
    a batch needs fewer episodes than a wave gives, the rest of that wave is not used.

    Args:
        env: The agent's environment, or a vector environment of copies of it.
        policy: The live policy; its weights are read afresh for every batch.
        num_episodes: Episodes to roll out in one pass over the dataset.
        episodes_per_update: Episodes per batch (the last batch may be smaller).
        gamma: Discount factor for the returns.
        env_seed: Seed for the environment's first reset.
        action_seed: Seed for action sampling.
        random_actions: Act uniformly at random instead of with the policy (a Byzantine
            agent's ``random_action`` attack); the policy still trains on these episodes.
    """

    def __init__(
        self,
        env: gym.Env | gym.vector.VectorEnv,
        policy: MLPPolicy,
        num_episodes: int,
        episodes_per_update: int,
        gamma: float,
        env_seed: int,
        action_seed: int,
        random_actions: bool = False,
    ) -> None:
        super().__init__()
        self.env = env
        self.policy = policy
        self.num_episodes = num_episodes
        self.episodes_per_update = episodes_per_update
        self.gamma = gamma
        self.env_seed = env_seed
        self.action_seed = action_seed
        self.random_actions = random_actions

    def __len__(self) -> int:
        """Number of batches in one pass.

        Knowing it lets Lightning skip prefetching, so every batch is rolled out only after the
        previous batch's update: the rollouts stay exactly on-policy.
        """
        return -(-self.num_episodes // self.episodes_per_update)

    def __iter__(self) -> Iterator[EpisodeBatch]:
        rng = np.random.default_rng(self.action_seed)
        seed: int | None = self.env_seed
        remaining = self.num_episodes
        vectorised = isinstance(self.env, gym.vector.VectorEnv)
        while remaining > 0:
            count = min(self.episodes_per_update, remaining)
            actor = self.policy.random_actor() if self.random_actions else self.policy.actor()
            episodes: list[Episode] = []
            while len(episodes) < count:
                if vectorised:
                    episodes += rollout_wave(self.env, actor, rng, seed)
                else:
                    episodes.append(rollout_episode(self.env, actor, rng, seed))
                seed = None
            remaining -= count
            yield self._collate(episodes[:count], actor)

    def _collate(self, episodes: list[Episode], actor: NumpyActor) -> EpisodeBatch:
        count = len(episodes)
        steps = max(len(e.actions) for e in episodes)
        obs_shape = episodes[0].observations[0].shape
        observations = np.zeros((count, steps, *obs_shape), np.float32)
        actions = np.zeros((count, steps, *actor.action_shape), actor.action_dtype)
        returns = np.zeros((count, steps), np.float32)
        mask = np.zeros((count, steps), bool)
        episode_returns = np.zeros(count, np.float32)
        rewards = np.zeros((count, steps), np.float32)
        for i, episode in enumerate(episodes):
            length = len(episode.actions)
            observations[i, :length] = episode.observations
            actions[i, :length] = episode.actions
            returns[i, :length] = discounted_returns(episode.rewards, self.gamma)
            mask[i, :length] = True
            episode_returns[i] = sum(episode.rewards)
            rewards[i, :length] = episode.rewards
        log_probs = np.zeros((count, steps), np.float32)
        log_probs[mask] = actor.log_prob(observations[mask], actions[mask])
        return EpisodeBatch(
            torch.from_numpy(observations),
            torch.from_numpy(actions),
            torch.from_numpy(returns),
            torch.from_numpy(mask),
            torch.from_numpy(episode_returns),
            torch.from_numpy(rewards),
            torch.tensor([e.terminated for e in episodes], dtype=torch.bool),
            torch.tensor([e.truncated for e in episodes], dtype=torch.bool),
            torch.from_numpy(np.stack([e.final_observation for e in episodes])),
            torch.from_numpy(log_probs),
        )
