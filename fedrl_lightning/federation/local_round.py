"""One round's local fits: sending them to the executor, and reading back what agents sent."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NamedTuple

import torch

from fedrl_lightning.errors import FederationError
from fedrl_lightning.federation.executors.base import Executor, describe_failure
from fedrl_lightning.federation.messages import AgentUpdate, LocalFit
from fedrl_lightning.federation.updates import InvalidUpdate, read_update
from fedrl_lightning.run.checkpoints import policy_checkpoint, serialize

__all__ = [
    "SubmittedRound",
    "TrainedRound",
    "collect_round",
    "sent_state",
    "submit_round",
    "training_metrics",
]

log = logging.getLogger(__name__)


class SubmittedRound(NamedTuple):
    """A round's local fits, handed to the executor.

    Attributes:
        round_idx: The round.
        tasks: One fit per sampled agent, in order.
        sent_bytes: The size of what the agents are sent, all together: each one's start
            state without its agent-scoped entries, as saved (with IFCA, every cluster's
            model, each as saved), and what its parts send beside it.
        statistics: Names of the model's running statistics modules, whose fit statistics
            every agent must send back.
    """

    round_idx: int
    tasks: list[LocalFit]
    sent_bytes: int
    statistics: tuple[str, ...] = ()


def sent_state(task: LocalFit) -> dict[str, torch.Tensor]:
    """What ``task``'s agent is sent and sends back, as its parts say (``FitPart.reference``)."""
    state = task.global_state
    for part in task.extras.values():
        state = part.reference(state)
    return state


class TrainedRound(NamedTuple):
    """What a round's local fits produced.

    Attributes:
        agents: The agents sampled, in order.
        updates: The updates of the agents that succeeded.
        failures: Why each failed agent failed, by agent id.
        bytes_received: The size of the checkpoints the agents sent back.
    """

    agents: list[int]
    updates: list[AgentUpdate]
    failures: dict[int, str]
    bytes_received: int


def submit_round(
    executor: Executor, tasks: list[LocalFit], statistics: tuple[str, ...] = ()
) -> SubmittedRound:
    """Start ``tasks``, one round's fits from the same global weights, on ``executor``.

    Each agent is sent the global weights, or with IFCA every cluster's model, or in
    distillation the consensus (and the probe states, the first time).
    """
    executor.submit(tasks)
    sent_bytes = sum(_saved_size(task) * _copies(task) for task in tasks)
    return SubmittedRound(tasks[0].round_idx, tasks, sent_bytes, statistics)


def _copies(task: LocalFit) -> int:
    """How many models of the global layout ``task``'s agent is sent (IFCA: every cluster's)."""
    copies = 1
    for part in task.extras.values():
        copies *= part.copies()
    return copies


_SIZES: dict[tuple[Any, ...], int] = {}


def _saved_size(task: LocalFit) -> int:
    """The size of what ``task``'s agent is sent, as saved.

    It depends on the entries' names, shapes and dtypes and on the hyperparameters, not on
    the values, so it is computed once for each such layout.
    """
    sent = sent_state(task)
    message: dict[str, torch.Tensor] = {}
    for part in task.extras.values():
        message |= part.message()
    layout = (
        task.module_class.__name__,
        repr(sorted(task.model_hparams.items())),
        tuple((name, tuple(value.shape), value.dtype) for name, value in sent.items()),
        tuple((name, tuple(value.shape), value.dtype) for name, value in message.items()),
    )
    if layout not in _SIZES:
        name = task.module_class.__name__
        checkpoint = policy_checkpoint(sent, task.model_hparams, name, **message)
        _SIZES[layout] = len(serialize(checkpoint))
    return _SIZES[layout]


def collect_round(
    executor: Executor,
    submitted: SubmittedRound,
    min_agents: int,
    keep_agent_checkpoints: bool = False,
    verbose: bool = False,
) -> TrainedRound:
    """Wait for a submitted round and read every agent's checkpoint as an update.

    An agent whose fit failed, or whose checkpoint is unreadable or invalid, is a failure.
    Agents' checkpoints are deleted once read, unless ``keep_agent_checkpoints``.

    Raises:
        FederationError: If fewer than ``min_agents`` agents succeeded.
    """
    failures = executor.collect()
    updates: list[AgentUpdate] = []
    bytes_received = 0
    for task in submitted.tasks:
        path: Path = task.checkpoint_path
        try:
            if task.agent_id not in failures:
                bytes_received += path.stat().st_size
                updates.append(
                    read_update(
                        path, task.agent_id, sent_state(task), submitted.statistics, task.extras
                    )
                )
        except (OSError, InvalidUpdate) as err:
            failures[task.agent_id] = describe_failure(err)
        finally:
            if not keep_agent_checkpoints:
                path.unlink(missing_ok=True)
    for task in submitted.tasks:  # a failed agent's new personal values are not kept
        if task.agent_id in failures:
            for part in task.extras.values():
                part.discard()
    round_idx = submitted.round_idx
    if verbose:
        for agent_id, reason in sorted(failures.items()):
            log.warning("round %d: agent %d failed: %s", round_idx, agent_id, reason)
    agents = [task.agent_id for task in submitted.tasks]
    if len(updates) < min_agents:
        first = min(failures)
        raise FederationError(
            f"round {round_idx}: {len(updates)} of {len(agents)} agents succeeded, fewer than "
            f"trainer.min_agents_per_round ({min_agents}); agent {first} "
            f"failed with {failures[first]}"
        )
    return TrainedRound(agents, updates, failures, bytes_received)


def training_metrics(updates: list[AgentUpdate]) -> dict[str, float]:
    """The round's ``train_<name>`` columns: each metric every agent reported, averaged."""
    names = [n for n in updates[0].metrics if all(n in u.metrics for u in updates[1:])]
    return {f"train_{n}": sum(u.metrics[n] for u in updates) / len(updates) for n in names}
