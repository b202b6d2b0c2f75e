"""Federated callbacks: hooks around the round loop, as Lightning's callbacks are around epochs."""

from fedrl_lightning.federation.callbacks.base import Callback
from fedrl_lightning.federation.callbacks.best_checkpoint import BestCheckpoint
from fedrl_lightning.federation.callbacks.early_stopping import EarlyStopping
from fedrl_lightning.federation.callbacks.progress import ProgressDisplay
from fedrl_lightning.federation.callbacks.round_checkpoint import RoundCheckpoint
from fedrl_lightning.federation.callbacks.round_logging import RoundLogging

__all__ = [
    "BestCheckpoint",
    "Callback",
    "EarlyStopping",
    "ProgressDisplay",
    "RoundCheckpoint",
    "RoundLogging",
]
