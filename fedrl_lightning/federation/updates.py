"""Reading an agent's checkpoint into an update, and refusing updates that cannot be used."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.components.trajectory_buffer import EpisodeLayout, unpack_episodes
from fedrl_lightning.federation.local_fit import (
    AGENT_STATS_KEY,
    DISTRIBUTION_KEY,
    FIT_STATISTICS_KEY,
    SENDS_KEY,
    SHARED_EPISODES_KEY,
)
from fedrl_lightning.federation.strategies import AgentUpdate
from fedrl_lightning.policy.normalization import RunningMeanStd
from fedrl_lightning.run.checkpoints import load_checkpoint

__all__ = ["InvalidUpdate", "read_update"]


class InvalidUpdate(Exception):
    """An agent's checkpoint is unreadable, or holds weights that must not be aggregated."""


def read_update(
    path: Path,
    agent_id: int,
    reference: dict[str, torch.Tensor],
    statistics: Sequence[str] = (),
    clusters: int = 0,
    shared: EpisodeLayout | None = None,
    max_shared: int = 0,
    gradient: bool = False,
    distribution_shape: tuple[int, int] | None = None,
    num_cells: int = 0,
) -> AgentUpdate:
    """Load agent ``agent_id``'s checkpoint and check it before it reaches aggregation.

    The checkpoint is untrusted: it is loaded with ``weights_only=True``, its weights must
    have exactly the global model's names and shapes and be finite, and it must hold valid
    fit statistics (a count, finite means and non-negative M2s) for each running statistic.

    Args:
        path: The agent's checkpoint.
        agent_id: The agent that wrote it.
        reference: The global weights the agent started from.
        statistics: Names of the model's running statistics modules.
        clusters: With IFCA, how many clusters the agent chose among: its statistics must
            name one of them, and the steps it spent scoring them.
        shared: With trajectory sharing, the spaces of the episodes the agent uploads: they
            must have them, be finite, and number at most ``max_shared``.
        max_shared: The most episodes the agent may upload (its episodes in the round).
        gradient: Whether the agent was asked for a gradient (gradient sharing) rather than
            weights: the checkpoint must say it holds one, and its ``state_dict`` is then a
            gradient, checked as weights are (names, shapes, finite values).
        distribution_shape: In distillation, the shape of the action distribution on the
            probe states it must send: finite probabilities whose rows sum to 1.
        num_cells: With ``trainer.coverage``, the grid's cells: the agent's visited cells
            must be distinct ids below it; 0: it sends none.

    Raises:
        InvalidUpdate: With the reason, if the update cannot be used.
    """
    try:
        checkpoint = load_checkpoint(path)
    except ConfigError as err:
        raise InvalidUpdate(str(err)) from None
    state_dict = checkpoint["state_dict"]
    stats = checkpoint.get(AGENT_STATS_KEY)
    if not isinstance(stats, dict):
        raise InvalidUpdate(f"{path}: no {AGENT_STATS_KEY}")
    sends = checkpoint.get(SENDS_KEY, "weights")
    if sends != ("gradient" if gradient else "weights"):
        expected = "a gradient" if gradient else "weights"
        raise InvalidUpdate(f"{path}: it holds {sends!r}, and the server asked for {expected}")
    if set(state_dict) != set(reference):
        raise InvalidUpdate(f"{path}: its weights have other names than the global model's")
    for key, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor) or tensor.shape != reference[key].shape:
            raise InvalidUpdate(f"{path}: {key} does not have the global model's shape")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise InvalidUpdate(f"{path}: {key} has NaN or Inf values")
    try:
        update = AgentUpdate(
            agent_id=agent_id,
            state_dict=state_dict,
            num_episodes=int(stats["num_episodes"]),
            num_steps=int(stats["num_steps"]),
            mean_return=float(stats["mean_return"]),
            statistics=_fit_statistics(path, checkpoint, reference, statistics),
            metrics=_metrics(stats.get("metrics", {})),
            **(_cluster_choice(path, stats, clusters) if clusters else {}),
            **(_shared(path, checkpoint, shared, max_shared) if shared else {}),
            distribution=_distribution(path, checkpoint, distribution_shape),
            visited_cells=_visited_cells(path, stats, num_cells) if num_cells else None,
        )
    except (KeyError, TypeError, ValueError):
        raise InvalidUpdate(f"{path}: its {AGENT_STATS_KEY} are incomplete") from None
    if not math.isfinite(update.mean_return) or update.num_episodes <= 0:
        raise InvalidUpdate(f"{path}: its training statistics are not usable")
    return update


