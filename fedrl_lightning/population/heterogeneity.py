"""Per-agent environment parameters: how each agent's physics differs, reproducibly."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, TypeVar

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control import CartPoleEnv
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.seeding import Stream, derive_seed

__all__ = ["Choices", "Heterogeneity", "Spread", "refresh_derived"]

Mode = Literal["spread", "sample"]
EnvT = TypeVar("EnvT", gym.Env, gym.vector.VectorEnv)


@dataclass(frozen=True)
class Choices:
    """Values of an attribute to choose from, one per agent: ``{choices: [...]}``.

    Args:
        choices: The values, each of the attribute's kind (numbers, or true and false).
    """

    choices: list[Any]


Spread: TypeAlias = tuple[float, float] | Choices
"""How an attribute spreads over the agents: a range ``[low, high]``, or ``{choices: [...]}``."""


def _cartpole(env: CartPoleEnv | CartPoleVectorEnv) -> None:
    # CartPole computes these once in __init__; its step uses them, not masspole or length.
    env.total_mass = env.masspole + env.masscart
    env.polemass_length = env.masspole * env.length


# Environments whose dynamics use quantities derived from other attributes at construction.
DERIVED: dict[type, Callable[[Any], None]] = {CartPoleEnv: _cartpole, CartPoleVectorEnv: _cartpole}


def refresh_derived(env: gym.Env | gym.vector.VectorEnv) -> None:
    """Recompute the quantities ``env`` derives from its attributes, after they changed."""
    for env_type, refresh in DERIVED.items():
        if isinstance(env, env_type):
            refresh(env)


class Heterogeneity:
    """Assigns every agent its own values of some environment attributes.

    Each attribute maps to a range ``[low, high]`` or to :class:`Choices`. With
    ``spread``, agent ``k`` of ``n`` gets ``low + (high - low) * k / (n - 1)``, or the
    ``k``-th choice (cycling); with ``sample``, a uniform draw from the range, or a random
    choice, seeded by (seed, agent id). Either way an agent's values depend only on the config,
    the seed and its id.

    Args:
        spec: Attribute name to its :data:`Spread`, such as ``{"length": (0.1, 0.9)}``; a
            plain mapping ``{"choices": [...]}`` may stand for :class:`Choices`.
        num_agents: How many agents there are.
        mode: ``spread`` or ``sample``.
        seed: The run seed, for ``sample``.
        stream: The seed stream of ``sample``'s draws.
        option: The option the spec came from, for messages.
    """

    def __init__(
        self,
        spec: Mapping[str, Spread | Mapping[str, Any] | list[Any]],
        num_agents: int,
        mode: Mode = "spread",
        seed: int = 0,
        stream: Stream = Stream.HETEROGENEITY,
        option: str = "data.heterogeneity",
    ) -> None:
        if mode not in ("spread", "sample"):
            raise ConfigError(f"data.heterogeneity_mode must be spread or sample, got {mode!r}")
        self.option = option
        self.spec = {name: self._parse(name, value) for name, value in spec.items()}
        self.num_agents = num_agents
        self.mode = mode
        self.seed = seed
        self.stream = stream

    def __bool__(self) -> bool:
        """Whether any attribute varies."""
        return bool(self.spec)

    def values(self, agent_id: int) -> dict[str, Any]:
        """Agent ``agent_id``'s value of every attribute."""
        rng = None
        if self.mode == "sample":
            rng = np.random.default_rng(derive_seed(self.seed, 0, agent_id, self.stream))
        values = {}
        for name, (kind, items) in self.spec.items():
            if kind == "range":
                low, high = items
                if rng is not None:
                    values[name] = float(rng.uniform(low, high))
                else:
                    fraction = agent_id / (self.num_agents - 1) if self.num_agents > 1 else 0.5
                    values[name] = float(low + (high - low) * fraction)
            elif rng is not None:
                values[name] = items[int(rng.integers(len(items)))]
            else:
                values[name] = items[agent_id % len(items)]
        return values

    def fits(self, env: gym.Env | gym.vector.VectorEnv) -> bool:
        """Whether ``env`` has every attribute that varies."""
        return all(hasattr(env.unwrapped, name) for name in self.spec)

    def apply(self, env: EnvT, agent_id: int) -> EnvT:
        """Set agent ``agent_id``'s values on ``env`` and refresh what derives from them.

        ``env`` may also be a native vector environment whose sub-environments all belong to
        agent ``agent_id``.
        """
        base = env.unwrapped
        for name, value in self.values(agent_id).items():
            if not hasattr(base, name):
                raise ConfigError(
                    f"data.heterogeneity: {type(base).__name__} has no attribute {name!r}"
                )
            self._check_kind(base, name)
            setattr(base, name, value)
        refresh_derived(base)
        return env

    def _check_kind(self, base: object, name: str) -> None:
        """Refuse values of ``base``'s attribute ``name`` (every agent's) not of its kind."""
        self.check_kind(name, getattr(base, name), f"{type(base).__name__}.{name}")

    def check_kind(self, name: str, current: Any, owner: str) -> None:
        """Refuse values of ``name`` (every agent's) that are not of ``current``'s kind.

        A number takes finite numbers, a flag true or false; the check covers every choice,
        so no agent fails later in the run.

        Args:
            name: A varied attribute or hyperparameter.
            current: Its value as it is, without heterogeneity.
            owner: What has it, for the message (``CartPoleEnv.length``).

        Raises:
            ConfigError: Naming the option, ``name`` and the value.
        """
        _, items = self.spec[name]
        for item in items:
            if isinstance(current, bool):
                fits, kind = isinstance(item, bool), "true or false"
            elif isinstance(current, int | float | np.number):
                fits = isinstance(item, int | float) and not isinstance(item, bool)
                fits, kind = fits and math.isfinite(item), "a finite number"
            else:
                continue
            if not fits:
                raise ConfigError(
                    f"{self.option}.{name}: {item!r} is not {kind}, as {owner} ({current!r}) is"
                )

    def _parse(self, name: str, value: Any) -> tuple[str, list[Any]]:
        """``("choices", values)`` or ``("range", [low, high])``, checked."""
        if isinstance(value, Mapping) and set(value) == {"choices"}:
            value = Choices(list(value["choices"]))
        if isinstance(value, Choices) and value.choices:
            return "choices", list(value.choices)
        if (
            isinstance(value, list | tuple)
            and len(value) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            and all(math.isfinite(v) for v in value)
            and value[0] <= value[1]
        ):
            return "range", [float(value[0]), float(value[1])]
        shown = {"choices": value.choices} if isinstance(value, Choices) else value
        shown = list(shown) if isinstance(shown, tuple) else shown
        raise ConfigError(
            f"{self.option}.{name}: give a range [low, high] of finite numbers, low <= high, or "
            f"{{choices: [...]}} with at least one value; got {shown!r}"
        )
