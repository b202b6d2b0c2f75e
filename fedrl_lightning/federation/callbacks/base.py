"""The base of federated callbacks: hooks around the round loop, and state that resumes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fedrl_lightning.federation.trainer import FederatedTrainer
    from fedrl_lightning.learners import Learner

__all__ = ["Callback"]


class Callback:
    """Hooks that a :class:`~fedrl_lightning.FederatedTrainer` calls around its rounds.

    Like Lightning's ``Callback``, but over federated rounds rather than epochs. A run calls,
    in order: :meth:`setup` (before the run folder exists: check options here), then
    :meth:`on_fit_start`; for every round, :meth:`on_round_start`, :meth:`on_round_end` with
    the round's metrics row, and :meth:`on_round_saved` once the round checkpoint is written;
    finally :meth:`on_fit_end`, or :meth:`on_exception` when the run fails or is interrupted.

    The round's local fits are submitted before its ``on_round_start`` (under Ray they train
    while the previous round is evaluated), so hooks observe and decide, they do not change a
    round's training. ``on_round_end`` and ``on_round_saved`` run while signals are deferred,
    with the round's checkpoint, so a run stopped by SIGINT never saves half a round.

    What :meth:`state_dict` returns is saved in every round checkpoint under
    :attr:`state_key` and given back to :meth:`load_state_dict` when the run resumes, so a
    resumed run continues the callback exactly. It must hold only tensors, numbers, strings
    and plain containers: checkpoints load with ``weights_only=True``.
    """

    @property
    def state_key(self) -> str:
        """The key of this callback's state in a round checkpoint; unique within a run."""
        return type(self).__qualname__

    def setup(self, trainer: FederatedTrainer, model: Learner) -> None:
        """Check the callback's options against the run before anything is written.

        Raise :class:`~fedrl_lightning.errors.ConfigError` to refuse them in one line.
        """

    def on_fit_start(self, trainer: FederatedTrainer) -> None:
        """The run folder is ready and, when resuming, the state loaded; rounds come next."""

    def on_round_start(self, trainer: FederatedTrainer, round_idx: int) -> None:
        """Round ``round_idx`` (1-based) begins."""

    def on_round_end(self, trainer: FederatedTrainer, row: dict[str, Any]) -> None:
        """Round ``row["round"]`` ended with the metrics ``row``; ``trainer.history`` holds it.

        Call ``trainer.stop(reason)`` to end the run after this round.
        """

    def on_round_saved(self, trainer: FederatedTrainer, round_idx: int, checkpoint: Path) -> None:
        """Round ``round_idx``'s checkpoint, holding every callback's state, is ``checkpoint``."""

    def on_fit_end(self, trainer: FederatedTrainer) -> None:
        """The run ended: its last round is done, or a callback stopped it."""

    def on_exception(self, trainer: FederatedTrainer, exception: BaseException) -> None:
        """The run ended with ``exception``: a failure, or an interrupting signal."""

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to continue this callback; empty for a stateless one."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output, saved in the checkpoint being resumed."""
