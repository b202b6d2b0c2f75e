"""``metrics.csv``: one row per round, always whole on disk."""

from __future__ import annotations

import csv
import io
from argparse import Namespace
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger
from typing_extensions import override

from fedrl_lightning.checkpoints import atomic_write_text

__all__ = ["RoundCSVLogger", "csv_text", "log_round"]


def csv_text(rows: list[dict[str, Any]]) -> str:
    """``rows`` as CSV, with the columns in the order they first appear."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


class RoundCSVLogger(Logger):
    """A Lightning logger that keeps ``metrics.csv`` as one row per round.

    Lightning's ``CSVLogger`` appends rows, so a process killed mid-write can leave half a
    row, and it deletes the file when a run folder is reused. This logger holds the rows and
    rewrites the whole file to a temporary name, then renames it, on every ``save``: the file
    on disk is always complete. Logging a step that is already present replaces that row, so a
    resumed run never duplicates a round.

    Args:
        path: The CSV file to write.
        rows: Rows already logged (from the checkpoint being resumed), keyed by ``round``.
    """

    def __init__(self, path: Path, rows: list[dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self._rows: dict[int, dict[str, Any]] = {int(row["round"]): row for row in rows or []}

    @property
    @override
    def name(self) -> str:
        return self.path.parent.parent.name

    @property
    @override
    def version(self) -> str:
        return self.path.parent.name

    @property
    @override
    def save_dir(self) -> str:
        return str(self.path.parent.parent.parent)

    @override
    def log_hyperparams(
        self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        """Hyperparameters live in ``config.yaml``; the CSV holds only per-round rows."""

    @override
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        key = int(step) if step is not None else int(metrics["round"])
        self._rows[key] = dict(metrics)

    @override
    def save(self) -> None:
        atomic_write_text(csv_text([self._rows[step] for step in sorted(self._rows)]), self.path)

    @override
    def finalize(self, status: str) -> None:
        self.save()


def log_round(loggers: list[Logger], row: dict[str, Any]) -> None:
    """Send a round's metrics row to every logger: all of it to CSV, its numbers to others."""
    numbers = {k: v for k, v in row.items() if isinstance(v, int | float)}
    for logger in loggers:
        logger.log_metrics(
            row if isinstance(logger, RoundCSVLogger) else numbers, step=row["round"]
        )
        logger.save()
