"""Reading an agent's checkpoint into an update, and refusing updates that cannot be used."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.components.base import FitPart, InvalidUpdate
from fedrl_lightning.federation.local_fit import AGENT_STATS_KEY, FIT_STATISTICS_KEY
from fedrl_lightning.federation.messages import AgentUpdate
from fedrl_lightning.policy.normalization import RunningMeanStd
from fedrl_lightning.run.checkpoints import load_checkpoint

__all__ = ["SENDS_KEY", "InvalidUpdate", "read_update"]

SENDS_KEY = "sends"
"""What an agent's checkpoint says its ``state_dict`` holds, when not trained weights."""


def read_update(
    path: Path,
    agent_id: int,
    reference: dict[str, torch.Tensor],
    statistics: Sequence[str] = (),
    extras: Mapping[str, FitPart] | None = None,
) -> AgentUpdate:
    """Load agent ``agent_id``'s checkpoint and check it before it reaches aggregation.

    The checkpoint is untrusted: it is loaded with ``weights_only=True``, its weights must
    have exactly the global model's names and shapes and be finite, and it must hold valid
    fit statistics (a count, finite means and non-negative M2s) for each running statistic.
    Each part of the fit then reads and checks its own reply (:meth:`FitPart.read`).

    Args:
        path: The agent's checkpoint.
        agent_id: The agent that wrote it.
        reference: What the agent was sent (the start weights it sends back a change of).
        statistics: Names of the model's running statistics modules.
        extras: The parts of the agent's fit (``LocalFit.extras``), by component name.

    Raises:
        InvalidUpdate: With the reason, if the update cannot be used.
    """
    extras = extras or {}
    try:
        checkpoint = load_checkpoint(path)
    except ConfigError as err:
        raise InvalidUpdate(str(err)) from None
    state_dict = checkpoint["state_dict"]
    stats = checkpoint.get(AGENT_STATS_KEY)
    if not isinstance(stats, dict):
        raise InvalidUpdate(f"{path}: no {AGENT_STATS_KEY}")
    asked = next((part.sends for part in extras.values() if part.sends), "weights")
    sends = checkpoint.get(SENDS_KEY, "weights")
    if sends != asked:
        expected = "weights" if asked == "weights" else f"a {asked}"
        raise InvalidUpdate(f"{path}: it holds {sends!r}, and the server asked for {expected}")
    if set(state_dict) != set(reference):
        raise InvalidUpdate(f"{path}: its weights have other names than the global model's")
    for key, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor) or tensor.shape != reference[key].shape:
            raise InvalidUpdate(f"{path}: {key} does not have the global model's shape")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise InvalidUpdate(f"{path}: {key} has NaN or Inf values")
    try:
        replies = {name: part.read(checkpoint, stats, path) for name, part in extras.items()}
        update = AgentUpdate(
            agent_id=agent_id,
            state_dict=state_dict,
            num_episodes=int(stats["num_episodes"]),
            num_steps=int(stats["num_steps"]),
            mean_return=float(stats["mean_return"]),
            statistics=_fit_statistics(path, checkpoint, reference, statistics),
            metrics=_metrics(stats.get("metrics", {})),
            extras={name: reply for name, reply in replies.items() if reply is not None},
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


def _metrics(sent: object) -> dict[str, float]:
    """An agent's training metrics, by name; the finite numbers among what it sent."""
    if not isinstance(sent, dict):
        return {}
    metrics = {}
    for name, value in sent.items():
        if isinstance(name, str) and isinstance(value, int | float) and math.isfinite(value):
            metrics[name] = float(value)
    return metrics
