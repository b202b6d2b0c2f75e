"""``model.curiosity``: which curiosity model a learner builds, typed for the command line."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.exploration.base import Curiosity
from fedrl_lightning.exploration.icm import ICM
from fedrl_lightning.exploration.rnd import RND
from fedrl_lightning.options import check_number, from_mapping

__all__ = ["CuriosityOptions", "make_curiosity"]

OPTION = "model.curiosity"
OWN_FIELDS = {"rnd": ("output_dim",), "icm": ("feature_dim", "beta")}
"""The fields that only one kind takes."""


@dataclass(frozen=True)
class CuriosityOptions:
    """Curiosity-driven exploration: ``{kind: rnd}`` or ``{kind: icm}``, and its sizes.

    A field that only the other kind takes is refused; one left out takes its kind's default.

    Args:
        kind: ``rnd`` (random network distillation, Burda et al.) or ``icm`` (the intrinsic
            curiosity module, Pathak et al.).
        coef: Weight of the intrinsic reward (or advantage) beside the extrinsic one, >= 0.
        intrinsic_gamma: Discount of the intrinsic return, in (0, 1].
        hidden_dim: Width of the curiosity model's hidden layers.
        output_dim: RND only: size of the embedding the predictor learns to match (32).
        feature_dim: ICM only: size of the learned features ``phi(s)`` (32).
        beta: ICM only: weight of the forward loss against the inverse one, in [0, 1] (0.2).
    """

    kind: Literal["rnd", "icm"]
    coef: float = 1.0
    intrinsic_gamma: float = 0.99
    hidden_dim: int = 64
    output_dim: int | None = None
    feature_dim: int | None = None
    beta: float | None = None

    def __post_init__(self) -> None:
        """Refuse values out of range, and fields of the other kind, naming the option."""
        if self.kind not in OWN_FIELDS:
            raise ConfigError(f"{OPTION}.kind must be one of rnd, icm, got {self.kind!r}")
        for name in OWN_FIELDS["icm" if self.kind == "rnd" else "rnd"]:
            if getattr(self, name) is not None:
                allowed = ", ".join(self.plain(every=True))
                raise ConfigError(f"{OPTION}: unknown key {name!r} for {self.kind} ({allowed})")
        check_number(f"{OPTION}.coef", self.coef, low=0.0)
        check_number(f"{OPTION}.intrinsic_gamma", self.intrinsic_gamma, 0.0, 1.0, open_low=True)
        for name in ("hidden_dim", "output_dim", "feature_dim"):
            value = getattr(self, name)
            if value is not None and (_not_int(value) or value < 1):
                raise ConfigError(f"{OPTION}.{name} must be a positive integer, got {value!r}")
        if self.beta is not None:
            check_number(f"{OPTION}.beta", self.beta, low=0.0, high=1.0)

    @classmethod
    def of(cls, spec: CuriosityOptions | Mapping[str, Any]) -> CuriosityOptions:
        """``spec`` as options: a plain mapping (from Python or saved hyperparameters) too."""
        return from_mapping(cls, spec, OPTION)

    def plain(self, every: bool = False) -> dict[str, Any]:
        """The options as plain data, for a learner's saved hyperparameters.

        Args:
            every: Include every field this kind takes, those left out too (as ``None``).

        Returns:
            The fields this kind takes that are set (with ``every``, all of them).
        """
        other = OWN_FIELDS["icm" if self.kind == "rnd" else "rnd"]
        return {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.name not in other and (every or getattr(self, field.name) is not None)
        }

    def build(self, observation_dim: int, num_actions: int, continuous: bool) -> Curiosity:
        """The curiosity model these options describe, for a policy of these sizes.

        Args:
            observation_dim: Size of a flat observation.
            num_actions: Discrete actions, or the size of a continuous action.
            continuous: Whether actions are continuous.
        """
        sizes = {key: value for key, value in self.plain().items() if key != "kind"}
        if self.kind == "icm":
            return ICM(observation_dim, num_actions, continuous, **sizes)
        return RND(observation_dim, **sizes)


def make_curiosity(
    spec: CuriosityOptions | Mapping[str, Any],
    observation_dim: int,
    num_actions: int,
    continuous: bool,
) -> Curiosity:
    """The curiosity model ``model.curiosity`` describes, such as ``{kind: rnd, coef: 1.0}``.

    Args:
        spec: :class:`CuriosityOptions`, or a plain mapping of its fields.
        observation_dim: Size of a flat observation.
        num_actions: Discrete actions, or the size of a continuous action.
        continuous: Whether actions are continuous.

    Raises:
        ConfigError: Naming the option, for an unknown kind or key, or a value out of range.
    """
    return CuriosityOptions.of(spec).build(observation_dim, num_actions, continuous)


def _not_int(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)
