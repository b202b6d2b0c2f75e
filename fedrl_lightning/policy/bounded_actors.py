"""Numpy actors of SAC's and TD3's policies: tanh-squashed actions, scaled to the bounds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedrl_lightning.policy.actors import LOG_SQRT_2PI, NumpyActor

__all__ = ["LOG_STD_MAX", "LOG_STD_MIN", "NumpySquashedGaussianActor", "NumpyTanhActor"]

LOG_STD_MIN = -20.0
"""The squashed Gaussian's lowest log standard deviation (SB3's clamp; CleanRL's is -5)."""
LOG_STD_MAX = 2.0
"""Its highest (both libraries')."""


class NumpyTanhActor(NumpyActor):
    """Acts ``c + s · tanh(head)``, plus ``s · noise``, clipped to the bounds: TD3's actor.

    ``s = (high − low) / 2`` and ``c = (high + low) / 2``. The noise is normal with standard
    deviation ``noise_std`` in units of the half-range ``s`` (TD3's exploration noise, CleanRL's
    ``exploration_noise``); with ``noise_std`` 0 it draws zeros and the actor is deterministic.

    Args:
        layers: ``(weight, bias)`` of each hidden layer, as for :class:`NumpyActor`.
        head: ``(weight, bias)`` of the output layer, ``[actions, hidden]`` and ``[actions]``.
        action_low: ``[actions]`` lower bounds.
        action_high: ``[actions]`` upper bounds.
        noise_std: The exploration noise's standard deviation, in half-ranges.
        normalization: ``(shift, scale)`` of the observations, as for :class:`NumpyActor`.
    """

    def __init__(
        self,
        layers: Sequence[tuple[np.ndarray, np.ndarray]],
        head: tuple[np.ndarray, np.ndarray],
        action_low: np.ndarray,
        action_high: np.ndarray,
        noise_std: float = 0.0,
        normalization: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        super().__init__(layers, head, normalization)
        self._low = np.asarray(action_low, np.float32)
        self._high = np.asarray(action_high, np.float32)
        self._scale = (self._high - self._low) / 2
        self._bias = (self._high + self._low) / 2
        self._noise_std = noise_std
        self.output_dim = len(self._low)

    @property
    def action_shape(self) -> tuple[int, ...]:
        """Shape of one stored action."""
        return (self.output_dim,)

    def squash(self, pre_tanh: np.ndarray) -> np.ndarray:
        """``c + s · tanh(u)``: a pre-tanh output as an action within the bounds."""
        return self._bias + self._scale * np.tanh(pre_tanh)

    def noise(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """Normal noise of standard deviation ``noise_std``; zeros, drawing nothing, if 0."""
        if not self._noise_std:
            return np.zeros((count, self.output_dim), np.float32)
        return self._noise_std * rng.standard_normal((count, self.output_dim), dtype=np.float32)

    def sample(self, observations: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """The actor's actions plus ``s · noise``, clipped to the bounds."""
        actions = self.squash(self.outputs(observations)) + self._scale * noise
        return np.clip(actions, self._low, self._high)

    def log_prob(self, observations: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Not defined: the actor is deterministic (and its noise is clipped).

        Raises:
            NotImplementedError: Always; no on-policy correction uses it.
        """
        raise NotImplementedError("a deterministic actor has no density")


class NumpySquashedGaussianActor(NumpyTanhActor):
    """SAC's actor: ``c + s · tanh(μ + σ · noise)``, noise standard normal; zero: ``tanh(μ)``.

    The head's output holds the means, then the log standard deviations, which are clamped to
    ``[LOG_STD_MIN, LOG_STD_MAX]`` as the torch policy clamps them.

    Built as :class:`NumpyTanhActor` (its ``noise_std`` unused), the head
    ``[2 · actions, hidden]``.
    """

    def noise(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """Standard normal noise."""
        return rng.standard_normal((count, self.output_dim), dtype=np.float32)

    def mean_and_log_std(self, observations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The Gaussian's mean and clamped log standard deviation, before the tanh."""
        outputs = self.outputs(observations)
        mean, log_std = np.split(outputs, 2, axis=-1)
        return mean, np.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, observations: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Squashed Gaussian actions given standard normal noise."""
        mean, log_std = self.mean_and_log_std(observations)
        return self.squash(mean + np.exp(log_std) * noise)

    def log_prob(self, observations: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """The squashed Gaussian's log-density of ``actions`` (kept inside the open bounds)."""
        mean, log_std = self.mean_and_log_std(observations)
        unit = np.clip((actions - self._bias) / self._scale, -1 + 1e-6, 1 - 1e-6)
        pre_tanh = np.arctanh(unit)
        z = (pre_tanh - mean) * np.exp(-log_std)
        gaussian = -0.5 * np.square(z) - log_std - LOG_SQRT_2PI
        jacobian = np.log(self._scale * (1 - np.square(unit)))
        return (gaussian - jacobian).sum(axis=-1)
