"""Meta-learning strategies: a global policy that adapts well to an agent in a few episodes."""

from __future__ import annotations

import math

import torch

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.strategies.server_optimizers import ServerOptimizer

__all__ = ["Reptile"]


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
        if not (meta_lr > 0 and math.isfinite(meta_lr)):
            raise ConfigError(
                f"trainer.strategy.meta_lr must be positive and finite, got {meta_lr}"
            )
        super().__init__(server_lr=meta_lr)
        self.meta_lr = meta_lr

    def _step(self, delta: torch.Tensor) -> torch.Tensor:
        return self.meta_lr * delta
