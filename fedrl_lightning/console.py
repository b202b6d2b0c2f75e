"""What a federated run shows on the console: one progress bar over rounds, nothing else."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from lightning.fabric.utilities.warnings import PossibleUserWarning
from tqdm.auto import tqdm

__all__ = ["quiet_lightning", "round_progress"]

LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")


@contextmanager
def quiet_lightning(verbose: bool) -> Iterator[None]:
    """Silence Lightning's per-fit banners and hints unless ``verbose``.

    Lightning's info messages (device banners, "fit stopped") and its
    ``PossibleUserWarning`` hints (such as the dataloader worker count, which cannot matter for
    an in-process rollout) would otherwise repeat for every agent of every round.
    """
    if verbose:
        yield
        return
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=PossibleUserWarning)
            warnings.filterwarnings("ignore", message=".*IterableDataset.*__len__")
            warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def round_progress(total: int, enabled: bool, done: int = 0) -> tqdm:
    """The progress bar over federated rounds, starting after the ``done`` rounds."""
    return tqdm(total=total, initial=done, desc="rounds", unit="round", disable=not enabled)
