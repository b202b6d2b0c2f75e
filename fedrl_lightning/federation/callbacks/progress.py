"""The built-in callback that shows progress over rounds on the console."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from typing_extensions import override

from fedrl_lightning.federation.callbacks.base import Callback
from fedrl_lightning.run.console import RoundProgress, progress_fields, round_progress

if TYPE_CHECKING:
    from fedrl_lightning.federation.trainer import FederatedTrainer

__all__ = ["ProgressDisplay"]


class ProgressDisplay(Callback):
    """One progress bar over rounds on a terminal, else one plain line per round.

    Every run has this callback; the trainer's ``enable_progress_bar`` turns the bar into
    plain lines.

    Args:
        enabled: Draw a bar (on a terminal).
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.display: RoundProgress | None = None

    @override
    def on_fit_start(self, trainer: FederatedTrainer) -> None:
        self.display = round_progress(trainer.num_rounds, self.enabled, trainer.completed_rounds)

    @override
    def on_round_end(self, trainer: FederatedTrainer, row: dict[str, Any]) -> None:
        assert self.display is not None  # on_fit_start made it
        self.display.set_postfix(progress_fields(row))
        self.display.update()

    @override
    def on_fit_end(self, trainer: FederatedTrainer) -> None:
        self._close()

    @override
    def on_exception(self, trainer: FederatedTrainer, exception: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self.display is not None:
            self.display.close()
            self.display = None
