"""Running statistics and the normalisers built on them, pooled across agents, never averaged.

One running-statistics type, :class:`RunningMeanStd` (count, mean and M2 per feature, merged
with Chan et al.'s parallel formula), underlies everything here:

- :class:`RunningStatistics` keeps one as three float64 module buffers, so the statistics are
  in every ``state_dict``; a federation pools every agent's (:func:`pooled_statistics`);
- :class:`ObservationNormalizer` standardises a policy's observations with them;
- :class:`RewardNormalizer` scales rewards by the spread of the discounted return, as an
  actor-critic's reward normalizer and as curiosity's intrinsic-reward scale.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from fedrl_lightning.rollouts.returns import running_returns

__all__ = [
    "STATISTICS_BUFFERS",
    "ObservationNormalizer",
    "RewardNormalizer",
    "RunningMeanStd",
    "RunningStatistics",
    "pooled_statistics",
    "statistics_in",
]


class RunningMeanStd:
    """Count, mean and sum of squared deviations (M2) of observations, per feature, in float64.

    Updating with a batch and merging with another instance both use Chan et al.'s parallel
    formula: for parts ``a`` and ``b`` with ``delta = mean_b - mean_a`` and ``n = n_a + n_b``::

        mean = mean_a + delta * n_b / n
        M2   = M2_a + M2_b + delta**2 * n_a * n_b / n

    so the statistics of several agents merged equal those of their pooled observations (up
    to rounding), whatever the order. ``var`` is the population variance ``M2 / count``, as
    ``numpy.var``. An empty instance has count 0, mean 0 and M2 0; its ``var`` is reported
    as 1, so normalising with it leaves observations as they are (apart from clipping).

    Args:
        shape: The shape of one observation; an int is a number of features, ``()`` scalars.
    """

    def __init__(self, shape: int | tuple[int, ...] = ()) -> None:
        self.shape: tuple[int, ...] = (shape,) if isinstance(shape, int) else tuple(shape)
        self.count = 0
        self.mean = np.zeros(self.shape, dtype=np.float64)
        self.m2 = np.zeros(self.shape, dtype=np.float64)

    @property
    def var(self) -> np.ndarray:
        """The population variance per feature, ``M2 / count``; ones while empty."""
        if self.count == 0:
            return np.ones(self.shape, dtype=np.float64)
        return self.m2 / self.count

    @property
    def std(self) -> np.ndarray:
        """The population standard deviation per feature; ones while empty."""
        return np.sqrt(self.var)

    def update(self, batch: np.ndarray) -> None:
        """Add a batch of observations.

        Args:
            batch: ``[n, *shape]`` observations; an empty batch changes nothing.

        Raises:
            ValueError: If the batch's shape does not fit, or it holds NaN or infinity.
        """
        batch = np.asarray(batch, dtype=np.float64)
        if batch.shape[1:] != self.shape:
            raise ValueError(
                f"RunningMeanStd.update: a batch of shape {batch.shape} does not hold "
                f"observations of shape {self.shape}"
            )
        if len(batch) == 0:
            return
        if not np.isfinite(batch).all():
            raise ValueError("RunningMeanStd.update: the batch holds NaN or infinite values")
        mean = batch.mean(axis=0)
        self._combine(len(batch), mean, np.square(batch - mean).sum(axis=0))

    def merge(self, other: RunningMeanStd) -> None:
        """Fold another instance's statistics into this one, in place.

        Args:
            other: Statistics of the same shape; it is left unchanged.

        Raises:
            ValueError: If the shapes differ.
        """
        if other.shape != self.shape:
            raise ValueError(
                f"RunningMeanStd.merge: cannot merge statistics of shape {other.shape} "
                f"into statistics of shape {self.shape}"
            )
        self._combine(other.count, other.mean, other.m2)

    @classmethod
    def merged(cls, stats: Iterable[RunningMeanStd]) -> RunningMeanStd:
        """Return the statistics of all the given instances' observations pooled.

        Args:
            stats: One or more instances of the same shape; none of them is changed.

        Returns:
            A new instance.

        Raises:
            ValueError: If ``stats`` is empty or the shapes differ.
        """
        stats = list(stats)
        if not stats:
            raise ValueError("RunningMeanStd.merged: nothing to merge")
        result = cls(stats[0].shape)
        for part in stats:
            result.merge(part)
        return result

    def normalize(self, x: np.ndarray, clip: float = 10.0, eps: float = 1e-8) -> np.ndarray:
        """Standardise observations and clip them to ``[-clip, clip]``.

        Args:
            x: Observations of shape ``[..., *shape]``.
            clip: The bound on the absolute value of the result; must be positive.
            eps: Added to the variance before its square root.

        Returns:
            ``clip((x - mean) / sqrt(var + eps), -clip, clip)``, in ``x``'s floating dtype
            (float64 for integer input).

        Raises:
            ValueError: If ``clip`` is not positive.
        """
        if not clip > 0:
            raise ValueError(f"RunningMeanStd.normalize: clip must be positive, got {clip}")
        x = np.asarray(x)
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
        scaled = (x - self.mean) / np.sqrt(self.var + eps)
        return np.clip(scaled, -clip, clip).astype(dtype, copy=False)

    def state_dict(self) -> dict[str, Any]:
        """Return the statistics as an int and float64 tensors, loadable with weights_only."""
        return {
            "count": self.count,
            "mean": torch.from_numpy(self.mean.copy()),
            "m2": torch.from_numpy(self.m2.copy()),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Replace the statistics with those of :meth:`state_dict`.

        Args:
            state: A mapping with ``count``, ``mean`` and ``m2`` of this instance's shape.

        Raises:
            ValueError: If a key is missing, a shape differs, or a value is invalid.
        """
        missing = {"count", "mean", "m2"} - set(state)
        if missing:
            raise ValueError(f"RunningMeanStd state lacks {', '.join(sorted(missing))}")
        count = state["count"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"RunningMeanStd state: count must be an int >= 0, got {count!r}")
        arrays = {}
        for key in ("mean", "m2"):
            value = torch.as_tensor(state[key], dtype=torch.float64).numpy().copy()
            if value.shape != self.shape:
                raise ValueError(
                    f"RunningMeanStd state: {key} has shape {value.shape}, expected {self.shape}"
                )
            if not np.isfinite(value).all():
                raise ValueError(f"RunningMeanStd state: {key} holds NaN or infinite values")
            arrays[key] = value
        if (arrays["m2"] < 0).any():
            raise ValueError("RunningMeanStd state: m2 must not be negative")
        self.count, self.mean, self.m2 = count, arrays["mean"], arrays["m2"]

    def _combine(self, count: int, mean: np.ndarray, m2: np.ndarray) -> None:
        """Pool these statistics with another part's by Chan et al.'s formula."""
        if count == 0:
            return
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + m2 + np.square(delta) * (self.count * count / total)
        self.count = total


