"""State coverage: the fraction of a fixed grid's cells over the observations the agents visited."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.policy.normalization import RunningStatistics

if TYPE_CHECKING:
    from fedrl_lightning.learners import Learner
    from fedrl_lightning.population.agents import AgentPopulation

__all__ = ["BINS", "Coverage", "CoverageGrid"]

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


class Coverage:
    """The cells of a :class:`CoverageGrid` that the federation's training agents visited.

    Each agent sends the cells its training observations fell in (``visited_cells`` among
    its statistics); the server keeps their union, and each round reports ``coverage``: the
    fraction of cells seen so far. The grid's bounds are the observation space's; a
    dimension the space leaves unbounded spans the mean ± 3 standard deviations of the
    model's pooled observation statistics, fixed at the first round that starts with any.
    Until then no cell is counted (``coverage`` is NaN).

    Args:
        enabled: Whether coverage is tracked; off, every method does nothing.
        low: The observation space's lower bounds.
        high: Its upper bounds.
    """

    def __init__(
        self, enabled: bool = False, low: Sequence[float] = (), high: Sequence[float] = ()
    ) -> None:
        self.enabled = enabled
        self.low = [float(x) for x in low]
        self.high = [float(x) for x in high]
        if enabled and len(self.low) > MAX_DIMS:
            raise ConfigError(
                f"trainer.coverage: observations of {len(self.low)} dimensions make too many "
                f"cells ({BINS}^{len(self.low)}); coverage takes at most {MAX_DIMS}"
            )
        self.grid: CoverageGrid | None = None
        self.visited: set[int] = set()

    @classmethod
    def for_population(cls, enabled: bool, population: AgentPopulation, model: Learner) -> Coverage:
        """Coverage over ``population``'s observation space, checked against ``model``.

        Raises:
            ConfigError: If enabled and the space is not a flat Box of the model's size, or
                is unbounded while the model keeps no observation statistics.
        """
        if not enabled:
            return cls()
        space = population.make_env(0).observation_space
        low, high = getattr(space, "low", None), getattr(space, "high", None)
        size = model.hparams.observation_dim
        if low is None or low.ndim != 1 or low.shape[0] != size:
            raise ConfigError(
                f"trainer.coverage needs a flat Box observation space of {size} values, the "
                f"model's observation_dim; got {space}"
            )
        assert high is not None  # a Box, with a low bound, has a high one
        coverage = cls(True, low.astype(float).tolist(), high.astype(float).tolist())
        coverage.check(model.statistics_modules())
        return coverage

    @property
    def bounded(self) -> bool:
        """Whether the space bounds every dimension."""
        return all(np.isfinite(self.low)) and all(np.isfinite(self.high))

    def check(self, statistics: Mapping[str, RunningStatistics]) -> None:
        """Refuse an unbounded space when the model keeps no observation statistics."""
        if self.enabled and not self.bounded and _observation_statistics(statistics) is None:
            raise ConfigError(
                "trainer.coverage: the observation space is unbounded, and the grid takes such "
                "bounds from observation statistics; set model.normalize_observations or "
                "model.curiosity"
            )

    def grid_for(self, statistics: Mapping[str, RunningStatistics]) -> CoverageGrid | None:
        """The grid the agents of the next round count cells on; ``None`` while unknown."""
        if not self.enabled or self.grid is not None:
            return self.grid
        low, high = np.array(self.low), np.array(self.high)
        if not self.bounded:
            stats = _observation_statistics(statistics)
            if stats is None or float(stats.count) == 0:
                return None
            mean, std = stats.mean.numpy(), np.sqrt(stats.variance().numpy())
            low = np.where(np.isfinite(low), low, mean - SPREAD * std)
            high = np.where(np.isfinite(high), high, mean + SPREAD * std)
        self.grid = CoverageGrid(tuple(low.tolist()), tuple(high.tolist()))
        return self.grid

    def columns(self, visited: Sequence[torch.Tensor | None]) -> dict[str, float]:
        """Add a round's visited cells, one tensor per agent, and give its ``coverage`` column."""
        if not self.enabled:
            return {}
        for cells in visited:
            if cells is not None:
                self.visited.update(cells.tolist())
        if self.grid is None or all(cells is None for cells in visited):
            return {"coverage": float("nan")}  # the round's agents had no grid to count on
        return {"coverage": len(self.visited) / self.grid.num_cells}

    def metric_names(self) -> list[str]:
        """The numeric column :meth:`columns` adds, when enabled."""
        return ["coverage"] if self.enabled else []

    def state_dict(self) -> dict[str, Any]:
        """The grid's bounds and the cells visited so far."""
        if not self.enabled:
            return {}
        grid = self.grid
        return {
            "low": list(grid.low) if grid is not None else None,
            "high": list(grid.high) if grid is not None else None,
            "visited": torch.tensor(sorted(self.visited), dtype=torch.int64),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output."""
        if not self.enabled or not state:
            return
        if state["low"] is not None:
            self.grid = CoverageGrid(tuple(state["low"]), tuple(state["high"]))
        self.visited = set(torch.as_tensor(state["visited"]).tolist())


def _observation_statistics(
    statistics: Mapping[str, RunningStatistics],
) -> RunningStatistics | None:
    """The first of ``statistics`` that holds observations: the policy's or curiosity's."""
    for name in ("policy.normalizer", "curiosity.obs_normalizer"):
        if name in statistics:
            return statistics[name]
    return None
