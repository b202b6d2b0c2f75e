"""Env steps taken with the live policy into the agent's replay buffer, and minibatches from it.

The off-policy learners' dataset: the pattern of Lightning's DQN template and of CleanRL's
loops. Each local fit takes ``num_steps`` steps of the agent's environment; after every
``train_freq``-th of the agent's own steps, once it has taken more than ``learning_starts``,
it yields ``gradient_steps`` minibatches of ``batch_size`` transitions, drawn uniformly from
the buffer. A time-limit truncation is stored as such, so the targets bootstrap through it.
Episodes that other agents shared (trajectory sharing) join the buffer before the fit's own
steps, and the fit's own whole episodes can be kept to share in turn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch.utils.data import IterableDataset

from fedrl_lightning.rollouts.dataset import StoredEpisode
from fedrl_lightning.rollouts.replay import ReplayBatch, ReplayBuffer

__all__ = ["StepsBatch", "TransitionDataset", "add_episode", "training_points"]

Act = Callable[[np.ndarray, int], Any]
"""The behaviour policy: ``act(observation, agent_step)`` gives the env's action."""


class StepsBatch(NamedTuple):
    """What the env did since the previous item, and a minibatch to train on.

    Attributes:
        transitions: ``batch_size`` transitions drawn from the buffer; ``None`` for the item
            that closes the fit, which only reports its last steps.
        agent_steps: The agent's own env steps over the whole run once this item was drawn:
            what the target-update interval counts.
        episode_returns: ``[episodes]`` float32 undiscounted returns of the episodes that
            ended since the previous item.
        num_steps: Env steps taken since the previous item.
        cut_return: On the fit's last item, ``[1]`` float32: the return so far of the episode
            the fit ends in, which the next fit does not continue (it resets the env), so the
            fit's end truncates it; ``[0]`` otherwise, or when the fit ends with an episode.
    """

    transitions: ReplayBatch | None
    agent_steps: int
    episode_returns: torch.Tensor
    num_steps: int
    cut_return: torch.Tensor = torch.zeros(0)


