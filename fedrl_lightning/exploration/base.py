"""The base of curiosity models: intrinsic rewards for transitions a learner adds to its batch."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NamedTuple

import torch
from torch import nn

from fedrl_lightning.policy.normalization import ObservationNormalizer, RewardNormalizer
from fedrl_lightning.rollouts.dataset import EpisodeBatch

__all__ = ["Curiosity", "Transitions", "mlp", "next_observations", "transitions"]

OBSERVATION_CLIP = 5.0
"""Bound on a normalised observation the curiosity model sees, as in Burda et al.'s RND."""


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of ``sizes``, with ReLU between them (not after the last)."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def next_observations(batch: EpisodeBatch) -> torch.Tensor:
    """``[episodes, steps, observation]``: the observation after each step.

    Within an episode it is the next step's observation; after its last real step, the
    episode's final observation. Padding holds zeros.
    """
    following = torch.cat(
        [batch.observations[:, 1:], torch.zeros_like(batch.observations[:, :1])], dim=1
    )
    lengths = batch.mask.sum(dim=1)
    episodes = torch.arange(batch.mask.shape[0], device=lengths.device)
    following[episodes, lengths - 1] = batch.final_observations
    return following


class Transitions(NamedTuple):
    """The real steps of a batch, flattened: ``[n, ...]`` each."""

    observations: torch.Tensor
    actions: torch.Tensor
    next_observations: torch.Tensor

    def take(self, index: torch.Tensor) -> Transitions:
        """The transitions at ``index``, such as a minibatch's."""
        return Transitions(*(part[index] for part in self))


def transitions(batch: EpisodeBatch) -> Transitions:
    """The real steps of ``batch`` as :class:`Transitions`, in the order ``batch.mask`` gives."""
    mask = batch.mask
    return Transitions(
        batch.observations[mask], batch.actions[mask], next_observations(batch)[mask]
    )


class Curiosity(nn.Module, ABC):
    """An intrinsic reward for the transitions an agent makes, from a model trained on them.

    The model's trained networks are submodules, so they are in the learner's ``state_dict``
    and are federated like the policy's weights: aggregated by the strategy, counted in the
    traffic, open to Byzantine attacks, and agent-scoped by ``trainer.server``'s scopes
    patterns such as ``curiosity.predictor.*``. Two running statistics come with every
    model, and a federation pools them as statistics (counts, means, M2) from every agent:

    - ``obs_normalizer``: the observations the model sees are standardised with them and
      clipped to ±5;
    - ``reward_normalizer``: intrinsic rewards are divided by the running standard deviation
      of the discounted intrinsic return (with ``intrinsic_gamma``).

    Subclasses give the raw reward of a transition (:meth:`raw_rewards`) and the model's
    loss (:meth:`loss`).

    Args:
        observation_dim: Size of a flat observation.
        coef: Weight of the intrinsic reward (or advantage) beside the extrinsic one.
        intrinsic_gamma: Discount of the intrinsic return.
    """

    def __init__(self, observation_dim: int, coef: float, intrinsic_gamma: float) -> None:
        super().__init__()
        self.coef = coef
        self.intrinsic_gamma = intrinsic_gamma
        self.obs_normalizer = ObservationNormalizer(observation_dim, clip=OBSERVATION_CLIP)
        self.reward_normalizer = RewardNormalizer(intrinsic_gamma, clip=float("inf"))

    def seed_run(self, run_seed: int) -> None:
        """Rebuild whatever the model derives from the run seed alone; nothing by default."""

    @abstractmethod
    def raw_rewards(self, steps: Transitions) -> torch.Tensor:
        """``[n]`` the unnormalised intrinsic reward of each transition, without gradients."""

    @abstractmethod
    def loss(self, steps: Transitions) -> torch.Tensor:
        """The scalar loss that trains the model on ``steps``."""

    @torch.no_grad()
    def intrinsic_rewards(self, batch: EpisodeBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's normalised intrinsic rewards, and their raw values.

        The batch's next observations are folded into the observation statistics first,
        then each transition's raw reward is computed, its discounted returns folded into
        the return statistics, and the rewards divided by their standard deviation. Only the
        agent's own steps are folded in, not episodes replayed from other agents (trajectory
        sharing), which their own agents' statistics hold already.

        Returns:
            ``(normalised, raw)``: ``[episodes, steps]`` zero on padding, and ``[n]`` over
            the real steps.
        """
        steps, own = transitions(batch), batch.own_mask()  # replayed episodes: not observed
        self.obs_normalizer.observe(next_observations(batch)[own])
        raw = self.raw_rewards(steps)
        rewards = torch.zeros(batch.mask.shape, dtype=raw.dtype, device=raw.device)
        rewards[batch.mask] = raw
        self.reward_normalizer.observe_episodes(rewards, own)
        return self.reward_normalizer(rewards), raw

    def normalize(self, observations: torch.Tensor) -> torch.Tensor:
        """Observations as the model sees them: standardised with the pooled statistics."""
        return self.obs_normalizer(observations)
