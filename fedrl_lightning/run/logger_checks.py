"""Loggers checked before a run starts: their packages installed, their folders writable.

A logger that cannot be built or cannot write would otherwise fail with a traceback after
the run folder exists. :func:`check_logger_packages` names the package a logger needs,
:func:`check_mlflow_store` says what to give when MLflow refuses its default file store, and
:func:`probe_loggers` refuses a logger whose folder cannot be created or lies inside another
run's folder, each in one line naming ``trainer.logger``.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable
from pathlib import Path

from lightning.pytorch.loggers import Logger

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.extras import install_command, missing_extra
from fedrl_lightning.run.outputs import run_folder_of, unwritable

__all__ = [
    "LOGGER_PACKAGES",
    "check_logger_packages",
    "check_mlflow_store",
    "given_loggers",
    "probe_loggers",
]

LOGGER_PACKAGES: dict[str, tuple[str, str]] = {
    "WandbLogger": ("wandb", "pip install wandb"),
    "CometLogger": ("comet_ml", "pip install comet-ml"),
    "NeptuneLogger": ("neptune", "pip install neptune"),
    "MLFlowLogger": ("mlflow", install_command("mlflow")),
}
"""Lightning's loggers that need a package of their own: its module, and how to install it."""
MLFLOW_DATABASE = re.compile(r"\b(sqlite|postgresql|mysql|mssql)(\+\w+)?:")
"""A tracking URI of a database store, which MLflow's client reaches through sqlalchemy."""
MLFLOW_DATABASE_PACKAGES = ("sqlalchemy", "alembic")
LOCAL_MLFLOW_STORE = "sqlite:///mlflow.db"


def check_logger_packages(text: str) -> None:
    """Refuse a logger named in ``text`` whose package is not installed.

    Args:
        text: Anything that names loggers: a class path, a parse error's message.

    Raises:
        ConfigError: Naming ``trainer.logger``, the logger, and how to install its package.
    """
    for name, (module, install) in LOGGER_PACKAGES.items():
        if re.search(rf"\b{name}\b", text) and importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"--trainer.logger {name} needs the {module} package, which is not installed: "
                f"{install}"
            )
    database = MLFLOW_DATABASE.search(text)
    if database and re.search(r"\bMLFlowLogger\b", text):
        for module in MLFLOW_DATABASE_PACKAGES:
            if importlib.util.find_spec(module) is None:
                what = f"--trainer.logger MLFlowLogger's {database.group(1)}: tracking_uri"
                raise missing_extra(what, module, "mlflow")


def check_mlflow_store(message: str) -> None:
    """Refuse MLflow 3's refusal of a ``file:`` store with what to give instead.

    ``MLFlowLogger`` writes to ``./mlruns`` by default, a file store, which MLflow 3 refuses
    unless ``MLFLOW_ALLOW_FILE_STORE=true`` is set.

    Args:
        message: What building the loggers raised.

    Raises:
        ConfigError: Naming ``trainer.logger`` and a local sqlite store to give.
    """
    if "MLFLOW_ALLOW_FILE_STORE" in message:
        raise ConfigError(
            "--trainer.logger MLFlowLogger: MLflow 3 refuses a file: store unless "
            "MLFLOW_ALLOW_FILE_STORE=true is set; for a local store give "
            f"--trainer.logger.tracking_uri {LOCAL_MLFLOW_STORE}"
        )


def given_loggers(option: object) -> list[Logger]:
    """The loggers the trainer's ``logger`` option gives: none for ``None``, ``True``, ``False``."""
    if isinstance(option, Logger):
        return [option]
    if isinstance(option, list | tuple):
        return [logger for logger in option if isinstance(logger, Logger)]
    return []


def probe_loggers(loggers: Iterable[Logger]) -> None:
    """Refuse loggers whose folder could not be written, before the run folder exists.

    Each logger with a local folder (``save_dir``: TensorBoard, CSV, MLflow's file store)
    must be able to create it: its nearest existing parent is a writable folder. A logger
    that would write inside an existing run's folder is refused: it would change that run.
    Nothing is created.

    Args:
        loggers: The user's loggers (the trainer's ``logger`` option, as a list).

    Raises:
        ConfigError: Naming ``trainer.logger`` and the logger.
    """
    for logger in loggers:
        name = type(logger).__name__
        try:
            save_dir = logger.save_dir
        except Exception:  # a logger that cannot say has nothing local to check
            continue
        if not save_dir:
            continue
        folder = Path(str(save_dir).removeprefix("file:"))
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise ConfigError(
                f"--trainer.logger {name}: cannot create its save_dir {folder} "
                f"({existing} is a file)"
            )
        problem = unwritable(existing)
        if problem is not None:
            raise ConfigError(
                f"--trainer.logger {name}: cannot create its save_dir {folder} "
                f"(cannot write in {existing}: {problem})"
            )
        log_dir = _log_dir(logger)
        run = run_folder_of(log_dir.resolve() / "metrics.csv") if log_dir else None
        if run is not None:
            raise ConfigError(
                f"--trainer.logger {name}: it would write in {log_dir}, inside the run in "
                f"{run}; give it another save_dir, name or version"
            )


def _log_dir(logger: Logger) -> Path | None:
    """Where ``logger`` writes its files, if it says without creating anything."""
    version = getattr(logger, "_version", None)
    if version is None:
        return None  # a new version, which no run has yet
    try:
        log_dir = getattr(logger, "log_dir", None)
    except Exception:
        return None
    return Path(log_dir) if log_dir else None
