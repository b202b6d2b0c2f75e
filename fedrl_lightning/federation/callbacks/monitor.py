"""What callbacks that watch a metric share: checking its name, and comparing its values."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from fedrl_lightning.errors import ConfigError

if TYPE_CHECKING:
    from fedrl_lightning.federation.trainer import FederatedTrainer

__all__ = ["Mode", "check_monitor", "improves"]

Mode = Literal["max", "min"]
"""Whether higher (``max``) or lower (``min``) values of a monitored metric are better."""


def check_monitor(trainer: FederatedTrainer, owner: str, monitor: str, mode: str) -> None:
    """Refuse a ``monitor`` that is not a numeric metric of the run, or a bad ``mode``.

    Args:
        trainer: The trainer, whose :meth:`~FederatedTrainer.metric_names` lists the metrics.
        owner: The callback, as the message names it, such as ``EarlyStopping``.
        monitor: The metric's column name in ``metrics.csv``.
        mode: ``max`` or ``min``.

    Raises:
        ConfigError: Naming the callback's option.
    """
    if mode not in ("max", "min"):
        raise ConfigError(f"trainer.callbacks: {owner}.mode must be max or min, got {mode!r}")
    names = trainer.metric_names()
    if monitor not in names:
        listed = ", ".join(name for name in names if "_per_agent/" not in name)
        raise ConfigError(
            f"trainer.callbacks: {owner}.monitor {monitor!r} is not a metric of this run "
            f"(its metrics: {listed}, eval_reward_per_agent/K)"
        )


def improves(value: float, best: float, mode: str, min_delta: float = 0.0) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` in direction ``mode``."""
    return value > best + min_delta if mode == "max" else value < best - min_delta
