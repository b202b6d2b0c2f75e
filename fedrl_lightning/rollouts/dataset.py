"""Episodes rolled out with the live policy, served to Lightning as an IterableDataset."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch.utils.data import IterableDataset

from fedrl_lightning.policy.actors import NumpyActor
from fedrl_lightning.policy.networks import MLPPolicy
from fedrl_lightning.rollouts.returns import discounted_returns
from fedrl_lightning.rollouts.rollout import Episode, rollout_episode, rollout_wave

__all__ = ["EpisodeBatch", "EpisodeDataset", "StoredEpisode", "with_replay"]


class StoredEpisode(NamedTuple):
    """One whole episode as plain tensors, with its behaviour policy's log-probabilities.

    This is what an agent shares: it can be saved, sent and loaded with
    ``weights_only=True``, and replayed by any agent of the same spaces.

    Attributes:
        observations: ``[steps, observation]`` float32.
        actions: ``[steps]`` int64, or ``[steps, action_dim]`` float32 for continuous actions.
        rewards: ``[steps]`` float32.
        log_probs: ``[steps]`` float32, the log-probability the behaviour policy (the actor
            that rolled the episode out) gave each action.
        terminated: Whether the episode reached a terminal state.
        truncated: Whether a time limit cut it short.
        final_observation: ``[observation]`` float32, the observation after the last step.
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    log_probs: torch.Tensor
    terminated: bool
    truncated: bool
    final_observation: torch.Tensor


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
        replayed: ``[episodes]`` bool, true for episodes another agent shared (trajectory
            replay), which learners correct for being off-policy and never count as their
            own experience; ``None`` (a batch built by hand): none is.

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
    replayed: torch.Tensor | None = None

    def replayed_episodes(self) -> torch.Tensor:
        """``[episodes]`` bool: which episodes are replayed from other agents."""
        if self.replayed is None:
            return torch.zeros(self.mask.shape[0], dtype=torch.bool, device=self.mask.device)
        return self.replayed

    def own_mask(self) -> torch.Tensor:
        """``[episodes, steps]`` bool: the real steps of the agent's own episodes."""
        return self.mask & ~self.replayed_episodes().unsqueeze(1)

    def stored_episodes(self) -> list[StoredEpisode]:
        """Each episode of the batch, unpadded, as a :class:`StoredEpisode`."""
        lengths = self.mask.sum(dim=1).tolist()
        return [
            StoredEpisode(
                self.observations[i, :length].clone(),
                self.actions[i, :length].clone(),
                self.rewards[i, :length].clone(),
                self.log_probs[i, :length].clone(),
                bool(self.terminated[i]),
                bool(self.truncated[i]),
                self.final_observations[i].clone(),
            )
            for i, length in enumerate(lengths)
        ]


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
        replay: Episodes shared by other agents, spread over the batches as evenly as they
            go and appended to each batch's own episodes (see :func:`with_replay`).
        keep_episodes: Keep every own episode, with its behaviour log-probabilities, in
            ``kept``, for the agent to share some of them.
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
        replay: Sequence[StoredEpisode] = (),
        keep_episodes: bool = False,
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
        self.replay = list(replay)
        self.keep_episodes = keep_episodes
        self.kept: list[StoredEpisode] = []

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
        batches, replayed = len(self), 0
        self.kept = []
        while remaining > 0:
            count = min(self.episodes_per_update, remaining)
            actor = self.policy.random_actor() if self.random_actions else self.policy.actor()
            episodes: list[Episode] = []
            while len(episodes) < count:
                if isinstance(self.env, gym.vector.VectorEnv):
                    episodes += rollout_wave(self.env, actor, rng, seed)
                else:
                    episodes.append(rollout_episode(self.env, actor, rng, seed))
                seed = None
            remaining -= count
            batch = self._collate(episodes[:count], actor)
            if self.keep_episodes:
                self.kept += batch.stored_episodes()
            if self.replay:  # this batch's share of them: up to the batch's fraction of all
                done = batches - -(-remaining // self.episodes_per_update)
                upto = done * len(self.replay) // batches
                batch = with_replay(batch, self.replay[replayed:upto], self.gamma)
                replayed = upto
            yield batch

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
            torch.zeros(count, dtype=torch.bool),
        )


def with_replay(batch: EpisodeBatch, replay: Sequence[StoredEpisode], gamma: float) -> EpisodeBatch:
    """``batch`` with the episodes ``replay`` after its own, marked ``replayed``.

    Both are padded to the longer episodes; the replayed episodes' returns are discounted
    with ``gamma``, the replaying agent's.
    """
    own = batch.mask.shape[0]
    if not replay:
        return batch._replace(replayed=torch.zeros(own, dtype=torch.bool))
    steps = max(batch.mask.shape[1], max(len(e.rewards) for e in replay))
    count = own + len(replay)

    def padded(own_values: torch.Tensor, replayed: Sequence[torch.Tensor]) -> torch.Tensor:
        values = own_values.new_zeros((count, steps, *own_values.shape[2:]))
        values[:own, : own_values.shape[1]] = own_values
        for i, episode_values in enumerate(replayed, start=own):
            values[i, : len(episode_values)] = episode_values
        return values

    returns = [torch.tensor(discounted_returns(e.rewards.tolist(), gamma)) for e in replay]
    return EpisodeBatch(
        padded(batch.observations, [e.observations for e in replay]),
        padded(batch.actions, [e.actions for e in replay]),
        padded(batch.returns, returns),
        padded(batch.mask, [torch.ones(len(e.rewards), dtype=torch.bool) for e in replay]),
        torch.cat([batch.episode_returns, torch.stack([e.rewards.sum() for e in replay])]),
        padded(batch.rewards, [e.rewards for e in replay]),
        torch.cat([batch.terminated, torch.tensor([e.terminated for e in replay])]),
        torch.cat([batch.truncated, torch.tensor([e.truncated for e in replay])]),
        torch.cat([batch.final_observations, torch.stack([e.final_observation for e in replay])]),
        padded(batch.log_probs, [e.log_probs for e in replay]),
        torch.arange(count) >= own,
    )
