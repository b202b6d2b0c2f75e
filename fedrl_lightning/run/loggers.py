"""A run's loggers: ``metrics.csv`` always, then TensorBoard by default, or any Lightning Logger."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml
from lightning.fabric.utilities.logger import _convert_params, _flatten_dict
from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger
from lightning.pytorch.loggers.tensorboard import _TENSORBOARD_AVAILABLE
from typing_extensions import override

from fedrl_lightning.run.checkpoints import atomic_write_text
from fedrl_lightning.run.metrics_csv import RoundCSVLogger
from fedrl_lightning.run.run_folder import RunFolder

__all__ = [
    "LoggerOption",
    "RunTensorBoardLogger",
    "continue_mlflow_runs",
    "log_config",
    "mlflow_runs",
    "run_loggers",
]

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


def mlflow_runs(loggers: Sequence[Logger]) -> list[str]:
    """The ids of the MLflow runs the loggers write to, in order, for a resume to continue."""
    runs = []
    for logger in loggers:
        if isinstance(logger, MLFlowLogger):
            run_id = logger.run_id  # starts the run if need be, which gives it its id
            assert run_id is not None
            runs.append(run_id)
    return runs


def continue_mlflow_runs(loggers: Sequence[Logger], run_ids: Sequence[str]) -> list[Logger]:
    """Point the run's MLflow loggers at the runs a resumed run logged to before.

    The ``n``-th ``MLFlowLogger`` continues the ``n``-th saved run, as if it had been built
    with ``run_id``, unless it was given a ``run_id`` of its own or its tracking server does
    not have that run (then it starts a new one, as before).

    Returns:
        The loggers that continue a run.
    """
    continued: list[Logger] = []
    mlflow = [logger for logger in loggers if isinstance(logger, MLFlowLogger)]
    for logger, run_id in zip(mlflow, run_ids, strict=False):
        if logger._run_id is not None:  # the user's own run_id wins
            continue
        try:
            logger._mlflow_client.get_run(run_id)
        except Exception:  # another tracking server, or the run was deleted
            continue
        logger._run_id = run_id  # what MLFlowLogger(run_id=...) would have set
        continued.append(logger)
    return continued


def log_config(logger: Logger, config: dict[str, Any], continued: bool) -> None:
    """Log the run's resolved config as ``logger``'s hyperparameters.

    A continued MLflow run keeps the params it has (MLflow refuses to change one): it gets
    the options that are new, and each changed value as a tag ``resumed/<option>``.
    """
    if not (continued and isinstance(logger, MLFlowLogger)):
        logger.log_hyperparams(config)
        return
    client, run_id = logger.experiment, logger.run_id
    logged = client.get_run(run_id).data.params
    flat = {key: str(value)[:250] for key, value in _flatten_dict(_convert_params(config)).items()}
    logger.log_hyperparams({key: value for key, value in flat.items() if key not in logged})
    for key, value in flat.items():
        if key in logged and logged[key] != value:
            client.set_tag(run_id, f"resumed/{key}", value)
