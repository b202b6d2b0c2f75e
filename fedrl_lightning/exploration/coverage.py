"""State coverage's grid: the cells of a fixed grid over the observations an agent visits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from fedrl_lightning.policy.normalization import RunningStatistics

__all__ = ["BINS", "MAX_DIMS", "SPREAD", "CoverageGrid", "observation_statistics"]

BINS = 20
"""Cells per observation dimension."""

SPREAD = 3.0
"""An unbounded dimension's grid spans the mean ± this many standard deviations."""

MAX_DIMS = 14
"""20^14 cells still number within int64."""


@dataclass(frozen=True)
class CoverageGrid:
    """``BINS`` equal cells per dimension between ``low`` and ``high``; outside, the edge cells.

    Attributes:
        low: Lower bound of each dimension.
        high: Upper bound of each dimension.
    """

    low: tuple[float, ...]
    high: tuple[float, ...]

    @property
    def num_cells(self) -> int:
        """How many cells the grid has: ``BINS ** dimensions``."""
        return BINS ** len(self.low)

    def cells(self, observations: np.ndarray) -> np.ndarray:
        """The distinct cells ``[n, dimensions]`` observations fall in, as sorted int64 ids."""
        low, high = np.asarray(self.low), np.asarray(self.high)
        width = np.where(high > low, high - low, 1.0)
        index = np.floor((np.asarray(observations, np.float64) - low) / width * BINS)
        index = np.clip(index, 0, BINS - 1).astype(np.int64)
        ids = index @ (BINS ** np.arange(index.shape[-1] - 1, -1, -1, dtype=np.int64))
        return np.unique(ids)


def observation_statistics(
    statistics: Mapping[str, RunningStatistics],
) -> RunningStatistics | None:
    """The first of ``statistics`` that holds observations: the policy's or curiosity's."""
    for name in ("policy.normalizer", "curiosity.obs_normalizer"):
        if name in statistics:
            return statistics[name]
    return None