def training_points(
    start: int, num_steps: int, train_freq: int, learning_starts: int, first_ready: int = 0
) -> int:
    """How many of the agent's steps ``start + 1 .. start + num_steps`` are followed by training.

    Those ``t`` with ``t % train_freq == 0``, ``t > learning_starts`` and
    ``t >= start + first_ready``: the fit's ``first_ready``-th step is the first after which
    the buffer holds a minibatch.
    """
    first = max(start, learning_starts, start + first_ready - 1)
    last = start + num_steps
    return max(0, last // train_freq - first // train_freq)


class TransitionDataset(IterableDataset):
    """Steps one environment with the live policy into ``buffer``; yields drawn minibatches.

    It is iterated once per local fit. It yields ``gradient_steps`` items after each training
    point (see :func:`training_points`: a step of the agent's after ``learning_starts``, once
    the buffer holds ``batch_size`` transitions), and one last item without transitions that reports
    the steps after the last of them; ``__len__`` says how many, so Lightning fetches each only
    after the previous update (no prefetching: every step acts with the weights as updated so
    far). The episode under way when the fit ends is cut there: the next fit resets the env
    from its own seed.

    Args:
        env: The agent's environment (one, not a vector env).
        buffer: The agent's replay buffer, for one env; the steps are added to it.
        act: The behaviour policy: the action for an observation at the agent's step ``t``.
        num_steps: Env steps in this fit.
        start_step: The agent's own env steps before this fit.
        train_freq: Train after every ``train_freq``-th step of the agent.
        gradient_steps: Minibatches per training point.
        learning_starts: Steps of the agent before the first training point.
        batch_size: Transitions per minibatch.
        n_step: Steps each drawn transition's return spans.
        gamma: The discount of the n-step returns.
        env_seed: Seeds the environment's first reset.
        sample_seed: Seeds the minibatches' draws.
        replay: Whole episodes other agents shared, added to the buffer, in order, before the
            fit's own steps. They are not the agent's steps: ``learning_starts`` and
            ``train_freq`` count its own only. Off-policy targets need no importance weights,
            so their behaviour policies do not matter.
        keep_episodes: Keep the fit's own whole episodes in :attr:`kept`, to share them.
    """

    def __init__(
        self,
        env: gym.Env,
        buffer: ReplayBuffer,
        act: Act,
        num_steps: int,
        start_step: int,
        train_freq: int,
        gradient_steps: int,
        learning_starts: int,
        batch_size: int,
        n_step: int,
        gamma: float,
        env_seed: int,
        sample_seed: int,
        replay: Sequence[StoredEpisode] = (),
        keep_episodes: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(env, gym.vector.VectorEnv):
            raise TypeError("TransitionDataset steps one environment, not a vector env")
        self.env = env
        self.buffer = buffer
        self.act = act
        self.num_steps = num_steps
        self.start_step = start_step
        self.train_freq = train_freq
        self.gradient_steps = gradient_steps
        self.learning_starts = learning_starts
        self.batch_size = batch_size
        self.n_step = n_step
        self.gamma = gamma
        self.env_seed = env_seed
        self.sample_seed = sample_seed
        self.replay = tuple(replay)
        self.keep_episodes = keep_episodes
        self.kept: list[StoredEpisode] = []
        """The fit's own whole episodes, once iterated with ``keep_episodes``."""
        shared = sum(len(episode.rewards) for episode in self.replay)
        self._held = min(len(buffer) + shared, buffer.buffer_size)  # before the fit's own steps

    def __len__(self) -> int:
        points = training_points(
            self.start_step,
            self.num_steps,
            self.train_freq,
            self.learning_starts,
            max(0, self.batch_size - self._held),
        )
        return points * self.gradient_steps + 1

    def __iter__(self) -> Iterator[StepsBatch]:
        for shared in self.replay:
            add_episode(self.buffer, shared)
        generator = torch.Generator().manual_seed(self.sample_seed)
        observation, _ = self.env.reset(seed=self.env_seed)
        returns: list[float] = []
        episode_return, episode_steps, steps = 0.0, 0, 0
        agent_step = self.start_step
        own: list[tuple[np.ndarray, Any, float]] = []  # the episode under way, to keep
        self.kept = []
        for _ in range(self.num_steps):
            action = self.act(observation, agent_step)
            next_observation, reward, terminated, truncated, _ = self.env.step(action)
            self.buffer.add(
                observation[None], next_observation[None], np.asarray(action)[None],
                [reward], [terminated], [truncated],
            )  # fmt: skip
            if self.keep_episodes:
                own.append((observation, action, float(reward)))
            agent_step += 1
            steps += 1
            episode_steps += 1
            episode_return += float(reward)
            if terminated or truncated:
                if self.keep_episodes:
                    self.kept.append(
                        self._stored(own, bool(terminated), bool(truncated), next_observation)
                    )
                    own = []
                returns.append(episode_return)
                episode_return, episode_steps = 0.0, 0
                observation, _ = self.env.reset()
            else:
                observation = next_observation
            if (
                agent_step % self.train_freq == 0
                and agent_step > self.learning_starts
                and len(self.buffer) >= self.batch_size
            ):
                for _ in range(self.gradient_steps):
                    transitions = self.buffer.sample(
                        self.batch_size, generator, self.n_step, self.gamma
                    )
                    yield StepsBatch(transitions, agent_step, _returns(returns), steps)
                    returns, steps = [], 0
        cut = _returns([episode_return] if episode_steps else [])
        yield StepsBatch(None, agent_step, _returns(returns), steps, cut)

    def _stored(
        self,
        steps: list[tuple[np.ndarray, Any, float]],
        terminated: bool,
        truncated: bool,
        final_observation: np.ndarray,
    ) -> StoredEpisode:
        """One of the fit's own whole episodes, as trajectory sharing sends it.

        Its ``log_probs`` are zeros: no off-policy learner weighs a transition by its
        behaviour policy.
        """
        observations, actions, rewards = zip(*steps, strict=True)
        return StoredEpisode(
            observations=torch.as_tensor(np.stack(observations), dtype=torch.float32),
            actions=torch.as_tensor(np.stack(actions), dtype=self.buffer.action_dtype),
            rewards=torch.tensor(rewards, dtype=torch.float32),
            log_probs=torch.zeros(len(steps)),
            terminated=terminated,
            truncated=truncated,
            final_observation=torch.as_tensor(final_observation, dtype=torch.float32),
        )


def add_episode(buffer: ReplayBuffer, episode: StoredEpisode) -> None:
    """Add a whole episode's transitions to a one-env ``buffer``, its last step ending it.

    Each step's next observation is the following step's, and the last one's the episode's
    final observation; the last step is terminated or truncated as the episode was.
    """
    observations = episode.observations.numpy()
    actions = episode.actions.numpy()
    rewards = episode.rewards.numpy()
    last = len(rewards) - 1
    for t in range(len(rewards)):
        ends = t == last
        next_observation = episode.final_observation.numpy() if ends else observations[t + 1]
        buffer.add(
            observations[t : t + 1], next_observation[None], actions[t : t + 1],
            rewards[t : t + 1], [ends and episode.terminated], [ends and episode.truncated],
        )  # fmt: skip


def _returns(returns: list[float]) -> torch.Tensor:
    return torch.tensor(returns, dtype=torch.float32)
