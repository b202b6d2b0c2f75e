"""The ``lightning.Trainer`` of a local fit, built without rescanning the installed packages.

Every ``lightning.Trainer`` looks up the callback factories that packages register under the
``lightning.pytorch.callbacks_factory`` entry point. Python's ``importlib.metadata`` reads the
metadata of every installed distribution for that, on each call: about 6 ms with this
project's dependencies (a Trainer took 7.2 ms to build, 1.1 ms without it), and the outer loop
builds a Trainer for every sampled agent of every round. :func:`local_trainer` finds the
factories once per process and still calls them for each Trainer, so each gets fresh
callbacks, as Lightning's own lookup gives them. A package installed while a run goes on is
not seen until the next run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib import metadata
from typing import Any

import lightning as L
from lightning.pytorch.trainer.connectors import callback_connector

__all__ = ["external_callbacks", "local_trainer"]


@functools.cache
def _callback_factories(group: str) -> tuple[Callable[[], Any], ...]:
    """The callback factories that installed packages register under ``group``."""
    return tuple(entry_point.load() for entry_point in metadata.entry_points(group=group))


def external_callbacks(group: str) -> list[Any]:
    """The callbacks of the factories registered under ``group``, made anew.

    Lightning's ``_load_external_callbacks``, with the entry points found once per process.

    Args:
        group: The entry point group, such as ``lightning.pytorch.callbacks_factory``.

    Returns:
        What each factory returns, in order, a list flattened into the others.
    """
    callbacks: list[Any] = []
    for factory in _callback_factories(group):
        made = factory()
        callbacks.extend(made if isinstance(made, list) else [made])
    return callbacks


def local_trainer(**options: Any) -> L.Trainer:
    """A ``lightning.Trainer`` built with ``options``, its external callbacks found once.

    Args:
        **options: ``lightning.Trainer``'s arguments.

    Returns:
        The Trainer.
    """
    callback_connector._load_external_callbacks = external_callbacks
    return L.Trainer(**options)
