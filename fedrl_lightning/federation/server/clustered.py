"""IFCA on the server's side: K global models, each aggregated over the agents that chose it."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from typing_extensions import override

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.components.base import FitPart, InvalidUpdate
from fedrl_lightning.federation.messages import AgentUpdate, StateDict
from fedrl_lightning.federation.server.aggregation import aggregate_round
from fedrl_lightning.federation.server.base import ServerModel
from fedrl_lightning.federation.server.cluster_choice import choose_cluster
from fedrl_lightning.federation.strategies import FedAvg, Strategy
from fedrl_lightning.federation.strategies.base import detached as _detached
from fedrl_lightning.seeding import Stream, derive_seed

if TYPE_CHECKING:
    from fedrl_lightning.federation.local_fit import AgentFit
    from fedrl_lightning.learners import Learner
    from fedrl_lightning.population.agents import AgentPopulation

__all__ = [
    "CLUSTER_EVAL_EPISODES",
    "ChooseCluster",
    "ClusterReply",
    "ClusteredModel",
    "deployed_cluster",
    "global_cluster",
    "initial_cluster_states",
]

CLUSTER_EVAL_EPISODES = 5
"""Episodes each agent scores each cluster's model on, unless ``trainer.server.eval_episodes``
says otherwise."""


@dataclass(frozen=True)
class ClusterReply:
    """The cluster an agent chose, and the environment steps it spent scoring them.

    Attributes:
        cluster: The chosen cluster.
        eval_steps: The steps of its scoring episodes, all clusters together.
    """

    cluster: int
    eval_steps: int


@dataclass(frozen=True)
class ChooseCluster(FitPart):
    """IFCA's part of an agent's fit: score every cluster's model, train the best one.

    Attributes:
        cluster_states: Every cluster's model; the agent scores each on its own episodes,
            trains the best one instead of the global weights, and sends its choice back
            with its statistics (see
            :func:`~fedrl_lightning.federation.server.cluster_choice.choose_cluster`).
        eval_episodes: Episodes the agent scores each cluster's model on.
    """

    cluster_states: tuple[StateDict, ...]
    eval_episodes: int

    @override
    def start(self, fit: AgentFit) -> None:
        task = fit.task
        choice = choose_cluster(
            fit.module,
            self.cluster_states,
            fit.population,
            task.agent_id,
            self.eval_episodes,
            task.run_seed,
            task.round_idx,
        )
        fit.start = dict(self.cluster_states[choice.cluster])
        fit.stats |= choice.stats()

    @override
    def copies(self) -> int:
        return len(self.cluster_states)

    @override
    def read(
        self, checkpoint: Mapping[str, Any], stats: Mapping[str, Any], path: Path
    ) -> ClusterReply:
        """The cluster the agent says it chose, one of the clusters, and its scoring steps."""
        clusters = len(self.cluster_states)
        cluster, steps = stats["cluster"], stats["cluster_eval_steps"]
        for value in (cluster, steps):
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidUpdate(f"{path}: its cluster choice is not a number")
        if not 0 <= cluster < clusters or steps < 0:
            raise InvalidUpdate(f"{path}: it chose cluster {cluster}, not one of the {clusters}")
        return ClusterReply(cluster, steps)


def reply_of(update: AgentUpdate) -> ClusterReply:
    """The cluster choice ``update``'s agent sent."""
    reply = update.extras[ClusteredModel.name]
    assert isinstance(reply, ClusterReply)  # ChooseCluster.read gives one
    return reply


