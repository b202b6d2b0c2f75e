"""Byzantine-robust aggregation: coordinate-wise median and trimmed mean, Krum and Multi-Krum."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.strategies.base import (
    AgentUpdate,
    StateDict,
    Strategy,
    flatten,
    unflatten,
)

__all__ = ["FedMedian", "FedTrimmedAvg", "Krum", "MultiKrum"]


def _stacked(updates: Sequence[AgentUpdate]) -> torch.Tensor:
    """``[agents, parameters]`` float64, in agent-id order so ties break the same way always."""
    ordered = sorted(updates, key=lambda u: u.agent_id)
    return torch.stack([flatten(u.state_dict) for u in ordered])


class FedMedian(Strategy):
    """The coordinate-wise median of the agents' weights (Yin et al., 2018).

    With an even number of agents, each coordinate is the mean of its two middle values.
    """

    def aggregate(self, global_state: StateDict, updates: Sequence[AgentUpdate]) -> StateDict:
        """Coordinate-wise median."""
        ordered = _stacked(updates).sort(dim=0).values
        n = ordered.shape[0]
        median = (ordered[(n - 1) // 2] + ordered[n // 2]) / 2
        return unflatten(median, global_state)


class FedTrimmedAvg(Strategy):
    """The coordinate-wise mean after dropping the ``beta`` fraction of largest and smallest.

    Args:
        beta: Fraction trimmed from each end, in [0, 0.5); ``floor(beta * n)`` values each.
    """

    def __init__(self, beta: float = 0.2) -> None:
        if not 0 <= beta < 0.5:
            raise ConfigError(f"trainer.strategy.beta must be in [0, 0.5), got {beta}")
        self.beta = beta

    def aggregate(self, global_state: StateDict, updates: Sequence[AgentUpdate]) -> StateDict:
        """Coordinate-wise trimmed mean."""
        ordered = _stacked(updates).sort(dim=0).values
        cut = int(self.beta * ordered.shape[0])
        kept = ordered[cut : ordered.shape[0] - cut]
        return unflatten(kept.mean(dim=0), global_state)


def krum_scores(stacked: torch.Tensor, num_byzantine: int) -> torch.Tensor:
    """Each update's Krum score: the summed squared distance to its ``n - f - 2`` nearest others."""
    n = stacked.shape[0]
    distances = torch.cdist(stacked, stacked).square()
    neighbours = max(1, min(n - 1, n - num_byzantine - 2))
    nearest = distances.sort(dim=1).values[:, 1 : neighbours + 1]  # column 0 is the self-distance
    return nearest.sum(dim=1)


class Krum(Strategy):
    """Keep the single update closest to its neighbours (Blanchard et al., 2017).

    Args:
        num_byzantine: How many faulty agents per round to tolerate (``f``).
    """

    def __init__(self, num_byzantine: int = 1) -> None:
        if num_byzantine < 0:
            raise ConfigError(
                f"trainer.strategy.num_byzantine must not be negative, got {num_byzantine}"
            )
        self.num_byzantine = num_byzantine

    def check_agents_per_round(self, agents_per_round: int) -> None:
        """Krum's guarantee needs ``n > 2 f + 2`` updates a round."""
        needed = 2 * self.num_byzantine + 2
        if agents_per_round <= needed:
            raise ConfigError(
                f"trainer.strategy.num_byzantine ({self.num_byzantine}): {type(self).__name__} "
                f"needs more than 2 * num_byzantine + 2 = {needed} agents per round, and "
                f"trainer.agents_per_round is {agents_per_round}"
            )

    def aggregate(self, global_state: StateDict, updates: Sequence[AgentUpdate]) -> StateDict:
        """The weights of the update with the lowest Krum score."""
        stacked = _stacked(updates)
        chosen = int(krum_scores(stacked, self.num_byzantine).argmin())
        return unflatten(stacked[chosen], global_state)


class MultiKrum(Krum):
    """Average the ``num_selected`` updates with the lowest Krum scores.

    Args:
        num_byzantine: How many faulty agents per round to tolerate (``f``).
        num_selected: How many updates to average; ``None`` keeps ``n - f``.
    """

    def __init__(self, num_byzantine: int = 1, num_selected: int | None = None) -> None:
        super().__init__(num_byzantine)
        if num_selected is not None and num_selected <= 0:
            raise ConfigError(f"trainer.strategy.num_selected must be positive, got {num_selected}")
        self.num_selected = num_selected

    def check_agents_per_round(self, agents_per_round: int) -> None:
        """Krum's bound, and no more updates selected than a round has."""
        super().check_agents_per_round(agents_per_round)
        if self.num_selected is not None and self.num_selected > agents_per_round:
            raise ConfigError(
                f"trainer.strategy.num_selected ({self.num_selected}) must not exceed "
                f"trainer.agents_per_round ({agents_per_round})"
            )

    def aggregate(self, global_state: StateDict, updates: Sequence[AgentUpdate]) -> StateDict:
        """The mean of the best-scored updates."""
        stacked = _stacked(updates)
        n = stacked.shape[0]
        keep = self.num_selected if self.num_selected is not None else n - self.num_byzantine
        keep = max(1, min(n, keep))
        scores = krum_scores(stacked, self.num_byzantine)
        chosen = sorted(range(n), key=lambda i: (float(scores[i]), i))[:keep]
        return unflatten(stacked[chosen].mean(dim=0), global_state)
