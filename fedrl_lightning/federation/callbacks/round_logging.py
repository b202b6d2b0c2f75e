"""The built-in callback that sends every round's metrics row to the run's loggers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml
from lightning.pytorch.loggers import Logger
from typing_extensions import override

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.callbacks.base import Callback
from fedrl_lightning.run.loggers import (
    LoggerOption,
    continue_mlflow_runs,
    log_config,
    mlflow_runs,
    run_loggers,
)
from fedrl_lightning.run.metrics_csv import RoundCSVLogger, log_round

if TYPE_CHECKING:
    from fedrl_lightning.federation.trainer import FederatedTrainer

__all__ = ["RoundLogging"]


class RoundLogging(Callback):
    """Log each round's row to ``metrics.csv`` and the trainer's ``logger``, ``step = round``.

    Every logger but the CSV also gets the run's resolved config as hyperparameters at the
    start (MLflow params, TensorBoard's ``hparams.yaml``). Every run has this callback. Its
    state is the MLflow runs it logs to, so a resumed run continues them (see
    :func:`~fedrl_lightning.run.loggers.continue_mlflow_runs`).

    Args:
        option: The trainer's ``logger`` option (see :func:`~fedrl_lightning.federation.
            loggers.run_loggers`).
    """

    def __init__(self, option: LoggerOption) -> None:
        self.option = option
        self.loggers: list[Logger] = []
        self._resumed_runs: list[str] = []

    @override
    def on_fit_start(self, trainer: FederatedTrainer) -> None:
        self.loggers = run_loggers(
            self.option, trainer.active_run, trainer.history, trainer.completed_rounds
        )
        continued = continue_mlflow_runs(self.loggers, self._resumed_runs)
        config = yaml.safe_load(trainer.run_config) if trainer.run_config else None
        if isinstance(config, dict):
            for logger in self.loggers:
                if not isinstance(logger, RoundCSVLogger):
                    try:
                        log_config(logger, config, continued=logger in continued)
                    except Exception as err:  # the logger's first write: nothing is lost yet
                        reason = " ".join(str(err).split()) or type(err).__name__
                        raise ConfigError(
                            f"--trainer.logger {type(logger).__name__}: cannot log ({reason})"
                        ) from None

    @override
    def state_dict(self) -> dict[str, Any]:
        runs = mlflow_runs(self.loggers)
        return {"mlflow_runs": runs} if runs else {}

    @override
    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._resumed_runs = [str(run_id) for run_id in state.get("mlflow_runs", [])]

    @override
    def on_round_end(self, trainer: FederatedTrainer, row: dict[str, Any]) -> None:
        log_round(self.loggers, row)

    @override
    def on_fit_end(self, trainer: FederatedTrainer) -> None:
        for logger in self.loggers:
            logger.finalize("success")

    @override
    def on_exception(self, trainer: FederatedTrainer, exception: BaseException) -> None:
        for logger in self.loggers:
            try:
                logger.finalize("failed")
            except Exception:  # the failure being reported is the one that matters
                continue
