"""SAC's and TD3's networks: tanh-squashed actors within the action bounds, and twin critics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.distributions import (
    AffineTransform,
    Independent,
    Normal,
    TanhTransform,
    TransformedDistribution,
)

from fedrl_lightning.policy.actors import NumpyUniformActor
from fedrl_lightning.policy.bounded_actors import (
    LOG_STD_MAX,
    LOG_STD_MIN,
    NumpySquashedGaussianActor,
    NumpyTanhActor,
)
from fedrl_lightning.policy.networks import MLPPolicy

__all__ = ["BoundedPolicy", "DeterministicPolicy", "SquashedGaussianPolicy", "TwinCritic"]


class BoundedPolicy(MLPPolicy):
    """An MLP policy whose actions are ``c + s · tanh(·)``: always within ``[low, high]``.

    ``s = (high − low) / 2`` and ``c = (high + low) / 2`` are buffers that move with the module
    but stay out of its ``state_dict``: the federation never averages (or attacks) constants.

    Args:
        observation_dim: Size of a flat observation.
        action_dim: Size of an action; the head gives ``outputs_per_action`` times as many.
        hidden_dim: Width of each hidden ReLU layer.
        action_low: Lower bound of each action dimension.
        action_high: Upper bound of each action dimension.
        num_layers: Number of hidden layers.
    """

    outputs_per_action: ClassVar[int] = 1
    action_scale: torch.Tensor
    action_bias: torch.Tensor

    def __init__(
        self,
        observation_dim: int,
        action_dim: int,
        hidden_dim: int,
        action_low: Sequence[float],
        action_high: Sequence[float],
        num_layers: int = 2,
    ) -> None:
        output_dim = self.outputs_per_action * action_dim
        super().__init__(observation_dim, output_dim, hidden_dim, num_layers)
        self.action_low = np.asarray(action_low, np.float32)
        self.action_high = np.asarray(action_high, np.float32)
        low, high = torch.from_numpy(self.action_low), torch.from_numpy(self.action_high)
        self.register_buffer("action_scale", (high - low) / 2, persistent=False)
        self.register_buffer("action_bias", (high + low) / 2, persistent=False)

    @property
    def action_dim(self) -> int:
        """Size of an action."""
        return len(self.action_low)

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``[action_dim]`` lower and upper bounds, on the module's device."""
        return self.action_bias - self.action_scale, self.action_bias + self.action_scale

    def squash(self, pre_tanh: torch.Tensor) -> torch.Tensor:
        """``c + s · tanh(u)``."""
        return self.action_bias + self.action_scale * torch.tanh(pre_tanh)

    def log_prob_and_entropy(
        self, observations: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Not defined: no closed form, and no off-policy learner corrects by it.

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError(f"{type(self).__name__} has no closed-form log-prob/entropy")

    def random_actor(self) -> NumpyUniformActor:
        """A numpy actor that acts uniformly at random within the action bounds."""
        weights = self._zero_weights()
        hidden = weights["head"][0].shape[1]
        weights["head"] = (
            np.zeros((self.action_dim, hidden), np.float32),
            np.zeros(self.action_dim, np.float32),
        )
        return NumpyUniformActor(
            **weights,
            log_std=np.zeros(self.action_dim, np.float32),
            action_low=self.action_low,
            action_high=self.action_high,
        )


class SquashedGaussianPolicy(BoundedPolicy):
    """SAC's actor: ``a = c + s · tanh(u)``, ``u ~ N(μ(s), σ(s))``, reparameterised.

    The head gives ``[μ, log σ]`` (CleanRL and SB3 have two linear heads on the same trunk,
    which is one layer of twice the width); ``log σ`` is clamped to ``[-20, 2]`` as SB3 does
    (CleanRL squashes it into ``[-5, 2]`` with a tanh). The deterministic action is
    ``c + s · tanh(μ)``. Built as :class:`BoundedPolicy`.
    """

    outputs_per_action = 2

    def mean_and_log_std(self, observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[..., action_dim]`` the Gaussian's mean and clamped log standard deviation."""
        mean, log_std = self.outputs(observations).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def forward(self, observations: torch.Tensor) -> Independent:
        """The squashed Gaussian, as a ``torch.distributions`` object."""
        mean, log_std = self.mean_and_log_std(observations)
        transforms = [
            TanhTransform(cache_size=1),
            AffineTransform(self.action_bias, self.action_scale),
        ]
        return Independent(TransformedDistribution(Normal(mean, log_std.exp()), transforms), 1)

    def act(self, observations: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Sampled actions with torch's generator, or ``c + s · tanh(μ)`` with ``deterministic``."""
        mean, log_std = self.mean_and_log_std(observations)
        if not deterministic:
            mean = mean + log_std.exp() * torch.randn_like(mean)
        return self.squash(mean)

    def actor(self) -> NumpySquashedGaussianActor:
        """A numpy actor over the live weights."""
        return NumpySquashedGaussianActor(
            **self._numpy_weights(), action_low=self.action_low, action_high=self.action_high
        )


class DeterministicPolicy(BoundedPolicy):
    """TD3's actor: ``μ(s) = c + s · tanh(head(s))``, built as :class:`BoundedPolicy`."""

    def action(self, observations: torch.Tensor) -> torch.Tensor:
        """``[..., action_dim]`` the actor's actions."""
        return self.squash(self.outputs(observations))

    def forward(self, observations: torch.Tensor) -> Independent:
        """A point mass on the action, as a Normal of float32's resolution of the range."""
        action = self.action(observations)
        spread = torch.finfo(action.dtype).eps * self.action_scale.expand_as(action)
        return Independent(Normal(action, spread), 1)

    def act(self, observations: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """The actor's actions, sampled or not (exploration noise is the learner's)."""
        return self.action(observations)

    def actor(self, noise_std: float = 0.0) -> NumpyTanhActor:
        """A numpy actor over the live weights, adding ``noise_std`` half-ranges of noise."""
        return NumpyTanhActor(
            **self._numpy_weights(),
            action_low=self.action_low,
            action_high=self.action_high,
            noise_std=noise_std,
        )


class TwinCritic(nn.Module):
    """Two independent MLP critics ``Q1(s, a)``, ``Q2(s, a)`` over ``[observation, action]``.

    Args:
        observation_dim: Size of a flat observation.
        action_dim: Size of an action.
        hidden_dim: Width of each hidden ReLU layer.
        num_layers: Number of hidden layers of each critic.
    """

    def __init__(
        self, observation_dim: int, action_dim: int, hidden_dim: int, num_layers: int = 2
    ) -> None:
        super().__init__()
        self.q1 = _critic(observation_dim + action_dim, hidden_dim, num_layers)
        self.q2 = _critic(observation_dim + action_dim, hidden_dim, num_layers)

    def forward(
        self, observations: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[batch]`` values of both critics."""
        inputs = torch.cat([observations, actions], dim=-1)
        return self.q1(inputs).squeeze(-1), self.q2(inputs).squeeze(-1)

    def first(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``[batch]`` values of the first critic alone (TD3's actor climbs it)."""
        return self.q1(torch.cat([observations, actions], dim=-1)).squeeze(-1)


def _critic(input_dim: int, hidden_dim: int, num_layers: int) -> nn.Sequential:
    """An MLP of ``num_layers`` ReLU layers of ``hidden_dim`` and one output."""
    layers: list[nn.Module] = []
    for index in range(num_layers):
        layers += [nn.Linear(input_dim if index == 0 else hidden_dim, hidden_dim), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(hidden_dim, 1))
