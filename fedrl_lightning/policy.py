"""Policy networks, and the numpy actors that run them cheaply inside rollouts."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, Normal

__all__ = [
    "CategoricalMLPPolicy",
    "GaussianMLPPolicy",
    "MLPPolicy",
    "NumpyActor",
    "NumpyCategoricalActor",
    "NumpyGaussianActor",
    "NumpyUniformActor",
]

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


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

    def outputs(self, observations: torch.Tensor) -> torch.Tensor:
        """The head's output for ``[..., observation]`` observations."""
        return self.head(torch.relu(self.hidden(observations)))

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


class NumpyActor(ABC):
    """Runs an :class:`MLPPolicy`'s weights with numpy, without torch's per-call overhead.

    A rollout calls the policy once per environment step with a single observation; at that
    size torch's overhead dominates. Randomness comes in as pre-drawn noise, so a rollout can
    draw it in chunks.

    Args:
        hidden_weight: ``[hidden, observation]`` weight of the hidden layer.
        hidden_bias: ``[hidden]`` bias of the hidden layer.
        head_weight: ``[outputs, hidden]`` weight of the output layer.
        head_bias: ``[outputs]`` bias of the output layer.
    """

    action_dtype: Any = np.float32

    def __init__(
        self,
        hidden_weight: np.ndarray,
        hidden_bias: np.ndarray,
        head_weight: np.ndarray,
        head_bias: np.ndarray,
    ) -> None:
        self._w1 = hidden_weight.T
        self._b1 = hidden_bias
        self._w2 = head_weight.T
        self._b2 = head_bias
        self._zeros = np.zeros_like(hidden_bias)
        self.output_dim = head_bias.shape[0]

    def outputs(self, observations: np.ndarray) -> np.ndarray:
        """The head's output for ``[..., observation]`` observations, as torch computes it."""
        # np.dot and a ready-made zero array cost about a third less per call than ``@`` and a
        # Python scalar, which matters at one call per environment step.
        hidden = np.dot(observations, self._w1)
        hidden += self._b1
        np.maximum(hidden, self._zeros, out=hidden)
        outputs = np.dot(hidden, self._w2)
        outputs += self._b2
        return outputs

    @property
    def action_shape(self) -> tuple[int, ...]:
        """Shape of one stored action."""
        return ()

    @abstractmethod
    def noise(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """Noise for ``count`` samples, shape ``[count, output_dim]``."""

    @abstractmethod
    def sample(self, observations: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Actions for ``[..., observation]`` observations, as stored for training."""

    def env_action(self, actions: np.ndarray) -> Any:
        """What the environment is given for ``actions``."""
        return actions


class NumpyCategoricalActor(NumpyActor):
    """Samples discrete actions with the Gumbel-max trick, ``argmax(logits + gumbel)``.

    That draws exactly from ``softmax(logits)``.
    """

    action_dtype = np.int64

    @property
    def num_actions(self) -> int:
        """Number of discrete actions."""
        return self.output_dim

    def logits(self, observations: np.ndarray) -> np.ndarray:
        """Logits for ``[..., observation]`` observations."""
        return self.outputs(observations)

    def noise(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """Standard Gumbel noise."""
        return rng.gumbel(size=(count, self.output_dim)).astype(np.float32)

    def sample(self, observations: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Sample actions given standard Gumbel noise of shape ``[..., num_actions]``."""
        logits = self.outputs(observations)
        logits += noise
        return logits.argmax(axis=-1)


class NumpyGaussianActor(NumpyActor):
    """Samples ``mean + std * noise`` and clips it to the action bounds for the environment.

    Args:
        hidden_weight: ``[hidden, observation]`` weight of the hidden layer.
        hidden_bias: ``[hidden]`` bias of the hidden layer.
        head_weight: ``[actions, hidden]`` weight of the output layer.
        head_bias: ``[actions]`` bias of the output layer.
        log_std: ``[actions]`` log standard deviation.
        action_low: ``[actions]`` lower bounds.
        action_high: ``[actions]`` upper bounds.
    """

    def __init__(
        self,
        hidden_weight: np.ndarray,
        hidden_bias: np.ndarray,
        head_weight: np.ndarray,
        head_bias: np.ndarray,
        log_std: np.ndarray,
        action_low: np.ndarray,
        action_high: np.ndarray,
    ) -> None:
        super().__init__(hidden_weight, hidden_bias, head_weight, head_bias)
        self._log_std = log_std
        self._low = action_low
        self._high = action_high

    @property
    def action_shape(self) -> tuple[int, ...]:
        """Shape of one stored action."""
        return (self.output_dim,)

    def noise(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """Standard normal noise."""
        return rng.standard_normal((count, self.output_dim), dtype=np.float32)

    def sample(self, observations: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Unclipped Gaussian actions given standard normal noise."""
        means = self.outputs(observations)
        means += np.exp(self._log_std) * noise
        return means

    def env_action(self, actions: np.ndarray) -> np.ndarray:
        """Actions clipped to the action space's bounds."""
        return np.clip(actions, self._low, self._high)


class NumpyUniformActor(NumpyGaussianActor):
    """Ignores observations and draws actions uniformly within the action bounds."""

    def noise(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """Uniform noise on ``[0, 1)``."""
        return rng.random((count, self.output_dim), dtype=np.float32)

    def sample(self, observations: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Actions ``low + noise * (high - low)``, one per observation."""
        return self._low + noise * (self._high - self._low)