class ClusteredModel(ServerModel):
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


    Args:
        states: Each cluster's initial ``state_dict``; they must differ for IFCA to separate
            anything (:func:`initial_cluster_states`).
        strategy: The strategy; each cluster gets a fresh copy of it, made now.
        eval_episodes: Episodes each agent scores each cluster's model on.
        task_sizes: How many agents there are, as one task: ``[num_agents]``; ``None``: not
            given (no evaluation needs it).
        task_hparams: The models' hyperparameters, as the one task's: ``[hparams]``.
        statistics: Names of the model's running statistics modules, pooled every round.
    """

    def __init__(
        self,
        states: Sequence[StateDict],
        strategy: Strategy,
        eval_episodes: int,
        task_sizes: Sequence[int] | None = None,
        task_hparams: Sequence[dict[str, Any]] = (),
        statistics: Sequence[str] = (),
    ) -> None:
        self.statistics = tuple(statistics)
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
                f"trainer.server Clustered: data.tasks gives {len(population.task_sizes)} tasks; "
                "clustered federation finds the agents' groups itself, from one task"
            )
        episodes = CLUSTER_EVAL_EPISODES if eval_episodes is None else eval_episodes
        states = initial_cluster_states(model, clusters, seed)
        return cls(
            states,
            strategy,
            episodes,
            population.task_sizes,
            [dict(model.hparams)],
            tuple(model.statistics_modules()),
        )

    @classmethod
    def restored(cls, state: Mapping[str, Any], source: str = "the checkpoint") -> ClusteredModel:
        """The clusters a round checkpoint's ``shared`` state holds, for what agents deploy.

        Raises:
            ConfigError: If the saved clusters are malformed.
        """
        try:
            clusters = state["clusters"]
            if not isinstance(clusters, list) or not all(isinstance(c, dict) for c in clusters):
                raise TypeError("clusters hold no weights")
            assignments = {int(a): int(c) for a, c in state["assignments"].items()}
            for cluster in assignments.values():
                if not 0 <= cluster < len(clusters):
                    raise IndexError(cluster)
            hparams = state.get("task_hparams") or []
            model = cls(clusters, FedAvg(), 0, state.get("task_sizes"), hparams)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
            raise ConfigError(f"{source}: its clusters are malformed ({err!r})") from None
        model.assignments = assignments
        return model

    @property
    def num_clusters(self) -> int:
        """How many clusters there are (``K``)."""
        return len(self.states)

    @property
    def global_cluster(self) -> int:
        """The cluster whose model is the global one: the largest (:func:`global_cluster`)."""
        return global_cluster(self.assignments, self.num_clusters)

    @property
    @override
    def global_state(self) -> StateDict:
        """The global model's ``state_dict``: the largest cluster's."""
        return self.states[self.global_cluster]

    @override
    def resume_weights(self, global_state: StateDict) -> None:
        """Nothing to take: :meth:`load_state_dict` restored every cluster."""

    @property
    @override
    def own_policies(self) -> bool:
        """Agents deploy policies of their own: their clusters' models."""
        return True

    @override
    def hparams_of(self, agent: int) -> dict[str, Any]:
        """The hyperparameters of every cluster's model: the run's model's."""
        return self.task_hparams[0]

    def cluster_of(self, agent: int) -> int:
        """The cluster agent ``agent`` deploys: its last choice, else the global one."""
        return self.assignments.get(agent, self.global_cluster)

    @override
    def fit_inputs(self, agent: int, round_idx: int) -> FitPart:
        """Every cluster's model, for agent ``agent``'s fit to choose among."""
        return ChooseCluster(tuple(self.states), self.eval_episodes)

    @override
    def deployed_state(self, agent: int) -> StateDict:
        """The whole ``state_dict`` agent ``agent`` would deploy: its cluster's model."""
        return dict(self.states[self.cluster_of(agent)])

    @override
    def aggregate(self, updates: Sequence[AgentUpdate], round_idx: int) -> None:
        """Aggregate each cluster over the updates of the agents that chose it.

        Each cluster has its own copy of the run's strategy.
        """
        replies = {u.agent_id: reply_of(u) for u in updates}
        for cluster in range(self.num_clusters):
            chose = [u for u in updates if replies[u.agent_id].cluster == cluster]
            if chose:
                self.states[cluster] = aggregate_round(
                    self.strategies[cluster], self.states[cluster], chose, self.statistics
                )
        self.choices = {agent: reply.cluster for agent, reply in replies.items()}
        self.assignments |= self.choices
        self.eval_steps += sum(reply.eval_steps for reply in replies.values())

    @override
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

    @override
    def metric_names(self) -> list[str]:
        """The numeric columns :meth:`round_columns` adds."""
        return [name for name in self.round_columns() if name != "cluster_assignments"]

    @override
    def state_dict(self) -> dict[str, Any]:
        """Every cluster's model and strategy state, each agent's last choice, the steps."""
        return {
            "clusters": [dict(state) for state in self.states],
            "cluster_strategies": [s.state_dict() for s in self.strategies],
            "assignments": dict(self.assignments),
            "choices": dict(self.choices),
            "cluster_eval_steps": self.eval_steps,
        }

    @override
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output.

        Raises:
            ConfigError: If it holds another number of clusters, or none.
        """
        saved = state.get("clusters")
        if not isinstance(saved, list) or len(saved) != self.num_clusters:
            found = len(saved) if isinstance(saved, list) else "no"
            raise ConfigError(
                f"trainer.server.k ({self.num_clusters}): the run being resumed has {found} "
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
        Its last choice, else the largest cluster (:meth:`ClusteredModel.cluster_of`);
        ``None`` if the run had no clusters.

    Raises:
        ConfigError: If the saved clusters are malformed.
    """
    if shared.get("clusters") is None:
        return None
    return ClusteredModel.restored(shared, source).cluster_of(agent)
