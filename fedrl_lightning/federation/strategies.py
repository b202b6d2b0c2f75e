"""Aggregation strategies: pure arithmetic that turns agents' updates into new global weights."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from fedrl_lightning.errors import ConfigError

__all__ = ["AgentUpdate", "FedAvg", "FedAvgM", "RewardWeighted", "Strategy", "weighted_average"]

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class AgentUpdate:
    """What one agent sends back after its local fit.

    Attributes:
        agent_id: The agent.
        state_dict: The agent's policy weights after local training.
        num_episodes: Episodes it trained on.
        num_steps: Environment steps it trained on.
        mean_return: Its mean undiscounted episode return during local training.
    """

    agent_id: int
    state_dict: StateDict
    num_episodes: int
    num_steps: int
    mean_return: float


def weighted_average(states: Sequence[StateDict], weights: Sequence[float]) -> StateDict:
    """Average state dicts tensor by tensor with weights normalised to sum to one.

    Accumulates in float64 and casts back to each tensor's dtype.
    """
    total = float(sum(weights))
    coefficients = torch.tensor([w / total for w in weights], dtype=torch.float64)
    averaged = {}
    for key, reference in states[0].items():
        stacked = torch.stack([s[key].to(torch.float64) for s in states])
        combined = torch.tensordot(coefficients, stacked, dims=1)
        averaged[key] = combined.to(reference.dtype)
    return averaged


class Strategy(ABC):
    """Combines the updates of one round's agents into the next global weights.

    Strategies do no I/O and know nothing of Trainers. Stateful strategies override
    :meth:`state_dict` and :meth:`load_state_dict`.
    """

    @abstractmethod
    def aggregate(self, global_state: StateDict, updates: Sequence[AgentUpdate]) -> StateDict:
        """Return the new global weights.

        Args:
            global_state: The weights every agent started the round from.
            updates: One update per agent that completed the round, in agent-id order.

        Returns:
            The new global state dict.
        """

    def state_dict(self) -> dict[str, Any]:
        """The strategy's state, saved in every round checkpoint."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 (stateless default)
        """Restore the state saved by :meth:`state_dict`."""


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


class FedAvgM(FedAvg):
    """FedAvg with a server learning rate and server momentum (Hsu et al., 2019).

    The round's pseudo-gradient is the experience-weighted mean of the agents' changes,
    ``delta = sum_k p_k (w_k - w)``. The server keeps ``v = momentum * v + delta`` and moves
    ``w <- w + server_lr * v``. With ``server_lr`` 1 and ``momentum`` 0 this is FedAvg. A
    ``server_lr`` equal to the number of agents per round adds every agent's change in full,
    so one agent that is still learning is not diluted by agents that no longer move.

    Args:
        weight_by: ``"episodes"`` or ``"steps"``, the experience each agent is weighted by.
        server_lr: The server's step size on the pseudo-gradient.
        momentum: The server's momentum, in [0, 1).
    """

    def __init__(
        self,
        weight_by: Literal["episodes", "steps"] = "episodes",
        server_lr: float = 1.0,
        momentum: float = 0.0,
    ) -> None:
        super().__init__(weight_by)
        if server_lr <= 0:
            raise ConfigError(f"trainer.strategy.server_lr must be positive, got {server_lr}")
        if not 0 <= momentum < 1:
            raise ConfigError(f"trainer.strategy.momentum must be in [0, 1), got {momentum}")
        self.server_lr = server_lr
        self.momentum = momentum
        self.velocity: StateDict = {}

    def aggregate(self, global_state: StateDict, updates: Sequence[AgentUpdate]) -> StateDict:
        """Step the global weights along the (momentum-averaged) mean change."""
        averaged = super().aggregate(global_state, updates)
        new_state = {}
        for key, current in global_state.items():
            delta = averaged[key].to(torch.float64) - current.to(torch.float64)
            velocity = self.velocity.get(key)
            velocity = delta if velocity is None else self.momentum * velocity + delta
            self.velocity[key] = velocity
            new_state[key] = (current.to(torch.float64) + self.server_lr * velocity).to(
                current.dtype
            )
        return new_state

    def state_dict(self) -> dict[str, Any]:
        """The server momentum buffer."""
        return {"velocity": {key: value.clone() for key, value in self.velocity.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the server momentum buffer."""
        self.velocity = {key: value.clone() for key, value in state["velocity"].items()}
