"""One round's local fits: sending them to the executor, and reading back what agents sent."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NamedTuple

import torch

from fedrl_lightning.checkpoints import policy_checkpoint, serialize
from fedrl_lightning.errors import FederationError
from fedrl_lightning.federation.client import LocalFit
from fedrl_lightning.federation.executor import Executor, describe_failure
from fedrl_lightning.federation.strategies import AgentUpdate
from fedrl_lightning.federation.updates import InvalidUpdate, read_update

__all__ = [
    "SubmittedRound",
    "TrainedRound",
    "collect_round",
    "lr_scale",
    "submit_round",
    "training_metrics",
]

log = logging.getLogger(__name__)


class SubmittedRound(NamedTuple):
    """A round's local fits, handed to the executor.

    Attributes:
        round_idx: The round.
        tasks: One fit per sampled agent, in order.
        sent_state: What each agent is sent and sends back: the global weights without the
            agent-scoped entries (its task's entries have the same names and shapes).
        sent_bytes: The size of what each agent is sent: that state, as saved (with IFCA,
            every cluster's model, each as saved).
        statistics: Names of the model's running statistics modules, whose fit statistics
            every agent must send back.
        clusters: With IFCA, how many cluster models each agent is sent (and chooses among);
            0 otherwise.
    """

    round_idx: int
    tasks: list[LocalFit]
    sent_state: dict[str, torch.Tensor]
    sent_bytes: int
    statistics: tuple[str, ...] = ()
    clusters: int = 0


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
    executor: Executor,
    tasks: list[LocalFit],
    model_hparams: dict[str, Any],
    statistics: tuple[str, ...] = (),
) -> SubmittedRound:
    """Start ``tasks``, one round's fits from the same global weights, on ``executor``.

    Each agent is sent the global weights, or with IFCA every cluster's model.
    """
    executor.submit(tasks)
    personal = set(tasks[0].personal_names)

    def sent_part(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v for k, v in state.items() if k not in personal}

    sent = sent_part(tasks[0].global_state)
    learner = tasks[0].module_class.__name__
    models = tasks[0].cluster_states or (tasks[0].global_state,)
    sent_bytes = sum(
        len(serialize(policy_checkpoint(sent_part(state), model_hparams, learner)))
        for state in models
    )
    clusters = len(tasks[0].cluster_states)
    return SubmittedRound(tasks[0].round_idx, tasks, sent, sent_bytes, statistics, clusters)


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
                        path,
                        task.agent_id,
                        submitted.sent_state,
                        submitted.statistics,
                        submitted.clusters,
                    )
                )
        except (OSError, InvalidUpdate) as err:
            failures[task.agent_id] = describe_failure(err)
        finally:
            if not keep_agent_checkpoints:
                path.unlink(missing_ok=True)
    for task in submitted.tasks:  # a failed agent's new personal values are not kept
        if task.agent_id in failures and task.personal_path is not None:
            task.personal_path.unlink(missing_ok=True)
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


def lr_scale(schedule: str, round_idx: int, num_rounds: int) -> float:
    """The factor on the learners' learning rate in round ``round_idx`` of ``num_rounds``.

    ``schedule`` is ``constant`` (1), or ``linear``: ``1 - (round_idx - 1) / num_rounds``.
    """
    if schedule == "constant":
        return 1.0
    return 1.0 - (round_idx - 1) / num_rounds


def training_metrics(updates: list[AgentUpdate]) -> dict[str, float]:
    """The round's ``train_<name>`` columns: each metric every agent reported, averaged."""
    names = [n for n in updates[0].metrics if all(n in u.metrics for u in updates[1:])]
    return {f"train_{n}": sum(u.metrics[n] for u in updates) / len(updates) for n in names}
