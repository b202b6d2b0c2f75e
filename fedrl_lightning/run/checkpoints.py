"""Atomic file writes and safe checkpoint loading."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import lightning as L
import torch
import yaml

from fedrl_lightning.errors import ConfigError

__all__ = [
    "LEARNER_KEY",
    "atomic_save",
    "atomic_write_bytes",
    "atomic_write_text",
    "load_checkpoint",
    "load_plain",
    "policy_checkpoint",
    "serialize",
    "temporary_path",
]


def policy_checkpoint(
    state_dict: dict[str, torch.Tensor],
    hyper_parameters: dict[str, Any],
    learner: str,
    **extra: Any,
) -> dict[str, Any]:
    """A checkpoint that the learner's ``load_from_checkpoint`` and ``load_module`` can load.

    It holds the weights, the module's hyperparameters, the learner's class name (a name, never
    a path to import: ``load_module`` looks it up among known learners) and ``extra`` entries,
    and nothing that needs unpickling beyond tensors and plain containers.
    """
    return {
        "pytorch-lightning_version": L.__version__,
        "state_dict": state_dict,
        "hyper_parameters": hyper_parameters,
        LEARNER_KEY: learner,
        **extra,
    }


LEARNER_KEY = "learner"
ROUND_STATE_KEY = "fedrl"
"""A round checkpoint's federated state (the trainer's ``FEDRL_KEY``)."""
HISTORY_NUMBERS = (
    "round",
    "train_reward",
    "eval_reward",
    "eval_reward_min",
    "num_failed_agents",
    "episodes",
    "env_steps",
)
"""Numbers every row of a round checkpoint's metrics history holds."""


def serialize(obj: Any) -> bytes:
    """What ``torch.save`` writes for ``obj``.

    In memory, the archive's inner folder has a fixed name, so the bytes depend only on
    ``obj``; saving to a file would name that folder after the file.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def temporary_path(path: Path) -> Path:
    """A hidden sibling path to write to before renaming onto ``path``."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename it onto ``path``.

    A crash mid-write leaves the previous ``path`` intact, never a truncated file. The bytes
    depend only on ``obj``, not on the file's name or the process that writes it.
    """
    atomic_write_bytes(serialize(obj), path)


def atomic_write_bytes(data: bytes, path: Path) -> None:
    """Write ``data`` to a temporary file, then rename it onto ``path``."""
    _write_then_rename(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(text: str, path: Path) -> None:
    """Write ``text`` to a temporary file, then rename it onto ``path``."""
    _write_then_rename(path, lambda tmp: tmp.write_text(text))


def _write_then_rename(path: Path, write: Callable[[Path], object]) -> None:
    tmp = temporary_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint without executing any code it contains.

    Checkpoints may come from untrusted agents, so they are loaded with
    ``weights_only=True``: only tensors and plain containers are accepted.

    Args:
        path: The checkpoint file.

    Returns:
        The checkpoint dictionary, with tensors on the CPU.

    Raises:
        ConfigError: If the file is missing, unreadable, or not a plain checkpoint; the
            message names the file.
    """
    path = Path(path)
    checkpoint = load_plain(path)
    _check_contents(checkpoint, path)
    return cast(dict[str, Any], checkpoint)  # _check_contents refuses anything but a dict


def load_plain(path: str | Path) -> object:
    """Load a ``torch.save`` file of tensors and plain values, with ``weights_only=True``.

    Raises:
        ConfigError: If the file is missing or unreadable; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path}: no such file")
    try:
        archive = zipfile.is_zipfile(path)
    except (zipfile.BadZipFile, OSError, ValueError):  # a damaged central directory
        archive = False
    if not archive:
        raise ConfigError(
            f"checkpoint {path}: not a readable checkpoint (not a torch.save archive)"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ConfigError(
            f"checkpoint {path}: refused to load ({_unpickler_reason(err)})"
        ) from None
    except Exception as err:  # a damaged archive fails anywhere in the unpickler
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"checkpoint {path}: not a readable checkpoint ({reason})") from None


def _check_contents(checkpoint: object, path: Path) -> None:
    """Refuse a loadable file that does not hold what this package's checkpoints hold.

    A damaged byte can leave a file that unpickles into something else: a state dict of
    non-tensors, a round counter that is a string, a saved config that is no longer YAML.

    Raises:
        ConfigError: Naming the file and what is wrong in it.
    """
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigError(f"checkpoint {path}: has no state_dict")
    state_dict = checkpoint["state_dict"]
    if not isinstance(state_dict, dict) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor)
        for key, value in state_dict.items()
    ):
        raise ConfigError(f"checkpoint {path}: damaged (its state_dict is not named tensors)")
    for key, kind in (("hyper_parameters", dict), (LEARNER_KEY, str), (ROUND_STATE_KEY, dict)):
        if key in checkpoint and not isinstance(checkpoint[key], kind | None):
            raise ConfigError(
                f"checkpoint {path}: damaged (its {key!r} entry is not a {kind.__name__})"
            )
    state = checkpoint.get(ROUND_STATE_KEY)
    if isinstance(state, dict):
        _check_round_state(state, path)


def _check_round_state(state: dict[str, Any], path: Path) -> None:
    """Refuse a round checkpoint whose round, seed, history or saved config is damaged."""
    for key in ("round", "seed"):
        value = state.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"checkpoint {path}: damaged (its {key} is {value!r})")
    history = state.get("history", [])
    if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
        raise ConfigError(f"checkpoint {path}: damaged (its metrics history is not rows)")
    for index, row in enumerate(history, start=1):
        for key in HISTORY_NUMBERS:
            value = row.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(
                    f"checkpoint {path}: damaged (round {index} of its metrics history has "
                    f"{key} {value!r})"
                )
        if row["round"] != index:
            raise ConfigError(
                f"checkpoint {path}: damaged (row {index} of its metrics history is round "
                f"{row['round']!r})"
            )
    config = state.get("config")
    if config is None:
        return
    try:
        parsed = yaml.safe_load(config) if isinstance(config, str) else None
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or type(err).__name__
        raise ConfigError(
            f"checkpoint {path}: damaged (its saved config is not valid YAML: {problem})"
        ) from None
    if not isinstance(parsed, dict):
        raise ConfigError(f"checkpoint {path}: damaged (its saved config is not a mapping)")


def _unpickler_reason(err: pickle.UnpicklingError) -> str:
    """The line of torch's long weights-only message that says what was refused."""
    for line in str(err).splitlines():
        line = line.strip()
        if line.startswith("WeightsUnpickler error:"):
            return line.removeprefix("WeightsUnpickler error:").strip().split(". ")[0]
    return str(err).strip().splitlines()[0]
