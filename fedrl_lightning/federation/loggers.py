"""A run's loggers: ``metrics.csv`` always, then TensorBoard by default, or any Lightning Logger."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.loggers.tensorboard import _TENSORBOARD_AVAILABLE
from typing_extensions import override

from fedrl_lightning.checkpoints import atomic_write_text
from fedrl_lightning.federation.metrics_csv import RoundCSVLogger
from fedrl_lightning.federation.run_folder import RunFolder

__all__ = ["LoggerOption", "RunTensorBoardLogger", "run_loggers"]

LoggerOption = bool | Logger | list[Logger] | None
"""The trainer's ``logger``: ``None`` or ``True`` (the default), ``False``, or loggers."""


class RunTensorBoardLogger(TensorBoardLogger):
    """The default logger: TensorBoard events in the run folder, and its ``hparams.yaml``.

    Lightning's ``TensorBoardLogger`` writes ``hparams.yaml`` once, in place, with whatever
    hyperparameters it was given by then (none, for a federated run). This one writes the
    run's resolved config there, to a temporary file renamed into place.
    """

    _unsaved_hparams = False

    @override
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        super().log_hyperparams(params, *args, **kwargs)
        self._unsaved_hparams = True

    @override
    def save(self) -> None:
        self.experiment.flush()
        if self._unsaved_hparams:  # once per run, not every round
            path = RunFolder(self.log_dir).path / self.NAME_HPARAMS_FILE
            atomic_write_text(yaml.safe_dump(dict(self.hparams), sort_keys=False), path)
            self._unsaved_hparams = False


def run_loggers(
    option: LoggerOption,
    run: RunFolder,
    history: Sequence[dict[str, Any]],
    completed_rounds: int,
) -> list[Logger]:
    """The loggers of a run: ``metrics.csv``'s first, then those ``option`` asks for.

    Args:
        option: ``None`` or ``True``: TensorBoard in the run folder, when it is installed, as
            Lightning's Trainer defaults; ``False``: no other logger; a ``Logger`` or a list of
            them: those.
        run: The run's folder.
        history: The rows of the rounds already done (a resumed run's).
        completed_rounds: How many rounds are done.
    """
    loggers: list[Logger] = [RoundCSVLogger(run.metrics, rows=list(history))]
    if option is None or option is True:
        if _TENSORBOARD_AVAILABLE:
            loggers.append(
                RunTensorBoardLogger(
                    save_dir=str(run.path.parent),
                    name="",
                    version=run.path.name,
                    default_hp_metric=False,
                    purge_step=completed_rounds + 1,  # hides events of unfinished rounds
                )
            )
    elif isinstance(option, Logger):
        loggers.append(option)
    elif option is not False:
        loggers += list(option)
    return loggers
