"""Averaging strategies: the tutorial's reward weighting, FedAvg, and FedProx."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.strategies.base import (
    AgentUpdate,
    StateDict,
    Strategy,
    weighted_average,
)

__all__ = ["FedAvg", "FedProx", "RewardWeighted"]


class RewardWeighted(Strategy):
    """Average agents' weights in proportion to their training return, floored at ``min_weight``.

    The tutorial's aggregation: agent ``k`` gets weight ``max(min_weight, mean_return_k)``.

    Args:
        min_weight: Floor on each agent's weight, so that no agent is ignored entirely.
    """

    def __init__(self, min_weight: float = 0.1) -> None:
        if min_weight <= 0:
            raise ConfigError(f"trainer.strategy.min_weight must be positive, got {min_weight}")
        self.min_weight = min_weight

    def aggregate(self, global_state: StateDict, updates: Sequence[AgentUpdate]) -> StateDict:
        """Reward-weighted average of the agents' weights."""
        weights = [max(self.min_weight, u.mean_return) for u in updates]
        return weighted_average([u.state_dict for u in updates], weights)


class FedAvg(Strategy):
    """Federated averaging: agents' weights averaged in proportion to their experience.

    Args:
        weight_by: ``"episodes"`` or ``"steps"``, the experience each agent is weighted by.
    """

    def __init__(self, weight_by: Literal["episodes", "steps"] = "episodes") -> None:
        if weight_by not in ("episodes", "steps"):
            raise ConfigError(
                f"trainer.strategy.weight_by must be 'episodes' or 'steps', got {weight_by!r}"
            )
        self.weight_by = weight_by

    def aggregate(self, global_state: StateDict, updates: Sequence[AgentUpdate]) -> StateDict:
        """Experience-weighted average of the agents' weights."""
        if self.weight_by == "episodes":
            weights = [u.num_episodes for u in updates]
        else:
            weights = [u.num_steps for u in updates]
        return weighted_average([u.state_dict for u in updates], weights)


class FedProx(FedAvg):
    """FedAvg whose agents add ``mu / 2 * ||w - w_global||^2`` to their local loss (Li et al.).

    The proximal term keeps each agent's weights near the global weights it started from, which
    limits how far heterogeneous agents drift apart during local training.

    Args:
        mu: Weight of the proximal term.
        weight_by: ``"episodes"`` or ``"steps"``, the experience each agent is weighted by.
    """

    def __init__(
        self, mu: float = 0.01, weight_by: Literal["episodes", "steps"] = "episodes"
    ) -> None:
        super().__init__(weight_by)
        if mu < 0:
            raise ConfigError(f"trainer.strategy.mu must not be negative, got {mu}")
        self.proximal_mu = mu
