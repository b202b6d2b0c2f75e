"""The server's optimizer in gradient sharing: SGD or Adam on the global weights."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.strategies.base import StateDict

__all__ = ["OPTIMIZERS", "GradientOptimizer", "server_optimizer_spec"]

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}
"""The server optimizers by name, as ``torch.optim`` implements them."""

OPTION = "trainer.server_optimizer"
DEFAULTS: dict[str, dict[str, Any]] = {
    "sgd": {"lr": 0.01, "momentum": 0.0},
    "adam": {"lr": 0.001, "betas": [0.9, 0.999], "eps": 1e-8},
}


def server_optimizer_spec(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """``spec`` checked and completed with its optimizer's defaults.

    Args:
        spec: ``{name: sgd, lr: ..., momentum: ...}`` or ``{name: adam, lr: ..., betas:
            [b1, b2], eps: ...}``; ``None``: Adam with ``lr`` 0.001.

    Returns:
        The name and every argument, such as ``{"name": "sgd", "lr": 0.1, "momentum": 0.0}``.

    Raises:
        ConfigError: One line naming the bad key or value.
    """
    spec = dict(spec or {"name": "adam"})
    name = spec.pop("name", None)
    if name not in OPTIMIZERS:
        raise ConfigError(f"{OPTION}.name must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
    unknown = sorted(set(spec) - set(DEFAULTS[name]))
    if unknown:
        raise ConfigError(
            f"{OPTION}.{unknown[0]}: unknown key for {name}; expected name, "
            f"{', '.join(DEFAULTS[name])}"
        )
    options = {**DEFAULTS[name], **spec}
    if not (_number(options["lr"]) and options["lr"] > 0):
        raise ConfigError(f"{OPTION}.lr must be a positive number, got {options['lr']!r}")
    if name == "sgd" and not (_number(options["momentum"]) and 0 <= options["momentum"] < 1):
        raise ConfigError(f"{OPTION}.momentum must be in [0, 1), got {options['momentum']!r}")
    if name == "adam":
        betas = options["betas"]
        if not (
            isinstance(betas, list | tuple)
            and len(betas) == 2
            and all(_number(b) and 0 <= b < 1 for b in betas)
        ):
            raise ConfigError(f"{OPTION}.betas must be two numbers in [0, 1), got {betas!r}")
        if not (_number(options["eps"]) and options["eps"] > 0):
            raise ConfigError(f"{OPTION}.eps must be a positive number, got {options['eps']!r}")
        options["betas"] = [float(b) for b in betas]
    return {"name": name, **{k: v if isinstance(v, list) else float(v) for k, v in options.items()}}


def _number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


class GradientOptimizer:
    """Applies an aggregated gradient to the global weights with a ``torch.optim`` optimizer.

    The optimizer holds a copy of the global parameters; each :meth:`step` copies the
    current global values in, sets the gradient, steps, and returns the new values. Its
    state (Adam's moments and step count, SGD's momentum) is :meth:`state_dict`, which rides
    in the round checkpoint, so a resumed run steps exactly as an uninterrupted one.

    Args:
        spec: The optimizer, as :func:`server_optimizer_spec` returns it.
        parameters: The global parameters it steps, by name (not buffers).
    """

    def __init__(self, spec: Mapping[str, Any], parameters: StateDict) -> None:
        options = {key: value for key, value in spec.items() if key != "name"}
        if "betas" in options:
            options["betas"] = tuple(options["betas"])
        self.spec = dict(spec)
        self.parameters = {
            name: value.detach().clone().requires_grad_(True) for name, value in parameters.items()
        }
        self.optimizer = OPTIMIZERS[spec["name"]](list(self.parameters.values()), **options)

    def step(self, weights: StateDict, gradient: StateDict) -> StateDict:
        """The parameters of ``weights`` after one optimizer step along ``gradient``.

        Args:
            weights: The global weights; only the optimizer's parameters are read.
            gradient: The aggregated gradient of each of those parameters.

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
