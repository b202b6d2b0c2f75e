"""Gradient sharing: agents send their loss gradient at the global weights, not new weights."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from typing_extensions import override

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.components.base import FitPart
from fedrl_lightning.federation.messages import AgentUpdate
from fedrl_lightning.federation.server.aggregation import aggregate_round
from fedrl_lightning.federation.server.scopes import SharingScopes
from fedrl_lightning.federation.server.shared import SharedModel
from fedrl_lightning.federation.strategies import Strategy
from fedrl_lightning.federation.strategies.base import flatten
from fedrl_lightning.federation.strategies.server_optimizers import (
    GradientOptimizer,
    ServerOptimizer,
)
from fedrl_lightning.federation.updates import SENDS_KEY
from fedrl_lightning.policy.normalization import STATISTICS_BUFFERS

if TYPE_CHECKING:
    from fedrl_lightning.federation.local_fit import AgentFit
    from fedrl_lightning.learners import Learner
    from fedrl_lightning.population.agents import AgentPopulation

__all__ = ["GradientModel", "SendGradient", "check_gradient_strategy"]


def check_gradient_strategy(strategy: Strategy) -> None:
    """Refuse a strategy that gradient sharing cannot honour.

    Raises:
        ConfigError: For a strategy that steps the weights with a server optimizer of its own,
            or changes the agents' local steps (they take none).
    """
    name = type(strategy).__name__
    if isinstance(strategy, ServerOptimizer):
        raise ConfigError(
            f"trainer.strategy {name} steps the weights with a server optimizer of its own; "
            "with trainer.server Gradient, the server's optimizer applies the aggregated "
            "gradient: choose an aggregating strategy (FedAvg, FedMedian, Krum, ...)"
        )
    if strategy.proximal_mu or strategy.meta_step is not None:
        raise ConfigError(
            f"trainer.strategy {name} changes the agents' local steps, and with "
            "trainer.server Gradient agents take none: choose an aggregating strategy "
            "(FedAvg, FedMedian, Krum, ...)"
        )


@dataclass(frozen=True)
class SendGradient(FitPart):
    """Gradient sharing's part of an agent's fit: it sends its loss gradient, not weights.

    The agent sends the mean gradient of its learner's loss at the start weights over its
    episodes, with no local step (see
    :meth:`~fedrl_lightning.learners.Learner.capture_gradients`); a gradient is a change from
    zero, which Byzantine attacks scale or replace.
    """

    sends: ClassVar[str | None] = "gradient"

    @override
    def prepare(self, fit: AgentFit) -> None:
        fit.module.capture_gradients()

    @override
    def send(self, fit: AgentFit) -> None:
        fit.update = fit.module.captured_gradient()
        fit.origin = {name: torch.zeros_like(value) for name, value in fit.update.items()}

    @override
    def report(self, fit: AgentFit) -> dict[str, Any]:
        return {SENDS_KEY: self.sends}


class GradientModel(SharedModel):
    """The server's model in gradient sharing (as FedPG-BR and DecByzPG share).

    Each sampled agent rolls out its episodes with the global weights, computes its learner's
    loss gradient at them (no local step), and sends the mean over its updates, shaped as
    the ``state_dict`` (zeros where an entry is not a parameter). Updates therefore hold
    gradients: the strategy aggregates them as it would weights, with zeros as the global
    state, which is exact for every aggregating strategy (averages, medians, trimmed means
    and Krum's distances are all unchanged by the shift). :class:`GradientOptimizer`
    applies the aggregate to the global parameters; running statistics are pooled as
    always. The optimizer's state is part of :meth:`state_dict`, in every round checkpoint.

    Built with :meth:`for_gradients`.
    """

    optimizer: GradientOptimizer
    gradient_norm: float = float("nan")

    @classmethod
    def for_gradients(
        cls,
        model: Learner,
        population: AgentPopulation,
        strategy: Strategy,
        seed: int,
        server_optimizer: Mapping[str, Any],
    ) -> GradientModel:
        """The server's model for ``population``, starting from ``model``'s weights.

        Args:
            model: The global model.
            population: The agents.
            strategy: Aggregates the agents' gradients.
            seed: The run seed.
            server_optimizer: The optimizer, as ``server_optimizer_spec`` completes it.

        Raises:
            ConfigError: If the learner's hyperparameters do not fit gradient sharing.
        """
        model.check_gradient_mode()
        shared = cls.for_population(SharingScopes(None), model, population, strategy, seed)
        parameters = {name: shared.global_state[name] for name, _ in model.named_parameters()}
        shared.optimizer = GradientOptimizer(server_optimizer, parameters)
        return shared

    @override
    def fit_inputs(self, agent: int, round_idx: int) -> FitPart:
        """Agents send gradients."""
        return SendGradient()

    @override
    def aggregate(self, updates: Sequence[AgentUpdate], round_idx: int) -> None:
        """Aggregate the round's gradients and step the global parameters along the result."""
        strategy, statistics = self.strategy, self.statistics
        pooled = {f"{name}.{b}" for name in statistics for b in STATISTICS_BUFFERS}
        origin = {
            name: value if name in pooled else torch.zeros_like(value)
            for name, value in self.global_state.items()
        }
        combined = aggregate_round(strategy, origin, updates, statistics)
        gradient = {name: combined[name] for name in self.optimizer.parameters}
        stepped = self.optimizer.step(self.global_state, gradient)
        self.gradient_norm = float(flatten(gradient).norm())
        self.global_state = {
            name: stepped[name] if name in stepped else combined[name] if name in pooled else value
            for name, value in self.global_state.items()
        }

    @override
    def round_columns(self) -> dict[str, Any]:
        """The L2 norm of the round's aggregated gradient."""
        return {"gradient_norm": self.gradient_norm}

    @override
    def metric_names(self) -> list[str]:
        """The column :meth:`round_columns` adds."""
        return ["gradient_norm"]

    @override
    def state_dict(self) -> dict[str, Any]:
        """The shared model's state and the server optimizer's."""
        return super().state_dict() | {"server_optimizer": self.optimizer.state_dict()}

    @override
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output."""
        super().load_state_dict(state)
        self.optimizer.load_state_dict(state["server_optimizer"])
