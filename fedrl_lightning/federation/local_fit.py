"""One agent's local fit: a fresh Lightning Trainer, from global weights to a checkpoint."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset

from fedrl_lightning.federation.local_trainer import local_trainer
from fedrl_lightning.federation.messages import LocalFit, StateDict
from fedrl_lightning.learners import Learner
from fedrl_lightning.population.agents import AgentPopulation
from fedrl_lightning.run.checkpoints import atomic_save, policy_checkpoint
from fedrl_lightning.seeding import Stream, derive_seed

__all__ = [
    "AGENT_STATS_KEY",
    "FIT_STATISTICS_KEY",
    "AgentFit",
    "LocalFit",
    "fit_agent",
    "lr_scale",
]

AGENT_STATS_KEY = "agent_stats"
FIT_STATISTICS_KEY = "fit_statistics"


@dataclass
class AgentFit:
    """One local fit under way, as the round components' parts see and change it.

    Attributes:
        task: The fit.
        population: The agents' environments.
        module: The agent's learner.
        start: The weights the fit starts from: the global ones, until a part changes them.
        dataset: The agent's data (its learner's ``rollout_dataset``), once trained.
        update: After training, what the agent sends back: its trained ``state_dict``,
            until a part changes it.
        origin: What ``update`` is a change from (the start weights, until a part changes
            it); Byzantine attacks scale or replace the change.
        stats: Entries the parts add to the agent's ``agent_stats``.
    """

    task: LocalFit
    population: AgentPopulation
    module: Learner
    start: StateDict
    dataset: IterableDataset | None = None
    update: StateDict = field(default_factory=dict)
    origin: StateDict = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    def seed(self, stream: Stream) -> int:
        """The seed of ``stream`` for this agent in this round of this run."""
        return derive_seed(self.task.run_seed, self.task.round_idx, self.task.agent_id, stream)


def lr_scale(schedule: str, round_idx: int, num_rounds: int) -> float:
    """The factor on the learners' learning rate in round ``round_idx`` of ``num_rounds``.

    ``schedule`` is ``constant`` (1), or ``linear``: ``1 - (round_idx - 1) / num_rounds``.
    """
    if schedule == "constant":
        return 1.0
    return 1.0 - (round_idx - 1) / num_rounds


def fit_agent(task: LocalFit, population: AgentPopulation) -> Path:
    """Train the global policy on one agent's environment and save the agent's checkpoint.

    The result depends only on ``task`` and ``population``: every random stream is seeded
    from (run seed, round, agent id), never from which agents ran before. torch runs on one
    thread during the fit, as in a Ray worker, so the sums in every update add up in the same
    order whichever executor runs it; the policies are small, and parallelism comes from
    running agents side by side.

    Args:
        task: The fit to run.
        population: The agents' environments.

    Returns:
        The path of the agent's checkpoint, written atomically.
    """
    with one_torch_thread():
        return _fit(task, population)


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread inside the block, and restore the thread count after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _fit(task: LocalFit, population: AgentPopulation) -> Path:
    parts = list(task.extras.values())
    torch.manual_seed(derive_seed(task.run_seed, task.round_idx, task.agent_id, Stream.TORCH))
    module = task.module_class(**task.model_hparams)
    module.seed_run(task.run_seed)
    fit = AgentFit(task, population, module, dict(task.global_state))
    for part in parts:  # IFCA chooses its cluster here; scopes add the agent's own entries
        part.start(fit)
    module.load_state_dict(fit.start)
    module.lr_scale = task.lr_scale
    for part in parts:
        part.prepare(fit)
    byzantine = population.byzantine
    env = byzantine.wrap_training_env(population.make_rollout_env(task.agent_id), task.agent_id)
    options: dict[str, Any] = {}
    for part in parts:
        options |= part.dataset_options()
    fit.dataset = module.rollout_dataset(env, fit, **options)
    trainer = local_trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        **task.trainer_kwargs,
    )
    try:
        trainer.fit(module, DataLoader(fit.dataset, batch_size=None))
    finally:
        env.close()
    fit.update, fit.origin = dict(module.state_dict()), fit.start  # plain dicts, as sent
    for part in parts:  # scopes keep the agent's own entries; gradient mode sends a gradient
        part.send(fit)
    sent = byzantine.corrupt_update(
        task.agent_id, fit.update, fit.origin, fit.seed(Stream.BYZANTINE)
    )
    # The agent's checkpoint holds what aggregation reads: weights, hyperparameters, what
    # the fit did, and what its running statistics observed. Lightning's full checkpoint
    # would add loop state that no one reads, and costs several times as long to write and
    # to load.
    stats = module.agent_stats() | fit.stats
    extra: dict[str, Any] = {AGENT_STATS_KEY: stats, FIT_STATISTICS_KEY: module.fit_statistics()}
    for part in parts:
        extra |= part.report(fit)
    checkpoint = policy_checkpoint(sent, dict(module.hparams), type(module).__name__, **extra)
    atomic_save(checkpoint, task.checkpoint_path)
    return task.checkpoint_path
