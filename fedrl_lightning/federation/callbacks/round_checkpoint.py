"""RoundCheckpoint: which rounds keep a ``round-NNNN.ckpt`` of their own."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from typing_extensions import override

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.callbacks.base import Callback
from fedrl_lightning.run.checkpoints import atomic_write_bytes

if TYPE_CHECKING:
    from fedrl_lightning.federation.trainer import FederatedTrainer

__all__ = ["RoundCheckpoint"]


class RoundCheckpoint(Callback):
    """Keep ``checkpoints/round-NNNN.ckpt`` of every n-th round, the newest ``keep_last``.

    ``last.ckpt`` is written after every round whatever this says: a run always resumes
    from its newest round. The round files are what ``--ckpt_path`` can go back to, so a
    10,000-round run can keep, say, every 100th round, or only the last 5. A run without a
    ``RoundCheckpoint`` among its callbacks gets ``RoundCheckpoint()``: every round, all kept.

    Args:
        every_n_rounds: Keep the rounds that are multiples of this.
        keep_last: How many round files to keep, the newest (older ones are deleted, those
            of earlier runs in the folder too); ``None``: all.
    """

    def __init__(self, every_n_rounds: int = 1, keep_last: int | None = None) -> None:
        if every_n_rounds < 1:
            raise ConfigError(
                f"trainer.callbacks: RoundCheckpoint.every_n_rounds must be at least 1, "
                f"got {every_n_rounds}"
            )
        if keep_last is not None and keep_last < 1:
            raise ConfigError(
                f"trainer.callbacks: RoundCheckpoint.keep_last must be at least 1 or null, "
                f"got {keep_last}"
            )
        self.every_n_rounds = every_n_rounds
        self.keep_last = keep_last

    @override
    def on_fit_start(self, trainer: FederatedTrainer) -> None:
        # A process killed after writing last.ckpt, before copying it, resumes that round here.
        done, run = trainer.completed_rounds, trainer.active_run
        if done and run.last_checkpoint.is_file() and not run.round_checkpoint(done).is_file():
            self.on_round_saved(trainer, done, run.last_checkpoint)

    @override
    def on_round_saved(self, trainer: FederatedTrainer, round_idx: int, checkpoint: Path) -> None:
        if round_idx % self.every_n_rounds == 0:
            atomic_write_bytes(
                checkpoint.read_bytes(), trainer.active_run.round_checkpoint(round_idx)
            )
        if self.keep_last is not None:
            rounds = trainer.active_run.round_checkpoints
            for old in sorted(rounds)[: -self.keep_last]:
                rounds[old].unlink(missing_ok=True)
