"""Policy networks: categorical and Gaussian MLPs over flat observations."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, Normal

from fedrl_lightning.actors import (
    LOG_SQRT_2PI,
    NumpyActor,
    NumpyCategoricalActor,
    NumpyGaussianActor,
    NumpyUniformActor,
)

__all__ = ["CategoricalMLPPolicy", "GaussianMLPPolicy", "MLPPolicy"]


class MLPPolicy(nn.Module, ABC):
    """A one-hidden-layer MLP whose output parameterises an action distribution.

    Args:
        observation_dim: Size of a flat observation.
        output_dim: Size of the head's output (logits or means).
        hidden_dim: Width of the hidden ReLU layer.
    """

    def __init__(self, observation_dim: int, output_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(observation_dim, hidden_dim)
        self.head = nn.Linear(hidden_dim, output_dim)

    def features(self, observations: torch.Tensor) -> torch.Tensor:
        """The hidden layer's activations, ``[..., hidden_dim]``: the trunk a critic may share."""
        return torch.relu(self.hidden(observations))

    def outputs(self, observations: torch.Tensor) -> torch.Tensor:
        """The head's output for ``[..., observation]`` observations."""
        return self.head(self.features(observations))

    @abstractmethod
    def forward(self, observations: torch.Tensor) -> Distribution:
        """The action distribution for a batch of observations."""

    @abstractmethod
    def log_prob_and_entropy(
        self, observations: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities of ``actions`` and the distribution's entropy, per step.

        Computed in closed form, which costs far less than building a
        ``torch.distributions`` object on every training step; tests check both agree.
        """

    @abstractmethod
    def act(self, observations: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Actions the environment accepts for ``[..., observation]`` observations.

        Sampled with torch's random generator, or the most likely with ``deterministic``.
        """

    @abstractmethod
    def actor(self) -> NumpyActor:
        """A numpy actor that samples from this policy's current weights."""

    @abstractmethod
    def random_actor(self) -> NumpyActor:
        """A numpy actor that ignores the weights and acts uniformly at random."""

    def _numpy_weights(self) -> list[np.ndarray]:
        # On CPU these are zero-copy views, so the actor always acts with the live weights; on
        # an accelerator they are a copy taken now.
        return [
            p.detach().cpu().numpy() for p in (*self.hidden.parameters(), *self.head.parameters())
        ]


class CategoricalMLPPolicy(MLPPolicy):
    """An MLP policy over ``num_actions`` discrete actions.

    Args:
        observation_dim: Size of a flat observation.
        num_actions: Number of discrete actions.
        hidden_dim: Width of the hidden ReLU layer.
    """

    def __init__(self, observation_dim: int, num_actions: int, hidden_dim: int) -> None:
        super().__init__(observation_dim, num_actions, hidden_dim)

    def logits(self, observations: torch.Tensor) -> torch.Tensor:
        """Unnormalised action log-probabilities, shape ``[..., num_actions]``."""
        return self.outputs(observations)

    def forward(self, observations: torch.Tensor) -> Categorical:
        """The action distribution for a batch of observations."""
        return Categorical(logits=self.logits(observations))

    def log_prob_and_entropy(
        self, observations: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities of integer ``actions`` and the entropy, shape ``[...]``."""
        log_pi = torch.log_softmax(self.logits(observations), dim=-1)
        log_probs = log_pi.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        entropy = -(log_pi.exp() * log_pi).sum(-1)
        return log_probs, entropy

    def act(self, observations: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Integer actions: sampled, or the argmax of the logits with ``deterministic``."""
        logits = self.logits(observations)
        if deterministic:
            return logits.argmax(dim=-1)
        return Categorical(logits=logits).sample()

    def actor(self) -> NumpyCategoricalActor:
        """A numpy actor over the live weights."""
        return NumpyCategoricalActor(*self._numpy_weights())

    def random_actor(self) -> NumpyCategoricalActor:
        """A numpy actor with all-zero weights: equal logits, so uniform actions."""
        return NumpyCategoricalActor(*(np.zeros_like(w) for w in self._numpy_weights()))


class GaussianMLPPolicy(MLPPolicy):
    """A diagonal Gaussian policy over a ``Box`` action space, with a learned log-std.

    The MLP gives the mean; ``log_std`` is a free parameter per action dimension. Actions are
    sampled unbounded, which keeps their log-probability exact, and clipped to
    ``[action_low, action_high]`` only when they are sent to the environment.

    Args:
        observation_dim: Size of a flat observation.
        action_dim: Size of an action.
        hidden_dim: Width of the hidden ReLU layer.
        action_low: Lower bound of each action dimension.
        action_high: Upper bound of each action dimension.
        log_std_init: Initial log standard deviation.
    """

    def __init__(
        self,
        observation_dim: int,
        action_dim: int,
        hidden_dim: int,
        action_low: Sequence[float],
        action_high: Sequence[float],
        log_std_init: float = 0.0,
    ) -> None:
        super().__init__(observation_dim, action_dim, hidden_dim)
        self.log_std = nn.Parameter(torch.full((action_dim,), float(log_std_init)))
        self.action_low = np.asarray(action_low, np.float32)
        self.action_high = np.asarray(action_high, np.float32)

    def forward(self, observations: torch.Tensor) -> Independent:
        """The action distribution for a batch of observations (before clipping)."""
        return Independent(Normal(self.outputs(observations), self.log_std.exp()), 1)

    def log_prob_and_entropy(
        self, observations: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities of ``[..., action_dim]`` actions and the entropy, shape ``[...]``."""
        means = self.outputs(observations)
        z = (actions - means) * torch.exp(-self.log_std)
        log_probs = (-0.5 * z.square() - self.log_std - LOG_SQRT_2PI).sum(-1)
        entropy = (self.log_std + 0.5 + LOG_SQRT_2PI).sum().expand(log_probs.shape)
        return log_probs, entropy

    def act(self, observations: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Actions sampled (the mean with ``deterministic``), clipped to the action bounds."""
        actions = self.outputs(observations)
        if not deterministic:
            actions = actions + self.log_std.exp() * torch.randn_like(actions)
        low = torch.as_tensor(self.action_low, device=actions.device)
        high = torch.as_tensor(self.action_high, device=actions.device)
        return torch.clamp(actions, low, high)

    def actor(self) -> NumpyGaussianActor:
        """A numpy actor over the live weights."""
        return NumpyGaussianActor(
            *self._numpy_weights(),
            log_std=self.log_std.detach().cpu().numpy(),
            action_low=self.action_low,
            action_high=self.action_high,
        )

    def random_actor(self) -> NumpyUniformActor:
        """A numpy actor that acts uniformly at random within the action bounds."""
        return NumpyUniformActor(
            *self._numpy_weights(),
            log_std=self.log_std.detach().cpu().numpy(),
            action_low=self.action_low,
            action_high=self.action_high,
        )
