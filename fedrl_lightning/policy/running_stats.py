"""Running mean and variance per feature that merge exactly as statistics (Chan et al.)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["RunningMeanStd"]


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