def _fit_statistics(
    path: Path, checkpoint: dict, reference: dict[str, torch.Tensor], names: Sequence[str]
) -> dict[str, RunningMeanStd]:
    """The checked fit statistics of each running statistic ``names`` lists."""
    sent = checkpoint.get(FIT_STATISTICS_KEY, {})
    parsed = {}
    for name in names:
        stats = RunningMeanStd(tuple(reference[f"{name}.mean"].shape))
        try:
            stats.load_state_dict(sent[name])
        except (KeyError, TypeError, ValueError) as err:
            raise InvalidUpdate(
                f"{path}: no usable {FIT_STATISTICS_KEY} for {name} ({err})"
            ) from None
        parsed[name] = stats
    return parsed


def _shared(path: Path, checkpoint: dict, layout: EpisodeLayout, most: int) -> dict[str, Any]:
    """The episodes an agent uploaded for trajectory sharing, checked, as ``shared_episodes``."""
    try:
        episodes = unpack_episodes(checkpoint.get(SHARED_EPISODES_KEY), layout)
    except ValueError as err:
        raise InvalidUpdate(f"{path}: {err}") from None
    if len(episodes) > most:
        raise InvalidUpdate(f"{path}: it shared {len(episodes)} episodes, more than its {most}")
    return {"shared_episodes": tuple(episodes)}


def _distribution(
    path: Path, checkpoint: dict, shape: tuple[int, int] | None
) -> torch.Tensor | None:
    """The action distribution an agent sent on the probe states, checked; ``None`` if none."""
    if shape is None:
        return None
    sent = checkpoint.get(DISTRIBUTION_KEY)
    if not isinstance(sent, torch.Tensor) or tuple(sent.shape) != tuple(shape):
        raise InvalidUpdate(f"{path}: no {DISTRIBUTION_KEY} of shape {list(shape)}")
    sent = sent.to(torch.float32)
    rows = sent.sum(-1)
    if not bool(torch.isfinite(sent).all()) or bool((sent < 0).any()):
        raise InvalidUpdate(f"{path}: its {DISTRIBUTION_KEY} has values that are no probabilities")
    if not bool(torch.allclose(rows, torch.ones_like(rows), atol=1e-4)):
        raise InvalidUpdate(f"{path}: its {DISTRIBUTION_KEY}'s rows do not sum to 1")
    return sent


def _cluster_choice(path: Path, stats: dict, clusters: int) -> dict[str, Any]:
    """The cluster an agent says it chose, one of ``clusters``, and its scoring steps."""
    cluster, steps = stats["cluster"], stats["cluster_eval_steps"]
    for value in (cluster, steps):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidUpdate(f"{path}: its cluster choice is not a number")
    if not 0 <= cluster < clusters or steps < 0:
        raise InvalidUpdate(f"{path}: it chose cluster {cluster}, not one of the {clusters}")
    return {"cluster": cluster, "cluster_eval_steps": steps}


def _visited_cells(path: Path, stats: dict, num_cells: int) -> torch.Tensor:
    """The distinct cell ids, each below ``num_cells``, an agent says it visited."""
    cells = stats["visited_cells"]
    if not isinstance(cells, torch.Tensor) or cells.dtype != torch.int64 or cells.ndim != 1:
        raise InvalidUpdate(f"{path}: its visited_cells are not a vector of cell ids")
    if cells.numel() and (int(cells.min()) < 0 or int(cells.max()) >= num_cells):
        raise InvalidUpdate(f"{path}: its visited_cells are not cells of the {num_cells}")
    return cells.unique()


def _metrics(sent: object) -> dict[str, float]:
    """An agent's training metrics, by name; the finite numbers among what it sent."""
    if not isinstance(sent, dict):
        return {}
    metrics = {}
    for name, value in sent.items():
        if isinstance(name, str) and isinstance(value, int | float) and math.isfinite(value):
            metrics[name] = float(value)
    return metrics
