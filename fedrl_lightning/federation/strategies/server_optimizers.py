"""Server optimizers (Reddi et al., 2021): the server steps along the agents' mean change."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import torch

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.strategies.base import (
    AgentUpdate,
    StateDict,
    Strategy,
    flatten,
    mean_delta,
    unflatten,
)

__all__ = ["FedAdagrad", "FedAdam", "FedAvgM", "FedYogi", "ServerOptimizer"]


class ServerOptimizer(Strategy):
    """Treats the agents' episode-weighted mean change ``delta`` as a pseudo-gradient.

    Subclasses turn ``delta`` into the server's step; their moment buffers are the strategy's
    state and ride in every round checkpoint.

    Args:
        server_lr: The server's step size.
    """

    def __init__(self, server_lr: float) -> None:
        if server_lr <= 0:
            raise ConfigError(f"trainer.strategy.server_lr must be positive, got {server_lr}")
        self.server_lr = server_lr
        self.buffers: dict[str, torch.Tensor] = {}

    def aggregate(self, global_state: StateDict, updates: Sequence[AgentUpdate]) -> StateDict:
        """Move the global weights by the step computed from the mean change."""
        step = self._step(mean_delta(global_state, updates))
        return unflatten(flatten(global_state) + step, global_state)

    @abstractmethod
    def _step(self, delta: torch.Tensor) -> torch.Tensor:
        """The server's step for the flattened float64 pseudo-gradient ``delta``."""

    def _buffer(self, name: str, like: torch.Tensor) -> torch.Tensor:
        return self.buffers.get(name, torch.zeros_like(like))

    def state_dict(self) -> dict[str, Any]:
        """The moment buffers."""
        return {"buffers": {name: value.clone() for name, value in self.buffers.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the moment buffers."""
        self.buffers = {name: value.clone() for name, value in state["buffers"].items()}


def _check_beta(name: str, value: float) -> None:
    if not 0 <= value < 1:
        raise ConfigError(f"trainer.strategy.{name} must be in [0, 1), got {value}")


class FedAvgM(ServerOptimizer):
    """Server momentum (Hsu et al., 2019): ``v = momentum * v + delta``, ``w += server_lr * v``.

    With ``server_lr`` 1 and ``momentum`` 0 this is FedAvg. A ``server_lr`` equal to the number
    of agents per round adds every agent's change in full, so one agent that still learns is not
    diluted by agents that no longer move.

    Args:
        server_lr: The server's step size.
        momentum: The server's momentum, in [0, 1).
    """

    def __init__(self, server_lr: float = 1.0, momentum: float = 0.0) -> None:
        super().__init__(server_lr)
        _check_beta("momentum", momentum)
        self.momentum = momentum

    def _step(self, delta: torch.Tensor) -> torch.Tensor:
        velocity = self.momentum * self._buffer("velocity", delta) + delta
        self.buffers["velocity"] = velocity
        return self.server_lr * velocity


class _AdaptiveServer(ServerOptimizer):
    """``m = b1 m + (1 - b1) delta``; ``w += server_lr * m / (sqrt(v) + tau)``; ``v`` varies."""

    def __init__(
        self, server_lr: float = 0.01, beta1: float = 0.9, beta2: float = 0.99, tau: float = 1e-3
    ) -> None:
        super().__init__(server_lr)
        _check_beta("beta1", beta1)
        _check_beta("beta2", beta2)
        if tau <= 0:
            raise ConfigError(f"trainer.strategy.tau must be positive, got {tau}")
        self.beta1, self.beta2, self.tau = beta1, beta2, tau

    def _step(self, delta: torch.Tensor) -> torch.Tensor:
        m = self.beta1 * self._buffer("m", delta) + (1 - self.beta1) * delta
        v = self._second_moment(self._buffer("v", delta), delta.square())
        self.buffers["m"], self.buffers["v"] = m, v
        return self.server_lr * m / (v.sqrt() + self.tau)

    @abstractmethod
    def _second_moment(self, v: torch.Tensor, squared: torch.Tensor) -> torch.Tensor:
        """The new second-moment estimate from the old one and ``delta ** 2``."""


class FedAdagrad(_AdaptiveServer):
    """Server Adagrad: ``v = v + delta ** 2``.

    Args:
        server_lr: The server's step size.
        beta1: First-moment decay; 0 uses each round's change alone.
        tau: Adaptivity: added to ``sqrt(v)``.
    """

    def __init__(self, server_lr: float = 0.01, beta1: float = 0.0, tau: float = 1e-3) -> None:
        super().__init__(server_lr, beta1, 0.0, tau)

    def _second_moment(self, v: torch.Tensor, squared: torch.Tensor) -> torch.Tensor:
        return v + squared


class FedAdam(_AdaptiveServer):
    """Server Adam: ``v = beta2 * v + (1 - beta2) * delta ** 2``.

    Args:
        server_lr: The server's step size.
        beta1: First-moment decay.
        beta2: Second-moment decay.
        tau: Adaptivity: added to ``sqrt(v)``.
    """

    def _second_moment(self, v: torch.Tensor, squared: torch.Tensor) -> torch.Tensor:
        return self.beta2 * v + (1 - self.beta2) * squared


class FedYogi(_AdaptiveServer):
    """Server Yogi: ``v = v - (1 - beta2) * delta ** 2 * sign(v - delta ** 2)``.

    Args:
        server_lr: The server's step size.
        beta1: First-moment decay.
        beta2: Second-moment decay.
        tau: Adaptivity: added to ``sqrt(v)``.
    """

    def _second_moment(self, v: torch.Tensor, squared: torch.Tensor) -> torch.Tensor:
        return v - (1 - self.beta2) * squared * torch.sign(v - squared)
