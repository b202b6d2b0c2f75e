"""EarlyStopping: end a run once a metric reaches a threshold, or stops improving."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from typing_extensions import override

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.callbacks.base import Callback
from fedrl_lightning.federation.callbacks.monitor import Mode, check_monitor, improves

if TYPE_CHECKING:
    from fedrl_lightning.federation.trainer import FederatedTrainer
    from fedrl_lightning.learners import Learner

__all__ = ["EarlyStopping"]


class EarlyStopping(Callback):
    """End the run once ``monitor`` reaches ``stopping_threshold``, or stops improving.

    The run ends after the round at which the metric reaches the threshold, or has not
    improved for ``patience`` rounds: Lightning's ``EarlyStopping``, over rounds.
    ``EarlyStopping(monitor="eval_reward_min", stopping_threshold=475)`` ends a CartPole run
    once its worst evaluated agent scores 475.
    The run ends cleanly, with that round's checkpoint as ``last.ckpt``. Resumed with the
    same ``num_rounds``, a run this callback stopped stays stopped while its criterion still
    holds for its last round, as a finished run resumed runs no round: so a process killed
    just after the stop resumes to the same result. ``--ckpt_path last`` with a larger
    ``num_rounds`` continues it, and the criterion is checked again after every new round (a
    threshold still met stops it after the next one: change or remove the callback to train
    on past it). Its state (the best value, the rounds since it improved, the round it stopped
    at and the run's ``num_rounds`` then) is saved in every round checkpoint, so a resumed run
    counts on exactly.

    Args:
        monitor: The metric, a column of ``metrics.csv``: ``eval_reward``,
            ``eval_reward_min``, ``train_reward``, ``eval_reward_per_agent/3``, ...
        mode: ``max`` if higher is better, ``min`` if lower is.
        stopping_threshold: Stop as soon as the metric is at least this (``max``) or at most
            this (``min``); ``None``: no threshold.
        patience: Stop after this many rounds in a row whose metric did not improve on the
            best so far by more than ``min_delta``; ``None``: never for this reason.
        min_delta: The least change that counts as an improvement.
    """

    def __init__(
        self,
        monitor: str = "eval_reward",
        mode: Mode = "max",
        stopping_threshold: float | None = None,
        patience: int | None = None,
        min_delta: float = 0.0,
    ) -> None:
        if stopping_threshold is None and patience is None:
            raise ConfigError(
                "trainer.callbacks: EarlyStopping needs stopping_threshold or patience"
            )
        if patience is not None and patience < 1:
            raise ConfigError(
                f"trainer.callbacks: EarlyStopping.patience must be at least 1, got {patience}"
            )
        if not min_delta >= 0:
            raise ConfigError(
                f"trainer.callbacks: EarlyStopping.min_delta must not be negative, got {min_delta}"
            )
        self.monitor = monitor
        self.mode = mode
        self.stopping_threshold = stopping_threshold
        self.patience = patience
        self.min_delta = min_delta
        self.best: float | None = None
        self.wait = 0
        self.stopped_round = 0
        self.stopped_num_rounds = 0

    @property
    @override
    def state_key(self) -> str:
        return f"EarlyStopping{{'monitor': {self.monitor!r}, 'mode': {self.mode!r}}}"

    @override
    def setup(self, trainer: FederatedTrainer, model: Learner) -> None:
        check_monitor(trainer, "EarlyStopping", self.monitor, self.mode)

    @override
    def on_fit_start(self, trainer: FederatedTrainer) -> None:
        stopped_here = trainer.history and self.stopped_round == trainer.completed_rounds
        if stopped_here and trainer.num_rounds <= self.stopped_num_rounds:
            reason = self._reason(float(trainer.history[-1][self.monitor]))
            if reason is not None:
                trainer.stop(f"EarlyStopping: {reason}")

    @override
    def on_round_end(self, trainer: FederatedTrainer, row: dict[str, Any]) -> None:
        value = float(row[self.monitor])
        if math.isfinite(value) and (
            self.best is None or improves(value, self.best, self.mode, self.min_delta)
        ):
            self.best, self.wait = value, 0
        else:
            self.wait += 1
        reason = self._reason(value)
        if reason is not None:
            self.stopped_round, self.stopped_num_rounds = int(row["round"]), trainer.num_rounds
            trainer.stop(f"EarlyStopping: {reason}")

    def _reason(self, value: float) -> str | None:
        """Why the run stops after a round whose metric is ``value``; ``None``: it goes on."""
        threshold = self.stopping_threshold
        if threshold is not None and math.isfinite(value):
            if (value >= threshold) if self.mode == "max" else (value <= threshold):
                sign = ">=" if self.mode == "max" else "<="
                return f"{self.monitor} {value:g} {sign} {threshold:g}"
        if self.patience is not None and self.wait >= self.patience:
            best = "no finite value" if self.best is None else f"{self.best:g}"
            return (
                f"{self.monitor} has not improved on {best} for {self.wait} rounds "
                f"(patience {self.patience})"
            )
        return None

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "wait": self.wait,
            "stopped_round": self.stopped_round,
            "stopped_num_rounds": self.stopped_num_rounds,
        }

    @override
    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]
        self.wait = int(state["wait"])
        self.stopped_round = int(state["stopped_round"])
        self.stopped_num_rounds = int(state["stopped_num_rounds"])
