"""The callbacks a run calls: the loggers', the user's, the default checkpoints', the display."""

from __future__ import annotations

from collections.abc import Sequence

from fedrl_lightning.federation.callbacks.base import Callback
from fedrl_lightning.federation.callbacks.best_checkpoint import BestCheckpoint
from fedrl_lightning.federation.callbacks.progress import ProgressDisplay
from fedrl_lightning.federation.callbacks.round_checkpoint import RoundCheckpoint
from fedrl_lightning.federation.callbacks.round_logging import RoundLogging
from fedrl_lightning.federation.loggers import LoggerOption

__all__ = ["run_callbacks"]


def run_callbacks(
    logger: LoggerOption, given: Sequence[Callback], enable_progress_bar: bool
) -> list[Callback]:
    """Every callback of a run, in the order they are called.

    A run without a :class:`RoundCheckpoint` or a :class:`BestCheckpoint` among ``given``
    gets the default one, as Lightning adds a ``ModelCheckpoint``.

    Args:
        logger: ``trainer.logger``, for :class:`RoundLogging`.
        given: ``trainer.callbacks``.
        enable_progress_bar: Whether :class:`ProgressDisplay` shows the bar.

    Returns:
        The logging, the given callbacks, the default checkpoints, and the display.
    """
    defaults = [
        cls()
        for cls in (RoundCheckpoint, BestCheckpoint)
        if not any(isinstance(c, cls) for c in given)
    ]
    return [RoundLogging(logger), *given, *defaults, ProgressDisplay(enable_progress_bar)]