STATISTICS_BUFFERS = ("count", "mean", "m2")
"""The buffers, under a statistics module's name in a ``state_dict``, that hold its statistics."""


class RunningStatistics(nn.Module):
    """Count, mean and M2 per feature of what a learner observes, as three float64 buffers.

    The buffers travel in the ``state_dict`` with the weights, so they are part of every
    checkpoint, but a federation never hands them to a strategy. During a local fit,
    :meth:`observe` folds values into the buffers and, apart, into the fit's own statistics
    (:meth:`fit_statistics`): that is what an agent sends, and the server pools every agent's
    into the global buffers with Chan et al.'s parallel formula (:func:`pooled_statistics`),
    so the result equals the statistics of all the values pooled. Averaging the buffers like
    weights would not: means of unequal counts and M2s do not average.

    A :class:`~fedrl_lightning.learners.Learner` finds every instance among its submodules
    (``statistics_modules()``), whatever a subclass uses the statistics for: the observation
    normalizer standardises observations with them, the reward normalizer scales rewards.

    Args:
        num_features: Size of one observed value.
    """

    count: torch.Tensor
    mean: torch.Tensor
    m2: torch.Tensor

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(num_features, dtype=torch.float64))
        self.register_buffer("m2", torch.zeros(num_features, dtype=torch.float64))
        self._fit = RunningMeanStd(num_features)

    def statistics(self) -> RunningMeanStd:
        """The statistics in the buffers, as a :class:`RunningMeanStd` (a copy)."""
        return statistics_in(self.state_dict(), "")

    def variance(self) -> torch.Tensor:
        """The population variance per feature, ``M2 / count``, float64; ones while empty."""
        count = float(self.count)
        return self.m2 / count if count > 0 else torch.ones_like(self.m2)

    def start_fit(self) -> None:
        """Forget the previous fit's own statistics; the buffers are kept."""
        self._fit = RunningMeanStd(self.mean.shape[0])

    @torch.no_grad()
    def observe(self, values: torch.Tensor) -> None:
        """Fold ``[n, feature]`` values into the buffers and into the fit's own statistics."""
        batch = RunningMeanStd(self.mean.shape[0])
        batch.update(values.detach().cpu().double().numpy())
        self._fit.merge(batch)
        for key, value in pooled_statistics(self.state_dict(), "", [batch]).items():
            getattr(self, key).copy_(value)

    def fit_statistics(self) -> dict[str, object]:
        """The statistics of the values this fit observed, as an agent sends them."""
        return self._fit.state_dict()


def statistics_in(state: Mapping[str, torch.Tensor], prefix: str) -> RunningMeanStd:
    """The statistics a module named ``prefix`` holds in ``state`` (a ``state_dict``)."""
    key = f"{prefix}." if prefix else ""
    stats = RunningMeanStd(state[f"{key}mean"].shape[0])
    stats.load_state_dict(
        {
            "count": int(state[f"{key}count"]),
            "mean": state[f"{key}mean"],
            "m2": state[f"{key}m2"],
        }
    )
    return stats


