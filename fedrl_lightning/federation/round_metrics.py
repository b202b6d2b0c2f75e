"""A round's metrics row: what ``metrics.csv``, the loggers and the callbacks see."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fedrl_lightning.federation.local_round import SubmittedRound, TrainedRound, training_metrics
from fedrl_lightning.federation.server.shared import task_of
from fedrl_lightning.federation.strategies import AgentUpdate
from fedrl_lightning.learners import Learner

__all__ = [
    "finetuned_columns",
    "metric_names",
    "personalized_columns",
    "round_row",
    "task_columns",
    "upgraded_row",
]

NAN = float("nan")

ROUND_COLUMNS = (
    "round",
    "train_reward",
    "eval_reward",
    "eval_reward_min",
    "num_failed_agents",
    "num_byzantine_agents",
    "bytes_sent",
    "bytes_received",
    "episodes",
    "env_steps",
    "round_time",
)
"""The numeric columns of every row, besides the learner's and the evaluated agents'."""


def metric_names(
    model: Learner,
    evaluated: Sequence[int],
    personalized: bool = False,
    num_tasks: int = 1,
    finetuned: bool = False,
) -> list[str]:
    """Every numeric column a run of ``model`` evaluated on agents ``evaluated`` reports.

    ``personalized``: agents have parameters of their own, so the rows also report each
    evaluated agent's own policy; ``num_tasks``: tasks, each reported on its own when more
    than one; ``finetuned``: the rows also report the global policy fine-tuned on each
    evaluated agent (``trainer.finetune_episodes``).
    """
    learner = [f"train_{name}" for name in model.metric_names()]
    agents = [f"eval_reward_per_agent/{agent}" for agent in evaluated]
    names = [*ROUND_COLUMNS, *learner, *agents]
    returns = np.zeros(len(evaluated))
    if personalized:
        names += list(personalized_columns(evaluated, returns))
    if num_tasks > 1:
        names += [f"{kind}_per_task/{t}" for kind in TASK_KINDS for t in range(num_tasks)]
    if finetuned:
        names += list(finetuned_columns(evaluated, returns))
    return names


TASK_KINDS = ("train_reward", "eval_reward")


def task_columns(
    evaluated: Sequence[int],
    per_agent: np.ndarray,
    updates: Sequence[AgentUpdate],
    task_sizes: Sequence[int],
) -> dict[str, float]:
    """Each task's training and evaluation return, in a federation of several tasks.

    ``train_reward_per_task/T`` averages the round's agents of task ``T`` (NaN when none was
    sampled), ``eval_reward_per_task/T`` its evaluated agents.
    """
    if len(task_sizes) < 2:
        return {}
    state = {"task_sizes": list(task_sizes)}
    columns = {}
    for task in range(len(task_sizes)):
        trained = [u.mean_return for u in updates if task_of(state, u.agent_id) == task]
        columns[f"train_reward_per_task/{task}"] = float(np.mean(trained)) if trained else NAN
    for task in range(len(task_sizes)):
        returns = [
            r for a, r in zip(evaluated, per_agent, strict=True) if task_of(state, a) == task
        ]
        columns[f"eval_reward_per_task/{task}"] = float(np.mean(returns)) if returns else NAN
    return columns


def personalized_columns(
    evaluated: Sequence[int], personalized: np.ndarray | None
) -> dict[str, float]:
    """The columns of each evaluated agent's own policy: mean, worst and per agent."""
    return _policy_columns("eval_reward_personalized", evaluated, personalized)


def finetuned_columns(evaluated: Sequence[int], finetuned: np.ndarray | None) -> dict[str, float]:
    """The columns of the global policy fine-tuned on each evaluated agent: mean, worst, each."""
    return _policy_columns("eval_reward_finetuned", evaluated, finetuned)


def _policy_columns(
    name: str, evaluated: Sequence[int], returns: np.ndarray | None
) -> dict[str, float]:
    """``name``, ``name_min`` and ``name_per_agent/K``: the mean, worst and each agent's return."""
    if returns is None:
        return {}
    return {
        name: float(returns.mean()),
        f"{name}_min": float(returns.min()),
        **{f"{name}_per_agent/{a}": float(r) for a, r in zip(evaluated, returns, strict=True)},
    }


def upgraded_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row saved by an earlier version, with today's column names.

    Per-agent returns were ``eval_reward/agent_K``, which MLflow's file store cannot hold
    beside ``eval_reward`` (a metric's name becomes a file, and ``eval_reward/`` a folder).
    """
    old = "eval_reward/agent_"
    return {
        (f"eval_reward_per_agent/{key[len(old) :]}" if key.startswith(old) else key): value
        for key, value in row.items()
    }


def round_row(
    submitted: SubmittedRound,
    trained: TrainedRound,
    byzantine: Sequence[int],
    evaluated: Sequence[int],
    per_agent: np.ndarray,
    totals: dict[str, int],
    round_time: float,
) -> dict[str, Any]:
    """The metrics row of a finished round.

    Args:
        submitted: The round as it was sent out.
        trained: What its local fits produced.
        byzantine: The sampled agents that are Byzantine.
        evaluated: The agents the new global policy was evaluated on.
        per_agent: Their mean evaluation returns, in the same order.
        totals: Episodes and env steps of the run so far, this round's included.
        round_time: The round's wall time in seconds.
    """
    updates, failures = trained.updates, trained.failures
    return {
        "round": submitted.round_idx,
        "train_reward": float(np.mean([u.mean_return for u in updates])),
        **training_metrics(updates),
        "eval_reward": float(per_agent.mean()),
        "eval_reward_min": float(per_agent.min()),
        **{
            f"eval_reward_per_agent/{a}": float(r)
            for a, r in zip(evaluated, per_agent, strict=True)
        },
        "num_failed_agents": len(failures),
        "failed_agents": " ".join(str(a) for a in sorted(failures)),
        "num_byzantine_agents": len(byzantine),
        "byzantine_agents": " ".join(str(a) for a in sorted(byzantine)),
        "bytes_sent": submitted.sent_bytes,
        "bytes_received": trained.bytes_received,
        "episodes": totals["episodes"],
        "env_steps": totals["env_steps"],
        "round_time": round_time,
    }
