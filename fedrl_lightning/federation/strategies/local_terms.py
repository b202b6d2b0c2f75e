"""The strategy's part of an agent's local fit: FedProx's proximal term, Per-FedAvg's step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from typing_extensions import override

from fedrl_lightning.federation.components.base import FitPart
from fedrl_lightning.learners.meta_step import MetaStep

if TYPE_CHECKING:
    from fedrl_lightning.federation.local_fit import AgentFit

__all__ = ["STRATEGY_KEY", "LocalTerms"]

STRATEGY_KEY = "strategy"
"""The key of :class:`LocalTerms` in ``LocalFit.extras``."""


@dataclass(frozen=True)
class LocalTerms(FitPart):
    """How a strategy changes the agents' local updates, once the learner holds its start.

    Attributes:
        proximal_mu: Weight of FedProx's proximal term ``mu / 2 * ||w - w_start||^2`` (0: none).
        meta_step: Per-FedAvg's inner step before each outer update; ``None``: plain updates.
    """

    proximal_mu: float = 0.0
    meta_step: MetaStep | None = None

    @override
    def prepare(self, fit: AgentFit) -> None:
        if self.proximal_mu:
            fit.module.set_proximal_term(fit.start, self.proximal_mu)
        fit.module.set_meta_step(self.meta_step)
