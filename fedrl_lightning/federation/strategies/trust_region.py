"""Trust-region aggregation: every agent's change is bounded before averaging."""

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

__all__ = ["TrustRegion"]


class TrustRegion(Strategy):
    """Clip each agent's change to an L2 norm of ``max_norm``, then average by episodes.

    The bound is on the parameters rather than a KL bound on the action distribution: it keeps
    aggregation pure tensor arithmetic that needs no policy forward pass or probe states, and it
    caps how far any single agent, faulty or not, can move the global policy in a round.

    Args:
        max_norm: Largest L2 norm of one agent's change, over all parameters.
    """

    def __init__(self, max_norm: float = 1.0) -> None:
        if max_norm <= 0:
            raise ConfigError(f"trainer.strategy.max_norm must be positive, got {max_norm}")
        self.max_norm = max_norm

    def aggregate(self, global_state: StateDict, updates: Sequence[AgentUpdate]) -> StateDict:
        """Global weights plus the episode-weighted mean of the clipped changes."""
        start = flatten(global_state)
        deltas = torch.stack([flatten(u.state_dict) - start for u in updates])
        scale = (self.max_norm / deltas.norm(dim=1).clamp(min=1e-12)).clamp(max=1.0)
        weights = torch.tensor([float(u.num_episodes) for u in updates], dtype=torch.float64)
        mean = (weights / weights.sum()) @ (deltas * scale.unsqueeze(1))
        return unflatten(start + mean, global_state)
