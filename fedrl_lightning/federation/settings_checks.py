"""Checks of a run's settings before any run folder is made, those that need the machine too."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.extras import missing_extra
from fedrl_lightning.federation.local_trainer import local_trainer
from fedrl_lightning.run.console import quiet_lightning

__all__ = [
    "RAY_ONLY_OPTIONS",
    "check_accelerator",
    "check_callbacks",
    "check_component_names",
    "check_round_options",
    "check_executor_options",
    "check_output_folder",
]

RAY_ONLY_OPTIONS = ("num_workers", "ray_address", "round_timeout")
RESERVED_NAMES = {"", "round", "seed", "history", "strategy", "config", "callbacks", "shared"}
"""Keys of the round state, and of a fit's parts, that no round component may take."""


def check_round_options(
    min_agents_per_round: int,
    agents_per_round: int,
    lr_schedule: str,
    finetune_episodes: int = 0,
    **counts: float | None,
) -> None:
    """Refuse the trainer's counts that are not positive, and options that contradict.

    Args:
        min_agents_per_round: Agents that must succeed in a round.
        agents_per_round: Agents sampled per round.
        lr_schedule: ``constant`` or ``linear``.
        finetune_episodes: Episodes of local adaptation, 0 for none; not negative.
        **counts: Options that must be positive when given, by name.
    """
    if finetune_episodes < 0:
        raise ConfigError(
            f"trainer.finetune_episodes must not be negative, got {finetune_episodes}"
        )
    counts |= {"agents_per_round": agents_per_round, "min_agents_per_round": min_agents_per_round}
    for name, value in counts.items():
        if value is not None and value <= 0:
            raise ConfigError(f"trainer.{name} must be positive, got {value}")
    if min_agents_per_round > agents_per_round:
        raise ConfigError(
            f"trainer.min_agents_per_round ({min_agents_per_round}) must not exceed "
            f"trainer.agents_per_round ({agents_per_round})"
        )
    if lr_schedule not in ("constant", "linear"):
        raise ConfigError(f"trainer.lr_schedule must be constant or linear, got {lr_schedule!r}")


def check_callbacks(callbacks: Sequence[Any]) -> None:
    """Refuse two callbacks with one state key: a checkpoint could not tell their states apart."""
    keys = [callback.state_key for callback in callbacks]
    twice = [key for key in keys if keys.count(key) > 1]
    if twice:
        raise ConfigError(f"trainer.callbacks: two callbacks have the state key {twice[0]}")


def check_component_names(components: Sequence[Any]) -> None:
    """Refuse round components whose names collide, with each other or the round state's keys."""
    names = [component.name for component in components]
    for name in names:
        if names.count(name) > 1 or name in RESERVED_NAMES:
            raise ConfigError(
                f"trainer.components: a round component's name {name!r} is taken (by another "
                f"component, or the round state: {', '.join(sorted(RESERVED_NAMES - {''}))})"
            )


def check_accelerator(accelerator: str) -> None:
    """Refuse an accelerator that Lightning cannot find on this machine.

    A ``lightning.Trainer`` is built for it as each local fit will build one, so what fails
    here would otherwise fail every agent of round 1.
    """
    try:
        with quiet_lightning(verbose=False):
            local_trainer(
                accelerator=accelerator,
                devices=1,
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
            )
    except Exception as err:  # Lightning raises several types for an unusable accelerator
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ConfigError(f"trainer.accelerator {accelerator!r}: {reason}") from None


def check_executor_options(executor: str, **options: object) -> None:
    """Refuse options that the chosen executor would ignore.

    Args:
        executor: ``sequential`` or ``ray``.
        **options: ``num_workers``, ``ray_address`` and ``round_timeout``, as given.
    """
    if executor not in ("sequential", "ray"):
        raise ConfigError(f"trainer.executor must be sequential or ray, got {executor!r}")
    given = [name for name in RAY_ONLY_OPTIONS if options.get(name) is not None]
    if executor == "sequential" and given:
        raise ConfigError(
            f"trainer.{given[0]} ({options[given[0]]}) is only used with trainer.executor ray; "
            "remove it, or set it to null, for a sequential run"
        )
    if executor == "ray" and options.get("ray_address") and options.get("num_workers"):
        raise ConfigError(
            f"trainer.num_workers ({options['num_workers']}) sizes a local Ray instance and is "
            "ignored when joining a cluster with trainer.ray_address; remove one of them"
        )
    if executor == "ray" and importlib.util.find_spec("ray") is None:
        raise missing_extra("trainer.executor ray", "ray", "ray")


def check_output_folder(root: Path) -> None:
    """Refuse a ``default_root_dir`` that is not a folder this process can write in."""
    existing = Path(root).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"trainer.default_root_dir {str(root)!r}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"trainer.default_root_dir {str(root)!r}: {existing} is not writable")
