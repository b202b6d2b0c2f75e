"""Server optimizers: the server steps the global weights along what the agents sent.

Every server optimizer here is a ``torch.optim.Optimizer`` over the global parameters,
stepped once a round by :class:`ServerStep` with a gradient, as Reddi et al. (2021) write
``ServerOpt(w, -delta)``:

- in gradient mode (``--trainer.server Gradient``), :class:`GradientOptimizer` steps
  along the strategy's aggregate of the agents' loss gradients with ``torch.optim``'s SGD or
  Adam (``--trainer.server.optimizer``);
- a :class:`ServerOptimizer` strategy (FedAvgM, FedAdagrad, FedAdam, FedYogi, and Reptile)
  steps along the pseudo-gradient ``-delta``, the agents' episode-weighted mean change
  negated, with its own moment update (:class:`MomentRule`).

Either way the moments ride in every round checkpoint: ``torch.optim``'s state in gradient
mode, the strategy's buffers otherwise.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeGuard

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

__all__ = [
    "OPTIMIZERS",
    "FedAdagrad",
    "FedAdam",
    "FedAvgM",
    "FedYogi",
    "GradientOptimizer",
    "MomentRule",
    "ServerOptimizer",
    "ServerStep",
    "server_optimizer_spec",
]

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}
"""The server optimizers by name, as ``torch.optim`` implements them."""

OPTION = "trainer.server"
"""The option :func:`server_optimizer_spec` checks."""
DEFAULTS: dict[str, dict[str, Any]] = {
    "sgd": {"lr": 0.01, "momentum": 0.0},
    "adam": {"lr": 0.001, "betas": [0.9, 0.999], "eps": 1e-8},
}


def server_optimizer_spec(spec: Mapping[str, Any] | None, option: str = OPTION) -> dict[str, Any]:
    """``spec`` checked and completed with its optimizer's defaults.

    Args:
        spec: ``{name: sgd, lr: ..., momentum: ...}`` or ``{name: adam, lr: ..., betas:
            [b1, b2], eps: ...}``; ``None``: Adam with ``lr`` 0.001.
        option: The option that gave ``spec``, for messages.

    Returns:
        The name and every argument, such as ``{"name": "sgd", "lr": 0.1, "momentum": 0.0}``.

    Raises:
        ConfigError: One line naming the bad key or value.
    """
    spec = dict(spec or {"name": "adam"})
    name = spec.pop("name", None)
    if name not in OPTIMIZERS:
        raise ConfigError(f"{option}.name must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
    unknown = sorted(set(spec) - set(DEFAULTS[name]))
    if unknown:
        raise ConfigError(
            f"{option}.{unknown[0]}: unknown key for {name}; expected name, "
            f"{', '.join(DEFAULTS[name])}"
        )
    options = {**DEFAULTS[name], **spec}
    check_positive(f"{option}.lr", options["lr"])
    if name == "sgd":
        check_decay(f"{option}.momentum", options["momentum"])
    if name == "adam":
        betas = options["betas"]
        if not (
            isinstance(betas, list | tuple)
            and len(betas) == 2
            and all(_number(b) and 0 <= b < 1 for b in betas)
        ):
            raise ConfigError(f"{option}.betas must be two numbers in [0, 1), got {betas!r}")
        check_positive(f"{option}.eps", options["eps"])
        options["betas"] = [float(b) for b in betas]
    return {"name": name, **{k: v if isinstance(v, list) else float(v) for k, v in options.items()}}


def _number(value: object) -> TypeGuard[float]:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def check_positive(option: str, value: object) -> None:
    """Refuse ``value`` for ``option`` unless it is a finite number above 0.

    Raises:
        ConfigError: One line naming ``option``.
    """
    if not (_number(value) and value > 0):
        raise ConfigError(f"{option} must be a positive number, got {value!r}")


def check_decay(option: str, value: object) -> None:
    """Refuse ``value`` for ``option`` unless it is a number in [0, 1): a moment's decay.

    Raises:
        ConfigError: One line naming ``option``.
    """
    if not (_number(value) and 0 <= value < 1):
        raise ConfigError(f"{option} must be in [0, 1), got {value!r}")


class ServerStep:
    """Steps named parameters along a gradient with a ``torch.optim`` optimizer.

    The optimizer holds a copy of the parameters; each :meth:`step` copies the current
    values in, sets the gradient, steps, and returns the new values. The optimizer's state
    (Adam's moments and step count, SGD's momentum) is :meth:`state_dict`, so a resumed run
    steps exactly as an uninterrupted one.

    Args:
        optimizer: Builds the optimizer over a list of parameters.
        parameters: The parameters it steps, by name.
    """

    def __init__(
        self,
        optimizer: Callable[[list[torch.Tensor]], torch.optim.Optimizer],
        parameters: StateDict,
    ) -> None:
        self.parameters = {
            name: value.detach().clone().requires_grad_(True) for name, value in parameters.items()
        }
        self.optimizer = optimizer(list(self.parameters.values()))

    def step(self, weights: StateDict, gradient: StateDict) -> StateDict:
        """The parameters of ``weights`` after one optimizer step along ``gradient``.

        Args:
            weights: The current values; only the optimizer's parameters are read.
            gradient: The gradient of each of those parameters.

        Returns:
            The stepped parameters, by name.
        """
        with torch.no_grad():
            for name, parameter in self.parameters.items():
                parameter.copy_(weights[name])
                parameter.grad = gradient[name].to(parameter.dtype).clone()
        self.optimizer.step()
        return {name: parameter.detach().clone() for name, parameter in self.parameters.items()}

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state, as ``torch.optim`` saves it."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output."""
        self.optimizer.load_state_dict(state)


