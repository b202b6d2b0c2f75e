"""The strategy API: the base class every strategy implements, over what agents send back."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from fedrl_lightning.federation.messages import AgentUpdate, StateDict
from fedrl_lightning.federation.strategies.local_terms import LocalTerms
from fedrl_lightning.learners.meta_step import MetaStep

__all__ = [
    "AgentUpdate",
    "StateDict",
    "Strategy",
    "flatten",
    "all_strategies",
    "detached",
    "mean_delta",
    "unflatten",
    "weighted_average",
]


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

    Attributes:
        proximal_mu: Weight of the proximal term ``mu / 2 * ||w - w_global||^2`` that agents add
            to their local loss; 0 for none (only FedProx sets it).
        meta_step: The inner adaptation step agents take before each outer update of their
            local fit (Per-FedAvg's); ``None`` for plain updates (only PerFedAvg sets it).
    """

    proximal_mu: float = 0.0
    meta_step: MetaStep | None = None

    @abstractmethod
    def aggregate(self, global_state: StateDict, updates: Sequence[AgentUpdate]) -> StateDict:
        """Return the new global weights.

        Args:
            global_state: The weights every agent started the round from.
            updates: One update per agent that completed the round, in agent-id order.

        Returns:
            The new global state dict.
        """

    def fit_part(self) -> LocalTerms | None:
        """What the strategy changes in the agents' local fits; ``None``: nothing."""
        if not self.proximal_mu and self.meta_step is None:
            return None
        return LocalTerms(self.proximal_mu, self.meta_step)

    def check_agents_per_round(self, agents_per_round: int) -> None:  # noqa: B027
        """Refuse, with a :class:`ConfigError`, a round size this strategy cannot work with.

        Args:
            agents_per_round: The agents sampled per round (``trainer.agents_per_round``).
        """

    def state_dict(self) -> dict[str, Any]:
        """The strategy's state, saved in every round checkpoint."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 (stateless default)
        """Restore the state saved by :meth:`state_dict`."""


def detached(state: Mapping[str, torch.Tensor]) -> StateDict:
    """A copy of ``state`` on the CPU, sharing no memory and no autograd graph with it."""
    return {key: value.detach().cpu().clone() for key, value in state.items()}


def flatten(state: StateDict) -> torch.Tensor:
    """All of a state dict's values as one float64 vector, in key order."""
    return torch.cat([state[key].reshape(-1).to(torch.float64) for key in sorted(state)])


def unflatten(vector: torch.Tensor, like: StateDict) -> StateDict:
    """The inverse of :func:`flatten`, with ``like``'s shapes and dtypes."""
    state, offset = {}, 0
    for key in sorted(like):
        size = like[key].numel()
        state[key] = vector[offset : offset + size].reshape(like[key].shape).to(like[key].dtype)
        offset += size
    return {key: state[key] for key in like}


def mean_delta(global_state: StateDict, updates: Sequence[AgentUpdate]) -> torch.Tensor:
    """FedAvg's episode-weighted average minus the global weights, flattened in float64."""
    averaged = weighted_average(
        [u.state_dict for u in updates], [float(u.num_episodes) for u in updates]
    )
    return flatten(averaged) - flatten(global_state)


def all_strategies() -> list[type[Strategy]]:
    """Every concrete strategy this package defines, by name."""
    found, stack = {}, [Strategy]
    while stack:
        for sub in stack.pop().__subclasses__():
            stack.append(sub)
            if sub.__module__.startswith(__package__) and not sub.__abstractmethods__:
                found[sub.__name__] = sub
    return [found[name] for name in sorted(found)]
