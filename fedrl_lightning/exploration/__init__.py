"""Curiosity-driven exploration: intrinsic rewards from RND or ICM, federated with the policy."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.exploration.base import Curiosity, Transitions, next_observations, transitions
from fedrl_lightning.exploration.icm import ICM
from fedrl_lightning.exploration.rnd import RND

__all__ = [
    "CURIOSITY_KINDS",
    "ICM",
    "RND",
    "Curiosity",
    "Transitions",
    "make_curiosity",
    "next_observations",
    "transitions",
]

CURIOSITY_KINDS: dict[str, type[Curiosity]] = {"rnd": RND, "icm": ICM}
"""The ``kind`` values of ``model.curiosity``."""

COMMON = {"kind", "coef", "intrinsic_gamma"}
OPTIONS = {"rnd": {"hidden_dim", "output_dim"}, "icm": {"hidden_dim", "feature_dim", "beta"}}


def make_curiosity(
    spec: Mapping[str, Any], observation_dim: int, num_actions: int, continuous: bool
) -> Curiosity:
    """The curiosity model ``model.curiosity`` describes, such as ``{kind: rnd, coef: 1.0}``.

    Args:
        spec: ``kind`` (``rnd`` or ``icm``), ``coef`` (default 1.0), ``intrinsic_gamma``
            (default 0.99), and the kind's own sizes: ``hidden_dim`` and ``output_dim`` for
            RND; ``hidden_dim``, ``feature_dim`` and ``beta`` for ICM.
        observation_dim: Size of a flat observation.
        num_actions: Discrete actions, or the size of a continuous action.
        continuous: Whether actions are continuous.

    Raises:
        ConfigError: Naming the option, for an unknown kind or key, or a value out of range.
    """
    if not isinstance(spec, Mapping):
        raise ConfigError(f"model.curiosity must be a mapping such as {{kind: rnd}}, got {spec!r}")
    kind = spec.get("kind")
    if kind not in CURIOSITY_KINDS:
        raise ConfigError(
            f"model.curiosity.kind must be one of {sorted(CURIOSITY_KINDS)}, got {kind!r}"
        )
    unknown = sorted(set(spec) - COMMON - OPTIONS[kind])
    if unknown:
        allowed = ", ".join(sorted(COMMON | OPTIONS[kind]))
        raise ConfigError(f"model.curiosity: unknown key {unknown[0]!r} for {kind} ({allowed})")
    options = {key: value for key, value in spec.items() if key != "kind"}
    options.setdefault("coef", 1.0)
    options.setdefault("intrinsic_gamma", 0.99)
    for key, value in options.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"model.curiosity.{key} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"model.curiosity.{key} must be a finite number, got {value}")
    if options["coef"] < 0:
        raise ConfigError(f"model.curiosity.coef must not be negative, got {options['coef']}")
    if not 0 < options["intrinsic_gamma"] <= 1:
        raise ConfigError(
            f"model.curiosity.intrinsic_gamma must be in (0, 1], got {options['intrinsic_gamma']}"
        )
    for key in ("hidden_dim", "output_dim", "feature_dim"):
        if key in options and (options[key] != int(options[key]) or options[key] < 1):
            raise ConfigError(
                f"model.curiosity.{key} must be a positive integer, got {options[key]}"
            )
        if key in options:
            options[key] = int(options[key])
    if "beta" in options and not 0 <= options["beta"] <= 1:
        raise ConfigError(f"model.curiosity.beta must be in [0, 1], got {options['beta']}")
    if kind == "icm":
        return ICM(observation_dim, num_actions, continuous, **options)
    return RND(observation_dim, **options)
