"""Every callback of a run: the loggers', the user's, the checkpoints' and the display."""

from __future__ import annotations

from collections.abc import Sequence

from fedrl_lightning.federation.callbacks.base import Callback
from fedrl_lightning.federation.callbacks.best_checkpoint import BestCheckpoint
from fedrl_lightning.federation.callbacks.progress import ProgressDisplay
from fedrl_lightning.federation.callbacks.round_checkpoint import RoundCheckpoint
from fedrl_lightning.federation.callbacks.round_logging import RoundLogging
from fedrl_lightning.run.loggers import LoggerOption

__all__ = ["run_callbacks"]


def run_callbacks(
    logger: LoggerOption, given: Sequence[Callback], enable_progress_bar: bool
) -> list[Callback]:
    """The callbacks a run calls, in order.

    :class:`RoundLogging` comes first, so the loggers have a round's row before any other
    callback acts on it; then the user's callbacks; then a ``RoundCheckpoint()`` and a
    ``BestCheckpoint()`` unless the user gave one; the progress display comes last.

    Args:
        logger: The trainer's ``logger`` option.
        given: The user's callbacks (``trainer.callbacks``).
        enable_progress_bar: Draw the progress bar.

    Returns:
        The run's callbacks.
    """
    defaults = [
        cls()
        for cls in (RoundCheckpoint, BestCheckpoint)
        if not any(isinstance(c, cls) for c in given)
    ]
    return [RoundLogging(logger), *given, *defaults, ProgressDisplay(enable_progress_bar)]