class GradientOptimizer(ServerStep):
    """Gradient mode's server optimizer: ``torch.optim``'s SGD or Adam on the global weights.

    Args:
        spec: The optimizer, as :func:`server_optimizer_spec` returns it.
        parameters: The global parameters it steps, by name (not buffers).
    """

    def __init__(self, spec: Mapping[str, Any], parameters: StateDict) -> None:
        options = {key: value for key, value in spec.items() if key != "name"}
        if "betas" in options:
            options["betas"] = tuple(options["betas"])
        self.spec = dict(spec)
        optimizer = OPTIMIZERS[spec["name"]]
        super().__init__(lambda params: optimizer(params, **options), parameters)


class MomentRule(torch.optim.Optimizer):
    """A :class:`ServerOptimizer`'s moment update as a ``torch.optim`` optimizer.

    Each parameter's gradient is the pseudo-gradient ``-delta``; the parameter moves by
    ``change(delta)``, which updates the strategy's moment buffers (the strategy's state, so
    this optimizer keeps none of its own).

    Args:
        params: The parameters (the flattened global weights).
        change: The strategy's step for a change ``delta``.
    """

    def __init__(
        self, params: list[torch.Tensor], change: Callable[[torch.Tensor], torch.Tensor]
    ) -> None:
        super().__init__(params, {})
        self.change = change

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        """Move every parameter by ``change(-grad)``."""
        for group in self.param_groups:
            for parameter in group["params"]:
                parameter.add_(self.change(-parameter.grad))


class ServerOptimizer(Strategy):
    """Treats the agents' episode-weighted mean change ``delta`` as a pseudo-gradient.

    The server steps the flattened float64 global weights along ``-delta`` with a
    :class:`ServerStep` whose optimizer is the subclass's moment update (:meth:`_step`). The
    moment buffers are the strategy's state and ride in every round checkpoint.

    Args:
        server_lr: The server's step size.
    """

    def __init__(self, server_lr: float) -> None:
        check_positive("trainer.strategy.server_lr", server_lr)
        self.server_lr = server_lr
        self.buffers: dict[str, torch.Tensor] = {}

    def aggregate(self, global_state: StateDict, updates: Sequence[AgentUpdate]) -> StateDict:
        """Move the global weights by the step computed from the mean change."""
        weights = {"weights": flatten(global_state)}
        server = ServerStep(lambda params: MomentRule(params, self._step), weights)
        stepped = server.step(weights, {"weights": -mean_delta(global_state, updates)})
        return unflatten(stepped["weights"], global_state)

    @abstractmethod
    def _step(self, delta: torch.Tensor) -> torch.Tensor:
        """The server's step for the flattened float64 mean change ``delta``."""

    def _buffer(self, name: str, like: torch.Tensor) -> torch.Tensor:
        return self.buffers.get(name, torch.zeros_like(like))

    def state_dict(self) -> dict[str, Any]:
        """The moment buffers."""
        return {"buffers": {name: value.clone() for name, value in self.buffers.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the moment buffers."""
        self.buffers = {name: value.clone() for name, value in state["buffers"].items()}


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
        check_decay("trainer.strategy.momentum", momentum)
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
        check_decay("trainer.strategy.beta1", beta1)
        check_decay("trainer.strategy.beta2", beta2)
        check_positive("trainer.strategy.tau", tau)
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
