"""IFCA on the server's side: K global models, each aggregated over the agents that chose it."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.server.aggregation import aggregate_round
from fedrl_lightning.federation.strategies import AgentUpdate, Strategy
from fedrl_lightning.federation.strategies.base import StateDict
from fedrl_lightning.federation.strategies.base import detached as _detached
from fedrl_lightning.run.run_folder import RunFolder
from fedrl_lightning.seeding import Stream, derive_seed

if TYPE_CHECKING:
    from fedrl_lightning.learners import Learner
    from fedrl_lightning.population.agents import AgentPopulation

__all__ = [
    "CLUSTER_EVAL_EPISODES",
    "ClusteredModel",
    "clustered_deployed_state",
    "deployed_cluster",
    "global_cluster",
    "initial_cluster_states",
]

CLUSTER_EVAL_EPISODES = 5
"""Episodes each agent scores each cluster's model on, unless ``trainer.cluster_eval_episodes``
says otherwise."""


class ClusteredModel:
    """The server's side of clustered federation (IFCA, Ghosh et al., 2020).

    The server keeps ``K`` global models. Every sampled agent is sent all of them, scores each
    on its own environment, trains the best one and sends it back with its choice
    (:func:`~fedrl_lightning.federation.server.cluster_choice.choose_cluster`). Each cluster's model
    is then aggregated by the strategy over the agents that chose it, each cluster with its
    own copy of the strategy (its own state, for a stateful one); a cluster nobody chose stays
    as it was, and so does its strategy.

    - An agent deploys the model of the cluster it chose last. An agent that never chose (it
      was never sampled, or always failed) deploys the *global* model.
    - The global model, which the round checkpoint's ``state_dict`` holds and ``eval_reward``
      evaluates, is the model of the largest cluster: the one most agents chose last (ties to
      the lowest index; cluster 0 before any choice). It is what an agent the federation knows
      nothing about would best be given.

    It offers the trainer what :class:`~fedrl_lightning.federation.server.shared.SharedModel`
    does; what concerns agent-scoped parameters does nothing, as clusters share whole models.

    Args:
        states: Each cluster's initial ``state_dict``; they must differ for IFCA to separate
            anything (:func:`initial_cluster_states`).
        strategy: The strategy; each cluster gets a fresh copy of it, made now.
        eval_episodes: Episodes each agent scores each cluster's model on.
        task_sizes: How many agents there are, as one task: ``[num_agents]``; ``None``: not
            given (no evaluation needs it).
        task_hparams: The models' hyperparameters, as the one task's: ``[hparams]``.
    """

    task_names: tuple[str, ...] = ()  # no entry is task-scoped: clusters share whole models

    def __init__(
        self,
        states: Sequence[StateDict],
        strategy: Strategy,
        eval_episodes: int,
        task_sizes: Sequence[int] | None = None,
        task_hparams: Sequence[dict[str, Any]] = (),
    ) -> None:
        self.states = [_detached(state) for state in states]
        self.task_sizes = list(task_sizes or [])
        self.task_hparams = [dict(hparams) for hparams in task_hparams]
        self._fresh_strategy = copy.deepcopy(strategy)
        self.strategies = [copy.deepcopy(strategy) for _ in self.states]
        self.eval_episodes = int(eval_episodes)
        self.assignments: dict[int, int] = {}  # each agent's last choice
        self.choices: dict[int, int] = {}  # the last aggregated round's choices
        self.eval_steps = 0  # the steps every agent spent scoring clusters, all rounds

    @classmethod
    def for_population(
        cls,
        model: Learner,
        population: AgentPopulation,
        clusters: int,
        strategy: Strategy,
        seed: int,
        eval_episodes: int | None = None,
    ) -> ClusteredModel:
        """``clusters`` models of ``model``'s learner, from :func:`initial_cluster_states`.

        Args:
            model: The run's model.
            population: The agents; a population of one task only.
            clusters: How many clusters (``K``).
            strategy: The strategy, copied for each cluster.
            seed: The run's seed.
            eval_episodes: Episodes each agent scores each model on; ``None``:
                :data:`CLUSTER_EVAL_EPISODES`.

        Raises:
            ConfigError: If the population has several tasks (``data.tasks``).
        """
        if len(population.task_sizes) > 1:
            raise ConfigError(
                f"trainer.clusters: data.tasks gives {len(population.task_sizes)} tasks; "
                "clustered federation finds the agents' groups itself, from one task"
            )
        episodes = CLUSTER_EVAL_EPISODES if eval_episodes is None else eval_episodes
        states = initial_cluster_states(model, clusters, seed)
        return cls(states, strategy, episodes, population.task_sizes, [dict(model.hparams)])

    @property
    def num_clusters(self) -> int:
        """How many clusters there are (``K``)."""
        return len(self.states)

    @property
    def global_cluster(self) -> int:
        """The cluster whose model is the global one: the largest (:func:`global_cluster`)."""
        return global_cluster(self.assignments, self.num_clusters)

    @property
    def global_state(self) -> StateDict:
        """The global model's ``state_dict``: the largest cluster's."""
        return self.states[self.global_cluster]

    @property
    def personalized(self) -> bool:
        """Agents deploy their cluster's model, so evaluation reports each agent's own."""
        return True

    @property
    def own_policies(self) -> bool:
        """Agents deploy policies of their own: their clusters' models."""
        return True

    def task_of(self, agent: int) -> int:
        """The task of agent ``agent``: the one task, 0."""
        return 0

    def hparams_of(self, agent: int) -> dict[str, Any]:
        """The hyperparameters of every cluster's model: the run's model's."""
        return self.task_hparams[0]

    def open(self, run: RunFolder) -> None:
        """Nothing to keep in the run folder: every cluster is in the round checkpoint."""

    def resume(self, checkpoint: Path, global_state: StateDict, completed_round: int) -> None:
        """Nothing more to do: :meth:`load_state_dict` restored every cluster."""

    def cluster_of(self, agent: int) -> int:
        """The cluster agent ``agent`` deploys: its last choice, else the global one."""
        return self.assignments.get(agent, self.global_cluster)

    def fit_inputs(self, agent: int, round_idx: int) -> dict[str, Any]:
        """Every cluster's model, for agent ``agent``'s ``LocalFit`` to choose among."""
        return {"cluster_states": tuple(self.states), "cluster_eval_episodes": self.eval_episodes}

    def own_state(self, agent: int) -> StateDict:
        """Agent ``agent``'s cluster's model, which replaces the global one for it."""
        return self.states[self.cluster_of(agent)]

    def deployed_state(self, agent: int) -> StateDict:
        """The whole ``state_dict`` agent ``agent`` would deploy: its cluster's model."""
        return dict(self.own_state(agent))

    def task_deployed_state(self, task: int) -> StateDict:
        """The whole ``state_dict`` of the one task's global policy: the largest cluster's."""
        return dict(self.global_state)

    def aggregate(
        self, strategy: Strategy, updates: Sequence[AgentUpdate], statistics: Sequence[str]
    ) -> None:
        """Aggregate each cluster over the updates of the agents that chose it.

        Args:
            strategy: The run's strategy; unused, as each cluster has its own copy.
            updates: The round's updates, each naming its cluster.
            statistics: Names of the model's running statistics modules.
        """
        for cluster in range(self.num_clusters):
            chose = [u for u in updates if u.cluster == cluster]
            if chose:
                self.states[cluster] = aggregate_round(
                    self.strategies[cluster], self.states[cluster], chose, statistics
                )
        choices: dict[int, int] = {}
        for update in updates:
            assert update.cluster is not None  # a clustered fit names the cluster it chose
            choices[update.agent_id] = int(update.cluster)
        self.choices = choices
        self.assignments |= self.choices
        self.eval_steps += sum(u.cluster_eval_steps for u in updates)

    def record_personal(self, agents: Sequence[int], round_idx: int) -> dict[int, int]:
        """Nothing: agents keep no values of their own."""
        return {}

    def commit(self, personal: dict[int, int]) -> None:
        """Nothing to commit: the round checkpoint holds every cluster."""

    def discard_pending(self) -> None:
        """Nothing pending."""

    def round_columns(self) -> dict[str, Any]:
        """The last aggregated round's assignments, for its metrics row.

        ``cluster_assignments`` lists ``agent:cluster`` for each agent that sent an update;
        ``agents_in_cluster/k`` counts those that chose cluster ``k``; ``cluster_eval_steps``
        is the run's total of environment steps spent scoring clusters.
        """
        return {
            "cluster_assignments": " ".join(f"{a}:{c}" for a, c in sorted(self.choices.items())),
            **{
                f"agents_in_cluster/{k}": sum(c == k for c in self.choices.values())
                for k in range(self.num_clusters)
            },
            "cluster_eval_steps": self.eval_steps,
        }

    def metric_names(self) -> list[str]:
        """The numeric columns :meth:`round_columns` adds."""
        return [name for name in self.round_columns() if name != "cluster_assignments"]

    def state_dict(self) -> dict[str, Any]:
        """Every cluster's model and strategy state, each agent's last choice, the steps."""
        return {
            "clusters": [dict(state) for state in self.states],
            "cluster_strategies": [s.state_dict() for s in self.strategies],
            "assignments": dict(self.assignments),
            "choices": dict(self.choices),
            "cluster_eval_steps": self.eval_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output.

        Raises:
            ConfigError: If it holds another number of clusters, or none.
        """
        saved = state.get("clusters")
        if not isinstance(saved, list) or len(saved) != self.num_clusters:
            found = len(saved) if isinstance(saved, list) else "no"
            raise ConfigError(
                f"trainer.clusters ({self.num_clusters}): the run being resumed has {found} "
                "clusters"
            )
        self.states = [_detached(s) for s in saved]
        self.strategies = []
        for saved_strategy in state["cluster_strategies"]:
            self.strategies.append(copy.deepcopy(self._fresh_strategy))
            self.strategies[-1].load_state_dict(saved_strategy)
        self.assignments = {int(a): int(c) for a, c in state["assignments"].items()}
        self.choices = {int(a): int(c) for a, c in state["choices"].items()}
        self.eval_steps = int(state["cluster_eval_steps"])


def initial_cluster_states(model: Learner, clusters: int, seed: int) -> list[StateDict]:
    """The clusters' initial models: different, and a function of (run seed, cluster) only.

    Cluster 0 starts from ``model``'s own weights (the run's usual initial weights, which
    the command line draws under ``seed_everything``), so one cluster trains as a plain run
    does. Cluster ``k >= 1`` starts from a fresh module of the same learner and
    hyperparameters, built under ``torch.manual_seed(derive_seed(seed, 0, k,
    Stream.CLUSTER_INIT))``; torch's global generator is left as it was.

    Args:
        model: The run's model.
        clusters: How many clusters (``K``).
        seed: The run's seed.

    Returns:
        ``clusters`` state dicts.
    """
    states = [model.state_dict()]
    for cluster in range(1, clusters):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(seed, 0, cluster, Stream.CLUSTER_INIT))
            states.append(type(model)(**model.hparams).state_dict())
    return states


def global_cluster(assignments: Mapping[int, int], clusters: int) -> int:
    """The largest cluster: the one most agents last chose; ties to the lowest index."""
    sizes = [0] * clusters
    for cluster in assignments.values():
        sizes[cluster] += 1
    return sizes.index(max(sizes))


def deployed_cluster(
    shared: Mapping[str, Any], agent: int, source: str = "the checkpoint"
) -> int | None:
    """The cluster agent ``agent`` deploys, from a checkpoint's saved :class:`ClusteredModel`.

    Args:
        shared: A round checkpoint's ``fedrl.shared`` entry.
        agent: The agent.
        source: The checkpoint, for the message.

    Returns:
        Its last choice, else the largest cluster, as :meth:`ClusteredModel.cluster_of`
        gives it; ``None`` if the run had no clusters.

    Raises:
        ConfigError: If the saved clusters are malformed.
    """
    clusters = shared.get("clusters")
    if clusters is None:
        return None
    try:
        assignments = {int(a): int(c) for a, c in shared["assignments"].items()}
        cluster = assignments.get(agent, global_cluster(assignments, len(clusters)))
        if not 0 <= cluster < len(clusters):
            raise IndexError(cluster)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
        raise ConfigError(f"{source}: its clusters are malformed ({err!r})") from None
    return cluster


def clustered_deployed_state(
    shared: Mapping[str, Any], agent: int, source: str = "the checkpoint"
) -> StateDict | None:
    """What agent ``agent`` deploys, from a checkpoint's saved :class:`ClusteredModel`.

    Args:
        shared: A round checkpoint's ``fedrl.shared`` entry.
        agent: The agent.
        source: The checkpoint, for the message.

    Returns:
        Its cluster's model (:func:`deployed_cluster`); ``None`` if the run had no clusters.

    Raises:
        ConfigError: If the saved clusters are malformed.
    """
    cluster = deployed_cluster(shared, agent, source)
    if cluster is None:
        return None
    state = shared["clusters"][cluster]
    if not isinstance(state, dict):
        raise ConfigError(f"{source}: its cluster {cluster} holds no weights")
    return dict(state)
