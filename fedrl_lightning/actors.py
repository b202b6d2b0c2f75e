"""Numpy actors: a policy's weights run with numpy, cheaply, one step at a time in rollouts."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

__all__ = ["NumpyActor", "NumpyCategoricalActor", "NumpyGaussianActor", "NumpyUniformActor"]

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


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
