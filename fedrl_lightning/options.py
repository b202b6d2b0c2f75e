"""Typed options: dataclasses that the command line validates, built from plain mappings too.

The command line (jsonargparse) checks an option's shape and types against its dataclass
and documents its fields in ``--help``; what a type cannot say (a range, a finite number)
each dataclass checks in ``__post_init__`` with :func:`check_number`. Python users may pass a
plain mapping instead, which :func:`from_mapping` turns into the dataclass.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, TypeVar

from fedrl_lightning.errors import ConfigError

__all__ = ["check_number", "from_mapping"]

OptionsT = TypeVar("OptionsT")


def from_mapping(cls: type[OptionsT], spec: OptionsT | Mapping[str, Any], option: str) -> OptionsT:
    """``spec`` as a ``cls`` dataclass: as it is, or built from a plain mapping of its fields.

    Args:
        cls: The options' dataclass.
        spec: An instance of it, or a mapping of its fields (from Python, or saved as plain
            data in a checkpoint).
        option: The option's dotted name, for messages (``data.byzantine``).

    Raises:
        ConfigError: Naming the option, for something other than a mapping, a key that is no
            field, a field left out that has no default, or a value the dataclass refuses.
    """
    if isinstance(spec, cls):
        return spec
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{option} must be a mapping of {cls.__name__}'s fields, got {spec!r}")
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]  # cls is a dataclass
    names = [field.name for field in fields]
    unknown = sorted(set(spec) - set(names))
    if unknown:
        raise ConfigError(f"{option}.{unknown[0]}: unknown key (its keys: {', '.join(names)})")
    for field in fields:
        required = field.default is dataclasses.MISSING
        if required and field.default_factory is dataclasses.MISSING and field.name not in spec:
            raise ConfigError(f"{option}.{field.name} must be given")
    return cls(**spec)


def check_number(
    option: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    open_low: bool = False,
) -> None:
    """Refuse ``value`` unless it is a finite number in ``[low, high]`` (``(low, high]``).

    Args:
        option: The field's dotted name, for the message (``model.curiosity.coef``).
        value: The value given.
        low: The least value allowed.
        high: The greatest value allowed.
        open_low: Refuse ``low`` itself.

    Raises:
        ConfigError: Naming the option and the range.
    """
    fits = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    fits = fits and (low < value if open_low else low <= value) and value <= high
    if fits:
        return
    if high < math.inf:
        wanted = f" in {'(' if open_low else '['}{low:g}, {high:g}]"
    elif low > -math.inf:
        wanted = f" {'>' if open_low else '>='} {low:g}"
    else:
        wanted = ""
    raise ConfigError(f"{option} must be a finite number{wanted}, got {value!r}")
