"""``metrics.csv``: one row per round, always whole on disk."""

from __future__ import annotations

import csv
import io
from argparse import Namespace
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger
from typing_extensions import override

from fedrl_lightning.run.checkpoints import atomic_write_text

__all__ = ["RoundCSVLogger", "csv_text", "log_round"]


def csv_text(rows: list[dict[str, Any]]) -> str:
    """``rows`` as CSV, with the columns in the order they first appear."""
    columns = _columns(rows)
    return _header(columns) + _lines(rows, columns)


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns)


def _header(columns: list[str]) -> str:
    buffer = io.StringIO()
    csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n").writeheader()
    return buffer.getvalue()


def _lines(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buffer = io.StringIO()
    csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


class RoundCSVLogger(Logger):
    """A Lightning logger that keeps ``metrics.csv`` as one row per round.

    Lightning's ``CSVLogger`` appends rows, so a process killed mid-write can leave half a
    row, and it deletes the file when a run folder is reused. This logger holds the rows and
    rewrites the whole file to a temporary name, then renames it, on every ``save``: the file
    on disk is always complete. Logging a step that is already present replaces that row, so a
    resumed run never duplicates a round. The text of the rows already written is kept, so a
    save formats only the new rows, and a 10,000-round run does not format every row again
    every round; a new column or a replaced row formats the whole file again.

    Args:
        path: The CSV file to write.
        rows: Rows already logged (from the checkpoint being resumed), keyed by ``round``.
    """

    def __init__(self, path: Path, rows: list[dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self._rows: dict[int, dict[str, Any]] = {int(row["round"]): row for row in rows or []}
        # The text of the rows up to step _formatted_to with columns _formatted_columns.
        self._formatted = ""
        self._formatted_to: int | None = None
        self._formatted_columns: list[str] = []

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
        if self._formatted_to is not None and key <= self._formatted_to:
            self._formatted_to = None  # a row already formatted changes: format them all
        self._rows[key] = dict(metrics)

    @override
    def save(self) -> None:
        steps = sorted(self._rows)
        new = [self._rows[s] for s in steps if self._formatted_to is None or s > self._formatted_to]
        columns = self._formatted_columns
        if self._formatted_to is None or any(key not in columns for row in new for key in row):
            rows = [self._rows[s] for s in steps]
            self._formatted_columns = columns = _columns(rows)
            self._formatted = _lines(rows, columns)
        else:
            self._formatted += _lines(new, columns)
        self._formatted_to = steps[-1] if steps else None
        atomic_write_text(_header(columns) + self._formatted, self.path)

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
