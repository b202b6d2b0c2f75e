"""State coverage, a round component: the fraction of a grid's cells the agents visited."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from typing_extensions import override

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.exploration.coverage import (
    BINS,
    MAX_DIMS,
    SPREAD,
    CoverageGrid,
    observation_statistics,
)
from fedrl_lightning.federation.components.base import FitPart, InvalidUpdate, RoundComponent
from fedrl_lightning.federation.messages import AgentUpdate
from fedrl_lightning.policy.normalization import RunningStatistics

if TYPE_CHECKING:
    from fedrl_lightning.federation.local_fit import AgentFit
    from fedrl_lightning.federation.trainer import FederatedTrainer
    from fedrl_lightning.learners import Learner
    from fedrl_lightning.population.agents import AgentPopulation

__all__ = ["Coverage", "CoveragePart"]

OPTION = "trainer.components Coverage"
"""The component as a user names it, for messages."""


@dataclass(frozen=True)
class CoveragePart(FitPart):
    """Coverage's part of an agent's fit: the grid whose visited cells it reports.

    Attributes:
        grid: The grid its training observations are counted on.
    """

    grid: CoverageGrid

    @override
    def prepare(self, fit: AgentFit) -> None:
        fit.module.coverage_grid = self.grid

    @override
    def read(
        self, checkpoint: Mapping[str, Any], stats: Mapping[str, Any], path: Path
    ) -> torch.Tensor:
        """The distinct cell ids, each a cell of the grid, the agent says it visited."""
        cells = stats["visited_cells"]
        if not isinstance(cells, torch.Tensor) or cells.dtype != torch.int64 or cells.ndim != 1:
            raise InvalidUpdate(f"{path}: its visited_cells are not a vector of cell ids")
        num_cells = self.grid.num_cells
        if cells.numel() and (int(cells.min()) < 0 or int(cells.max()) >= num_cells):
            raise InvalidUpdate(f"{path}: its visited_cells are not cells of the {num_cells}")
        return cells.unique()


class Coverage(RoundComponent):
    """The cells of a :class:`CoverageGrid` that the federation's training agents visited.

    Each agent sends the cells its training observations fell in (``visited_cells`` among
    its statistics); the server keeps their union, and each round reports ``coverage``: the
    fraction of cells seen so far. The grid's bounds are the observation space's; a
    dimension the space leaves unbounded spans the mean ± 3 standard deviations of the
    model's pooled observation statistics, fixed at the first round that starts with any.
    Until then no cell is counted (``coverage`` is NaN).
    """

    name = "coverage"

    def __init__(self) -> None:
        self.low: list[float] = []
        self.high: list[float] = []
        self.grid: CoverageGrid | None = None
        self.visited: set[int] = set()
        self.statistics: Mapping[str, RunningStatistics] = {}
        self._counted = False  # whether the last round's agents counted on a grid

    @classmethod
    def over(cls, low: Sequence[float], high: Sequence[float]) -> Coverage:
        """Coverage over a space of these bounds (infinite where unbounded).

        Raises:
            ConfigError: For more than :data:`MAX_DIMS` dimensions.
        """
        if len(low) > MAX_DIMS:
            raise ConfigError(
                f"{OPTION}: observations of {len(low)} dimensions make too many "
                f"cells ({BINS}^{len(low)}); coverage takes at most {MAX_DIMS}"
            )
        coverage = cls()
        coverage.low, coverage.high = [float(x) for x in low], [float(x) for x in high]
        return coverage

    @override
    def setup(self, trainer: FederatedTrainer, model: Learner, population: AgentPopulation) -> None:
        """Cover ``population``'s observation space, checked against ``model``.

        Raises:
            ConfigError: If the space is not a flat Box of the model's size, or is unbounded
                while the model keeps no observation statistics.
        """
        space = population.make_env(0).observation_space
        low, high = getattr(space, "low", None), getattr(space, "high", None)
        size = model.hparams.observation_dim
        if low is None or low.ndim != 1 or low.shape[0] != size:
            raise ConfigError(
                f"{OPTION} needs a flat Box observation space of {size} values, the "
                f"model's observation_dim; got {space}"
            )
        assert high is not None  # a Box, with a low bound, has a high one
        bounded = Coverage.over(low.astype(float).tolist(), high.astype(float).tolist())
        self.low, self.high = bounded.low, bounded.high
        self.grid, self.visited, self._counted = None, set(), False
        self.statistics = model.statistics_modules()
        self.check(self.statistics)

    @property
    def bounded(self) -> bool:
        """Whether the space bounds every dimension."""
        return all(np.isfinite(self.low)) and all(np.isfinite(self.high))

    def check(self, statistics: Mapping[str, RunningStatistics]) -> None:
        """Refuse an unbounded space when the model keeps no observation statistics."""
        if not self.bounded and observation_statistics(statistics) is None:
            raise ConfigError(
                f"{OPTION}: the observation space is unbounded, and the grid takes such "
                "bounds from observation statistics; set model.normalize_observations or "
                "model.curiosity"
            )

    def grid_for(self, statistics: Mapping[str, RunningStatistics]) -> CoverageGrid | None:
        """The grid the agents of the next round count cells on; ``None`` while unknown."""
        if self.grid is not None:
            return self.grid
        low, high = np.array(self.low), np.array(self.high)
        if not self.bounded:
            stats = observation_statistics(statistics)
            if stats is None or float(stats.count) == 0:
                return None
            mean, std = stats.mean.numpy(), np.sqrt(stats.variance().numpy())
            low = np.where(np.isfinite(low), low, mean - SPREAD * std)
            high = np.where(np.isfinite(high), high, mean + SPREAD * std)
        self.grid = CoverageGrid(tuple(low.tolist()), tuple(high.tolist()))
        return self.grid

    @override
    def fit_inputs(self, agent: int, round_idx: int) -> CoveragePart | None:
        """The grid to count on, once known (the model's statistics give it, if needed)."""
        grid = self.grid_for(self.statistics)
        return None if grid is None else CoveragePart(grid)

    @override
    def aggregate(self, updates: Sequence[AgentUpdate], round_idx: int) -> None:
        """Add the cells the round's agents visited."""
        visited = [update.extras.get(self.name) for update in updates]
        for cells in visited:
            if isinstance(cells, torch.Tensor):
                self.visited.update(cells.tolist())
        self._counted = any(cells is not None for cells in visited)

    @override
    def round_columns(self) -> dict[str, Any]:
        """``coverage``: the fraction of the grid's cells visited so far."""
        if self.grid is None or not self._counted:
            return {"coverage": float("nan")}  # the round's agents had no grid to count on
        return {"coverage": len(self.visited) / self.grid.num_cells}

    @override
    def metric_names(self) -> list[str]:
        return ["coverage"]

    @override
    def state_dict(self) -> dict[str, Any]:
        """The grid's bounds and the cells visited so far."""
        grid = self.grid
        return {
            "low": list(grid.low) if grid is not None else None,
            "high": list(grid.high) if grid is not None else None,
            "visited": torch.tensor(sorted(self.visited), dtype=torch.int64),
        }

    @override
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not state:
            return
        if state["low"] is not None:
            self.grid = CoverageGrid(tuple(state["low"]), tuple(state["high"]))
        self.visited = set(torch.as_tensor(state["visited"]).tolist())
