"""Atomic file writes and safe checkpoint loading."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch

from fedrl_lightning.errors import ConfigError

__all__ = [
    "LEARNER_KEY",
    "atomic_save",
    "atomic_write_bytes",
    "atomic_write_text",
    "load_checkpoint",
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
    if not path.is_file():
        raise ConfigError(f"checkpoint {path}: no such file")
    if not zipfile.is_zipfile(path):
        raise ConfigError(
            f"checkpoint {path}: not a readable checkpoint (not a torch.save archive)"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ConfigError(
            f"checkpoint {path}: refused to load ({_unpickler_reason(err)})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"checkpoint {path}: not a readable checkpoint ({reason})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigError(f"checkpoint {path}: has no state_dict")
    return checkpoint


def _unpickler_reason(err: pickle.UnpicklingError) -> str:
    """The line of torch's long weights-only message that says what was refused."""
    for line in str(err).splitlines():
        line = line.strip()
        if line.startswith("WeightsUnpickler error:"):
            return line.removeprefix("WeightsUnpickler error:").strip().split(". ")[0]
    return str(err).strip().splitlines()[0]