def pooled_statistics(
    state: Mapping[str, torch.Tensor], prefix: str, parts: list[RunningMeanStd]
) -> dict[str, torch.Tensor]:
    """The buffers of statistics module ``prefix`` once ``parts`` are pooled into ``state``'s.

    Args:
        state: The global ``state_dict``.
        prefix: The module's name in it, such as ``policy.normalizer``; ``""`` for a
            module's own ``state_dict``.
        parts: The statistics each agent observed in its fit, in agent order.

    Returns:
        ``{f"{prefix}.count": ..., f"{prefix}.mean": ..., f"{prefix}.m2": ...}``, float64
        (without the prefix and its dot when ``prefix`` is empty).
    """
    pooled = statistics_in(state, prefix)
    for part in parts:
        pooled.merge(part)
    key = f"{prefix}." if prefix else ""
    return {
        f"{key}count": torch.tensor(float(pooled.count), dtype=torch.float64),
        f"{key}mean": torch.from_numpy(pooled.mean.copy()),
        f"{key}m2": torch.from_numpy(pooled.m2.copy()),
    }


class ObservationNormalizer(RunningStatistics):
    """Standardises observations, ``clip((obs - mean) / sqrt(var + eps), -clip, clip)``.

    The statistics are the count, mean and M2 per feature of every observation, in the
    float64 buffers of :class:`RunningStatistics`, so they
    are part of every checkpoint and a federation pools them as statistics. Before any
    observation they are empty, and the normalizer leaves observations as they are (apart
    from clipping).

    During a local fit, the learner folds each batch's observations in (:meth:`observe`)
    after the batch's update, so the next batch is rolled out and trained with the same
    statistics.

    Args:
        observation_dim: Size of a flat observation.
        clip: Bound on the normalised observation's absolute value.
        eps: Added to the variance before its square root.
    """

    def __init__(self, observation_dim: int, clip: float = 10.0, eps: float = 1e-8) -> None:
        super().__init__(observation_dim)
        self.clip = clip
        self.eps = eps

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(shift, scale)`` in float32: a normalised observation is ``(obs - shift) * scale``."""
        return self.mean.float(), torch.rsqrt(self.variance() + self.eps).float()

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """Normalised ``[..., observation]`` observations, float32."""
        shift, scale = self.affine()
        return ((observations - shift) * scale).clamp(-self.clip, self.clip)

    def numpy_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`affine` as numpy arrays, for a numpy actor to normalise exactly as torch does."""
        shift, scale = self.affine()
        return shift.detach().cpu().numpy(), scale.detach().cpu().numpy()


class RewardNormalizer(RunningStatistics):
    """Scales rewards by ``1 / sqrt(var(R) + eps)``, clipped to ``[-clip, clip]``.

    ``R`` is the discounted return so far
    (:func:`~fedrl_lightning.rollouts.returns.running_returns`), and its statistics are one
    feature's count, mean and M2 in the float64 buffers of :class:`RunningStatistics`: they
    are in every checkpoint, and a federation pools every agent's as statistics (Chan et
    al.'s formula), as it pools observation statistics.
    The mean is not subtracted from the rewards, so their sign, and what ending an episode
    early is worth, are kept. This is Stable-Baselines3's ``VecNormalize(norm_reward=True)``,
    with whole episodes instead of vectorised steps: :meth:`observe_episodes` folds a batch's
    returns in, then :meth:`forward` scales the same batch's rewards with the statistics
    that include them, as VecNormalize updates its statistics before it scales each step's
    reward.

    Args:
        gamma: The discount factor of ``R``; the learner's own.
        clip: Bound on the scaled reward's absolute value.
        eps: Added to the variance before its square root.
    """

    def __init__(self, gamma: float, clip: float = 10.0, eps: float = 1e-8) -> None:
        super().__init__(1)
        self.gamma = gamma
        self.clip = clip
        self.eps = eps

    def observe_episodes(self, rewards: torch.Tensor, mask: torch.Tensor) -> None:
        """Fold the discounted return of every real step of ``[episodes, steps]`` rewards in."""
        returns = running_returns(rewards, mask, self.gamma)
        self.observe(returns[mask.to(torch.bool)].unsqueeze(-1))

    def forward(self, rewards: torch.Tensor) -> torch.Tensor:
        """``clip(rewards / sqrt(var(R) + eps), -clip, clip)``, in ``rewards``' dtype.

        Zero rewards (padding) stay zero. Before any return is observed the variance is 1,
        and rewards are only clipped.
        """
        scale = torch.sqrt(self.variance()[0] + self.eps).to(rewards.device)
        return (rewards.double() / scale).clamp(-self.clip, self.clip).to(rewards.dtype)
