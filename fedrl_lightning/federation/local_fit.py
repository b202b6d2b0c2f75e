"""One agent's local fit: a fresh Lightning Trainer, from global weights to a checkpoint."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from fedrl_lightning.exploration.coverage import CoverageGrid
from fedrl_lightning.federation.components.trajectory_buffer import pack_episodes
from fedrl_lightning.federation.components.trajectory_sharing import upload_choice
from fedrl_lightning.federation.server.cluster_choice import choose_cluster
from fedrl_lightning.federation.server.distillation import ProbeExchange
from fedrl_lightning.federation.server.personal_store import PersonalStore
from fedrl_lightning.learners import Learner
from fedrl_lightning.learners.distillation_term import action_distribution
from fedrl_lightning.learners.meta_step import MetaStep
from fedrl_lightning.policy.networks import CategoricalMLPPolicy
from fedrl_lightning.population.agents import AgentPopulation
from fedrl_lightning.rollouts.dataset import EpisodeDataset, StoredEpisode
from fedrl_lightning.run.checkpoints import atomic_save, policy_checkpoint
from fedrl_lightning.seeding import Stream, derive_seed

__all__ = [
    "AGENT_STATS_KEY",
    "FIT_STATISTICS_KEY",
    "SHARED_EPISODES_KEY",
    "SENDS_KEY",
    "DISTRIBUTION_KEY",
    "LocalFit",
    "fit_agent",
    "lr_scale",
]

AGENT_STATS_KEY = "agent_stats"
FIT_STATISTICS_KEY = "fit_statistics"
SHARED_EPISODES_KEY = "shared_episodes"
SENDS_KEY = "sends"  # "gradient" in a gradient-mode agent's checkpoint; absent: weights
DISTRIBUTION_KEY = "probe_distribution"


@dataclass(frozen=True)
class LocalFit:
    """Everything one agent's local fit depends on.

    Attributes:
        agent_id: The agent.
        round_idx: The federated round, counted from 0.
        run_seed: The run's seed.
        module_class: The learner to build, such as :class:`~fedrl_lightning.learners.Reinforce`.
        model_hparams: Keyword arguments that build ``module_class``.
        global_state: The global weights the agent starts from.
        num_episodes: Episodes to train on.
        checkpoint_path: Where the agent's checkpoint is written.
        trainer_kwargs: Extra arguments for the agent's ``lightning.Trainer``.
        proximal_mu: Weight of FedProx's proximal term in the local loss (0: none).
        lr_scale: The round's factor on the learner's learning rate (the trainer's
            ``lr_schedule``).
        meta_step: Per-FedAvg's inner step before each outer update; ``None``: plain updates.
        own_state: The agent's task- and agent-scoped entries, which replace the global
            ones (see :class:`~fedrl_lightning.federation.server.shared.SharedModel`).
        personal_names: The agent-scoped entries: kept by the agent, never sent.
        personal_path: Where the agent keeps their new values (its pending file in the
            run's :class:`~fedrl_lightning.federation.server.personal_store.PersonalStore`).
        cluster_states: With IFCA (``trainer.clusters``), every cluster's model: the agent
            scores each on its own episodes, trains the best one instead of
            ``global_state``, and sends its choice back with its statistics (see
            :func:`~fedrl_lightning.federation.server.cluster_choice.choose_cluster`).
        cluster_eval_episodes: Episodes the agent scores each cluster's model on.
        replay: With trajectory sharing, episodes other agents shared, which the agent
            replays beside its own (see :class:`~fedrl_lightning.rollouts.dataset.EpisodeDataset`).
        share_fraction: With trajectory sharing, each of the agent's episodes is uploaded
            with these odds, drawn from its ``SHARE_UPLOAD`` stream; 0: none.
        rho_max: The truncation of replayed episodes' importance weights.
        send_gradient: Gradient sharing (``trainer.update_mode gradient``): the agent
            sends the mean gradient of its learner's loss at the start weights over its
            episodes, with no local step, instead of trained weights (see
            :meth:`~fedrl_lightning.learners.Learner.capture_gradients`).
        distillation: In policy distillation (``trainer.distillation``), the probe states,
            the consensus its loss is pulled towards, and whether it sends its own action
            distribution on the probe states back (see
            :class:`~fedrl_lightning.federation.server.distilled.DistilledModels`).
        coverage_grid: With ``trainer.coverage``, the grid whose cells the agent's training
            observations fell in it reports; ``None``: none.
    """

    agent_id: int
    round_idx: int
    run_seed: int
    module_class: type[Learner]
    model_hparams: dict[str, Any]
    global_state: dict[str, torch.Tensor]
    num_episodes: int
    checkpoint_path: Path
    trainer_kwargs: dict[str, Any]
    proximal_mu: float = 0.0
    lr_scale: float = 1.0
    meta_step: MetaStep | None = None
    own_state: dict[str, torch.Tensor] = field(default_factory=dict)
    personal_names: tuple[str, ...] = ()
    personal_path: Path | None = None
    cluster_states: tuple[dict[str, torch.Tensor], ...] = ()
    cluster_eval_episodes: int = 0
    replay: tuple[StoredEpisode, ...] = ()
    share_fraction: float = 0.0
    rho_max: float = 1.0
    send_gradient: bool = False
    distillation: ProbeExchange | None = None
    coverage_grid: CoverageGrid | None = None


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
    def seed(stream: Stream) -> int:
        return derive_seed(task.run_seed, task.round_idx, task.agent_id, stream)

    torch.manual_seed(seed(Stream.TORCH))
    module = task.module_class(**task.model_hparams)
    module.seed_run(task.run_seed)
    module.coverage_grid = task.coverage_grid
    base, choice = task.global_state, None
    if task.cluster_states:  # IFCA: the agent trains the cluster that scores best on it
        choice = choose_cluster(
            module,
            task.cluster_states,
            population,
            task.agent_id,
            task.cluster_eval_episodes,
            task.run_seed,
            task.round_idx,
        )
        base = task.cluster_states[choice.cluster]
    start = {**base, **task.own_state}
    module.load_state_dict(start)
    if task.proximal_mu:
        module.set_proximal_term(start, task.proximal_mu)
    module.lr_scale = task.lr_scale
    module.rho_max = task.rho_max
    module.set_meta_step(task.meta_step)
    if task.send_gradient:
        module.capture_gradients()
    if task.distillation is not None:
        module.set_distillation_target(task.distillation.target())
    byzantine = population.byzantine
    env = byzantine.wrap_training_env(population.make_rollout_env(task.agent_id), task.agent_id)
    dataset = EpisodeDataset(
        env=env,
        policy=module.policy,
        num_episodes=task.num_episodes,
        episodes_per_update=population.episodes_per_update,
        gamma=module.hparams.gamma,
        env_seed=seed(Stream.ENV),
        action_seed=seed(Stream.ACTIONS),
        random_actions=byzantine.acts_randomly(task.agent_id),
        replay=task.replay,
        keep_episodes=task.share_fraction > 0,
    )
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        **task.trainer_kwargs,
    )
    try:
        trainer.fit(module, DataLoader(dataset, batch_size=None))
    finally:
        env.close()
    trained = module.state_dict()
    if task.personal_names:  # kept by the agent: written to its own file, never sent
        personal = {name: trained[name] for name in task.personal_names}
        assert task.personal_path is not None  # given with the personal names
        PersonalStore.save(task.personal_path, task.round_idx, personal)

    def shared(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v for k, v in state.items() if k not in task.personal_names}

    update, origin = trained, start
    if task.send_gradient:  # a gradient is a change from zero, which attacks scale or replace
        update = module.captured_gradient()
        origin = {name: torch.zeros_like(value) for name, value in update.items()}
    sent = byzantine.corrupt_update(
        task.agent_id, shared(update), shared(origin), seed(Stream.BYZANTINE)
    )
    # The agent's checkpoint holds what aggregation reads: weights, hyperparameters, what
    # the fit did, and what its running statistics observed. Lightning's full checkpoint
    # would add loop state that no one reads, and costs several times as long to write and
    # to load.
    stats = module.agent_stats() | (choice.stats() if choice is not None else {})
    extra: dict[str, Any] = {AGENT_STATS_KEY: stats, FIT_STATISTICS_KEY: module.fit_statistics()}
    if task.share_fraction:  # trajectory sharing: some episodes, as plain tensors
        uploaded = upload_choice(len(dataset.kept), task.share_fraction, seed(Stream.SHARE_UPLOAD))
        episodes = byzantine.poison_episodes(task.agent_id, [dataset.kept[i] for i in uploaded])
        extra[SHARED_EPISODES_KEY] = pack_episodes(episodes)
    if task.send_gradient:
        extra[SENDS_KEY] = "gradient"
    if task.distillation is not None and task.distillation.send:
        exchange = task.distillation
        assert isinstance(module.policy, CategoricalMLPPolicy)  # refused for continuous actions
        own = action_distribution(module.policy, exchange.probe_states)
        extra[DISTRIBUTION_KEY] = byzantine.corrupt_distribution(
            task.agent_id, own, exchange.consensus, seed(Stream.BYZANTINE)
        )
    checkpoint = policy_checkpoint(sent, dict(module.hparams), type(module).__name__, **extra)
    atomic_save(checkpoint, task.checkpoint_path)
    return task.checkpoint_path
