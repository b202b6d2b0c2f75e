"""Sharing scopes: which agents share which parameters (all, the same task's, or none)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.strategies.base import StateDict

__all__ = ["SCOPES", "Scope", "SharingScopes"]

Scope = Literal["global", "task", "agent"]
SCOPES: tuple[Scope, ...] = ("global", "task", "agent")
"""``global``: aggregated over the round's agents; ``task``: over the round's agents of the same
task; ``agent``: never sent, kept by its agent."""


class SharingScopes:
    """Gives every parameter of the model a sharing scope, by name patterns.

    ``SharingScopes({"agent": ["policy.head.*"]})`` keeps every agent's policy head to
    itself (FedPer's personal layers) and shares the rest with all agents. Patterns are
    shell-style (``fnmatch``) over the names of the model's ``state_dict``; a name that no
    pattern matches is ``global``. A name that patterns of two scopes match is refused, as is
    a pattern that matches nothing, so that a typo never silently shares what was meant to
    stay private.

    Args:
        spec: Scope (``task`` or ``agent``, or ``global`` to be explicit) to patterns.
        option: The option the spec came from, for messages.
    """

    def __init__(
        self,
        spec: Mapping[str, Sequence[str]] | None = None,
        option: str = "trainer.server",
    ) -> None:
        self.option = option
        self.patterns: dict[Scope, tuple[str, ...]] = {}
        for scope, patterns in (spec or {}).items():
            if scope not in SCOPES:
                raise ConfigError(
                    f"{option}: {scope!r} is not a scope (scopes: {', '.join(SCOPES)})"
                )
            if isinstance(patterns, str) or not all(isinstance(p, str) for p in patterns):
                raise ConfigError(
                    f"{option}.{scope}: give a list of parameter-name patterns such as "
                    f"[policy.head.*], got {patterns!r}"
                )
            self.patterns[scope] = tuple(patterns)

    def __bool__(self) -> bool:
        """Whether any parameter is scoped to a task or an agent."""
        return any(self.patterns.get(scope) for scope in ("task", "agent"))

    def scope_of(self, name: str) -> Scope:
        """The scope of parameter ``name``.

        Raises:
            ConfigError: If patterns of two scopes match it.
        """
        matched = [
            scope
            for scope, patterns in self.patterns.items()
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)
        ]
        if len(matched) > 1:
            raise ConfigError(
                f"{self.option}: {name} matches patterns of two scopes ({', '.join(matched)})"
            )
        return matched[0] if matched else "global"

    def names(self, names: Iterable[str], scope: Scope) -> list[str]:
        """The names among ``names`` that have ``scope``, in their order."""
        return [name for name in names if self.scope_of(name) == scope]

    def split(self, state: StateDict) -> dict[Scope, StateDict]:
        """``state`` cut by scope: every scope's entries, in the state's order."""
        parts: dict[Scope, StateDict] = {scope: {} for scope in SCOPES}
        for name, value in state.items():
            parts[self.scope_of(name)][name] = value
        return parts

    def check(self, names: Sequence[str], fixed: Sequence[str] = (), model: str = "model") -> None:
        """Refuse patterns that match nothing, names two scopes claim, and scoped ``fixed``.

        Args:
            names: The model's ``state_dict`` names.
            fixed: Entries that cannot be scoped, such as running statistics, which every
                agent's fit adds to and the server pools.
            model: The model, for the message.

        Raises:
            ConfigError: Naming the pattern or the entry.
        """
        for scope, patterns in self.patterns.items():
            for pattern in patterns:
                if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
                    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
                    raise ConfigError(
                        f"{self.option}.{scope}: {pattern!r} matches no parameter of {model} "
                        f"(its parameters: {shown})"
                    )
        for name in names:
            self.scope_of(name)  # refuses a name that two scopes claim
        for name in fixed:
            scope = self.scope_of(name)
            if scope != "global":
                raise ConfigError(
                    f"{self.option}.{scope}: {name} holds running statistics, which the server "
                    "pools from every agent; they cannot be scoped"
                )

    def state_dict(self) -> dict[str, list[str]]:
        """The patterns, by scope."""
        return {scope: list(patterns) for scope, patterns in self.patterns.items()}
