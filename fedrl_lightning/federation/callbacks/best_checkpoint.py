"""BestCheckpoint: ``best.ckpt``, the round checkpoint with the best value of a metric."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from typing_extensions import override

from fedrl_lightning.federation.callbacks.base import Callback
from fedrl_lightning.federation.callbacks.monitor import Mode, check_monitor, improves
from fedrl_lightning.run.checkpoints import atomic_write_bytes

if TYPE_CHECKING:
    from fedrl_lightning.federation.trainer import FederatedTrainer
    from fedrl_lightning.learners import Learner

__all__ = ["BestCheckpoint"]


class BestCheckpoint(Callback):
    """Keep ``checkpoints/best.ckpt``: the round with the best ``monitor`` so far.

    As Stable-Baselines3's ``EvalCallback`` keeps its best model, and Lightning's
    ``ModelCheckpoint(monitor=...)`` its best epoch. The first of equal rounds is kept. The
    best round derives from the run's history, so this callback has no state of its own; a
    run resumed from an earlier round, whose later rounds are discarded, gets the best of the
    rounds it keeps (or no ``best.ckpt``, when that round's checkpoint is no longer there).
    A run without a ``BestCheckpoint`` among its callbacks gets ``BestCheckpoint()``.

    Args:
        monitor: The metric, a column of ``metrics.csv``, such as ``eval_reward`` or
            ``eval_reward_min``.
        mode: ``max`` if higher is better, ``min`` if lower is.
    """

    def __init__(self, monitor: str = "eval_reward", mode: Mode = "max") -> None:
        self.monitor = monitor
        self.mode = mode

    @property
    @override
    def state_key(self) -> str:
        return f"BestCheckpoint{{'monitor': {self.monitor!r}, 'mode': {self.mode!r}}}"

    def best_round(self, history: Sequence[dict[str, Any]]) -> int:
        """The round of ``history`` with the best ``monitor``, the first of equals."""
        best = history[0]
        for row in history[1:]:
            if improves(float(row[self.monitor]), float(best[self.monitor]), self.mode):
                best = row
        return int(best["round"])

    @override
    def setup(self, trainer: FederatedTrainer, model: Learner) -> None:
        check_monitor(trainer, "BestCheckpoint", self.monitor, self.mode)

    @override
    def on_fit_start(self, trainer: FederatedTrainer) -> None:
        if not trainer.history:
            return
        run, best = trainer.active_run, self.best_round(trainer.history)
        done = trainer.completed_rounds
        source = run.last_checkpoint if best == done else run.round_checkpoint(best)
        if source.is_file():
            self._keep(source, run.best_checkpoint)
        else:  # the best kept round's file was deleted: no best.ckpt rather than a wrong one
            run.best_checkpoint.unlink(missing_ok=True)

    @override
    def on_round_saved(self, trainer: FederatedTrainer, round_idx: int, checkpoint: Path) -> None:
        if self.best_round(trainer.history) == round_idx:
            self._keep(checkpoint, trainer.active_run.best_checkpoint)

    @staticmethod
    def _keep(source: Path, target: Path) -> None:
        """Make ``target`` a copy of ``source``, atomically, unless it already is one."""
        data = source.read_bytes()
        if not target.is_file() or target.read_bytes() != data:
            atomic_write_bytes(data, target)
