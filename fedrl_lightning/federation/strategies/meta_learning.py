"""Meta-learning strategies: a global policy that adapts well to an agent in a few episodes."""

from __future__ import annotations

import math
from typing import Literal

import torch

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.strategies.averaging import FedAvg
from fedrl_lightning.federation.strategies.server_optimizers import (
    ServerOptimizer,
    check_positive,
)
from fedrl_lightning.learners.meta_step import MetaStep

__all__ = ["PerFedAvg", "Reptile"]


class Reptile(ServerOptimizer):
    """Reptile (Nichol et al., 2018): the server steps toward the agents' adapted weights.

    Each sampled agent's local fit is Reptile's inner loop: starting from the global weights
    ``w``, it adapts them to its own environment, giving ``w_k``. The server then moves ``w`` a
    fraction ``meta_lr`` of the way toward the adapted weights' episode-weighted mean::

        w <- w + meta_lr * (mean_k(w_k) - w)

    This is the batched Reptile of the paper, with the agents as its tasks. ``meta_lr`` 1 is
    FedAvg, and the step is :class:`FedAvgM`'s without momentum (``server_lr = meta_lr``): Reptile
    reads FedAvg's pseudo-gradient as a meta-gradient. Its aim is a starting point from which
    a few episodes of an agent's own adapt well; ``--trainer.finetune_episodes`` measures that.

    Args:
        meta_lr: The outer (meta) step size, Reptile's epsilon: positive and finite; above 1
            the server extrapolates past the agents' mean.
    """

    def __init__(self, meta_lr: float = 0.5) -> None:
        check_positive("trainer.strategy.meta_lr", meta_lr)
        super().__init__(server_lr=meta_lr)
        self.meta_lr = meta_lr

    def _step(self, delta: torch.Tensor) -> torch.Tensor:
        return self.meta_lr * delta


class PerFedAvg(FedAvg):
    """Per-FedAvg (Fallah, Mokhtari and Ozdaglar, 2020): FedAvg of agents that meta-learn locally.

    Each agent's local updates go in pairs. A step of size ``inner_lr`` (alpha) on one batch
    gives adapted weights ``w' = w - alpha * grad L(w; D)``; the next batch is rolled out with
    ``w'``, and the gradient of its loss at ``w'`` makes the outer step on ``w``, taken by the
    learner's own optimizer at its learning rate (beta). ``first_order`` applies that gradient
    to ``w`` as it is (Per-FedAvg FO); otherwise it goes through the inner step,
    ``(I - alpha * H) grad L(w'; D')`` with ``H`` the inner loss's Hessian at ``w`` (the
    exact MAML meta-gradient, by a Hessian-vector product). Every learner's update does
    this, whatever its loss: PPO's minibatch steps pair up within a batch. The server
    averages the agents' (original, not adapted) weights as FedAvg does. What an agent
    gains from a few steps of its own is what ``--trainer.finetune_episodes`` measures.

    Args:
        inner_lr: The inner (adaptation) step size, alpha; positive and finite.
        first_order: Use the first-order approximation (no Hessian-vector product).
        weight_by: ``"episodes"`` or ``"steps"``, the experience each agent is weighted by.
    """

    def __init__(
        self,
        inner_lr: float = 0.01,
        first_order: bool = True,
        weight_by: Literal["episodes", "steps"] = "episodes",
    ) -> None:
        super().__init__(weight_by)
        if not (inner_lr > 0 and math.isfinite(inner_lr)):
            raise ConfigError(
                f"trainer.strategy.inner_lr must be positive and finite, got {inner_lr}"
            )
        self.inner_lr, self.first_order = inner_lr, first_order
        self.meta_step = MetaStep(inner_lr, first_order)
