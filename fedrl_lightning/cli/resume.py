"""Resuming from the command line: the checkpoint's config, and what a resume may change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.trainer import FEDRL_KEY
from fedrl_lightning.run.checkpoints import load_checkpoint

__all__ = ["RESUMABLE_OPTIONS", "check_unchanged", "saved_config"]

RESUMABLE_OPTIONS = frozenset(
    {
        "ckpt_path",
        "trainer.num_rounds",
        "trainer.min_agents_per_round",
        "trainer.accelerator",
        "trainer.executor",
        "trainer.num_workers",
        "trainer.ray_address",
        "trainer.round_timeout",
        "trainer.default_root_dir",
        "trainer.keep_agent_checkpoints",
        "trainer.logger",
        "trainer.callbacks",
        "trainer.enable_progress_bar",
        "trainer.verbose",
    }
)
"""Options that do not change the experiment, with what nests under them: a resume may give
them new values. Loggers and callbacks watch the rounds; they do not change their results."""


def saved_config(path: Path) -> str | None:
    """The resolved config saved in round checkpoint ``path``, as YAML text.

    Returns ``None`` for a run started from Python without a config.

    Raises:
        ConfigError: If ``path`` is not a readable round checkpoint.
    """
    state = load_checkpoint(path).get(FEDRL_KEY)
    if not isinstance(state, dict):
        raise ConfigError(f"checkpoint {path}: not a round checkpoint (no {FEDRL_KEY!r} entry)")
    config = state.get("config")
    return config if isinstance(config, str) else None


def check_unchanged(saved: str, current: str, path: Path) -> None:
    """Refuse a resume whose config changes the experiment being resumed.

    Args:
        saved: The config the run was started with (YAML).
        current: The config of the resuming command (YAML).
        path: The checkpoint being resumed, for the message.

    Raises:
        ConfigError: Naming the first option, outside :data:`RESUMABLE_OPTIONS`, that differs.
    """
    before, after = _flatten(yaml.safe_load(saved)), _flatten(yaml.safe_load(current))
    for key in sorted(before.keys() | after.keys()):
        if _resumable(key) or before.get(key) == after.get(key):
            continue
        option = key.replace(".init_args.", ".")  # --model.lr, as the user writes it
        raise ConfigError(
            f"--{option}: the run in {path} has {before.get(key)!r}, this command gives "
            f"{after.get(key)!r}; a resumed run cannot change its experiment (start a new run "
            "without --ckpt_path)"
        )


def _resumable(key: str) -> bool:
    """Whether option ``key``, or the option it nests under, is in :data:`RESUMABLE_OPTIONS`."""
    parts = key.split(".")
    return any(".".join(parts[:n]) in RESUMABLE_OPTIONS for n in range(1, len(parts) + 1))


def _flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` becomes ``{"a.b": 1}``, the options' dotted names."""
    if not isinstance(config, dict) or not config:
        return {prefix: config}
    flat: dict[str, Any] = {}
    for key, value in config.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat
