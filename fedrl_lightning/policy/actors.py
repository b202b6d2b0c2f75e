"""Numpy actors: a policy's weights run with numpy, cheaply, one step at a time in rollouts."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "NumpyActor",
    "NumpyCategoricalActor",
    "NumpyGaussianActor",
    "NumpyGreedyActor",
    "NumpyUniformActor",
]

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class NumpyActor(ABC):
    """Runs an :class:`MLPPolicy`'s weights with numpy, without torch's per-call overhead.

    A rollout calls the policy once per environment step with a single observation; at that
    size torch's overhead dominates. Randomness comes in as pre-drawn noise, so a rollout can
    draw it in chunks.

    Args:
        layers: ``(weight, bias)`` of each hidden ReLU layer, first to last: weights
            ``[hidden, inputs]``, biases ``[hidden]``.
        head: ``(weight, bias)`` of the output layer: ``[outputs, hidden]`` and ``[outputs]``.
        normalization: ``(shift, scale)`` float32 arrays: observations become
            ``clip((obs - shift) * scale, -clip, clip)`` before the first layer; ``None``:
            taken as they are.
        clip: The normalised observations' bound.
    """

    action_dtype: Any = np.float32

    def __init__(
        self,
        layers: Sequence[tuple[np.ndarray, np.ndarray]],
        head: tuple[np.ndarray, np.ndarray],
        normalization: tuple[np.ndarray, np.ndarray] | None = None,
        clip: float = 10.0,
    ) -> None:
        self._layers = [(weight.T, bias, np.zeros_like(bias)) for weight, bias in layers]
        self._w2 = head[0].T
        self._b2 = head[1]
        self._normalization = normalization
        self._clip = clip
        self.output_dim = head[1].shape[0]

    def outputs(self, observations: np.ndarray) -> np.ndarray:
        """The head's output for ``[..., observation]`` observations, as torch computes it."""
        if self._normalization is not None:
            shift, scale = self._normalization
            observations = np.clip((observations - shift) * scale, -self._clip, self._clip)
        # np.dot and a ready-made zero array cost about a third less per call than ``@`` and a
        # Python scalar, which matters at one call per environment step.
        hidden = observations
        for weight, bias, zeros in self._layers:
            hidden = np.dot(hidden, weight)
            hidden += bias
            np.maximum(hidden, zeros, out=hidden)
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

    @abstractmethod
    def log_prob(self, observations: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Log-probabilities of stored ``actions`` at ``[n, observation]`` observations, ``[n]``.

        What the behaviour policy gave the actions it took, as an off-policy correction or
        PPO's ratio needs.
        """

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

    def log_prob(self, observations: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """``log softmax(logits)[action]`` per step."""
        logits = self.outputs(observations)
        top = logits.max(axis=-1, keepdims=True)
        log_normalizer = top[:, 0] + np.log(np.exp(logits - top).sum(axis=-1))
        return logits[np.arange(len(actions)), actions] - log_normalizer


class NumpyGreedyActor(NumpyCategoricalActor):
    """Takes the action of the largest output, a Q-network's greedy action; draws no noise.

    Its noise is zeros, so sampling is the argmax, and the log-probability of the action it
    takes is 0 (it is deterministic).
    """

    def noise(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """Zeros: a greedy actor draws nothing."""
        return np.zeros((count, self.output_dim), np.float32)

    def sample(self, observations: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """The greedy actions, ``argmax`` of the outputs (the first of tied maxima)."""
        return self.outputs(observations).argmax(axis=-1)

    def log_prob(self, observations: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """0 for the greedy action, ``-inf`` for any other."""
        greedy = self.outputs(observations).argmax(axis=-1)
        return np.where(greedy == actions, 0.0, -np.inf).astype(np.float32)


class NumpyGaussianActor(NumpyActor):
    """Samples ``mean + std * noise`` and clips it to the action bounds for the environment.

    Args:
        layers: ``(weight, bias)`` of each hidden layer, as for :class:`NumpyActor`.
        head: ``(weight, bias)`` of the output layer, ``[actions, hidden]`` and ``[actions]``.
        log_std: ``[actions]`` log standard deviation.
        action_low: ``[actions]`` lower bounds.
        action_high: ``[actions]`` upper bounds.
        normalization: ``(shift, scale)`` of the observations, as for :class:`NumpyActor`.
    """

    def __init__(
        self,
        layers: Sequence[tuple[np.ndarray, np.ndarray]],
        head: tuple[np.ndarray, np.ndarray],
        log_std: np.ndarray,
        action_low: np.ndarray,
        action_high: np.ndarray,
        normalization: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        super().__init__(layers, head, normalization)
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

    def log_prob(self, observations: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """The diagonal Gaussian's log-density of the unclipped actions, per step."""
        z = (actions - self.outputs(observations)) * np.exp(-self._log_std)
        return (-0.5 * np.square(z) - self._log_std - LOG_SQRT_2PI).sum(axis=-1)

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

    def log_prob(self, observations: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """The uniform density's log over the action box, the same for every step."""
        log_volume = np.log(self._high - self._low).sum()
        return np.full(len(observations), -log_volume, dtype=np.float32)
