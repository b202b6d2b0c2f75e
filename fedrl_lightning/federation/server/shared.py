"""The model as the server holds it, by sharing scope: global, per task, and per agent."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from typing_extensions import override

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.components.base import FitPart
from fedrl_lightning.federation.messages import AgentUpdate, StateDict
from fedrl_lightning.federation.server.aggregation import aggregate_round
from fedrl_lightning.federation.server.base import ServerModel
from fedrl_lightning.federation.server.personal_store import PersonalStore, recover_run_store
from fedrl_lightning.federation.server.scopes import SharingScopes
from fedrl_lightning.federation.strategies import FedAvg, Strategy
from fedrl_lightning.run.run_folder import RunFolder
from fedrl_lightning.seeding import Stream, derive_seed

if TYPE_CHECKING:
    from fedrl_lightning.federation.local_fit import AgentFit
    from fedrl_lightning.learners import Learner
    from fedrl_lightning.population.agents import AgentPopulation

__all__ = ["OwnEntries", "SharedModel", "task_of"]


@dataclass(frozen=True)
class OwnEntries(FitPart):
    """Sharing scopes' part of an agent's fit: its own entries, and where it keeps its own.

    Attributes:
        own_state: The agent's task- and agent-scoped entries, which replace the global ones.
        personal_names: The agent-scoped entries: kept by the agent, never sent.
        personal_path: Where the agent keeps their new values (its pending file in the run's
            :class:`~fedrl_lightning.federation.server.personal_store.PersonalStore`).
    """

    own_state: StateDict
    personal_names: tuple[str, ...] = ()
    personal_path: Path | None = None

    @override
    def start(self, fit: AgentFit) -> None:
        fit.start = {**fit.start, **self.own_state}

    @override
    def send(self, fit: AgentFit) -> None:
        """Keep the agent-scoped entries in the agent's own file; send the rest."""
        if not self.personal_names:
            return
        personal = {name: fit.update[name] for name in self.personal_names}
        assert self.personal_path is not None  # given with the personal names
        PersonalStore.save(self.personal_path, fit.task.round_idx, personal)
        fit.update = self._sent(fit.update)
        fit.origin = self._sent(fit.origin)

    @override
    def reference(self, state: StateDict) -> StateDict:
        return self._sent({**state, **self.own_state})

    @override
    def written_files(self) -> tuple[Path, ...]:
        return (self.personal_path,) if self.personal_names and self.personal_path else ()

    @override
    def relocated(self, folder: Path) -> FitPart:
        if not self.personal_names:
            return self
        return dataclasses.replace(self, personal_path=folder / "personal.ckpt")

    @override
    def discard(self) -> None:
        if self.personal_path is not None:
            self.personal_path.unlink(missing_ok=True)

    def _sent(self, state: Mapping[str, Any]) -> StateDict:
        return {k: v for k, v in state.items() if k not in self.personal_names}


class SharedModel(ServerModel):
    """The server's side of the model: what each agent starts from, and how updates combine.

    Every ``state_dict`` entry has a sharing scope (:class:`SharingScopes`):

    - ``global`` entries have one value, aggregated by the strategy over all of a round's
      agents (the running statistics among them pooled, as always);
    - ``task`` entries have one value per task, aggregated by the strategy over the round's
      agents of that task only (each task has its own copy of a stateful strategy);
    - ``agent`` entries are never sent: each agent's values live in the
      :class:`PersonalStore`, and an agent sampled for the first time starts from its task's
      initial values (the global model's, in a one-task federation).

    Tasks whose environments have other spaces have models of other sizes
    (``task_models``); the entries whose shapes differ must then be scoped to the task or
    the agent.

    Without scopes, this is plain federated averaging of the whole model, as before.

    Args:
        scopes: Which entries are shared with whom.
        global_state: The global model's ``state_dict``; its task and agent entries are the
            values every task and agent starts from.
        task_sizes: How many agents each task has; agents are numbered task by task.
        strategy: The strategy; each task gets a fresh copy of it, made now.
        task_models: Each task's initial ``state_dict``, of its own sizes; ``None``: the global
            one for every task.
        task_hparams: Each task's model's hyperparameters (its sizes differ when its spaces
            do); ``None``: none recorded.
        store: Where agents keep their agent-scoped values; needed when there are some.
        statistics: Names of the model's running statistics modules, pooled every round.
    """

    def __init__(
        self,
        scopes: SharingScopes,
        global_state: StateDict,
        task_sizes: Sequence[int],
        strategy: Strategy,
        task_models: Sequence[StateDict] | None = None,
        task_hparams: Sequence[dict[str, Any]] | None = None,
        store: PersonalStore | None = None,
        statistics: Sequence[str] = (),
    ) -> None:
        self.scopes = scopes
        self._global = {k: v.detach().cpu().clone() for k, v in global_state.items()}
        self.task_sizes = [int(size) for size in task_sizes]
        self.strategy = strategy
        self.statistics = tuple(statistics)
        self._personal: dict[int, int] = {}  # the agents whose values the last round wrote
        self._fresh_strategy = copy.deepcopy(strategy)
        self.store = store
        names = list(global_state)
        self.task_names = scopes.names(names, "task")
        self.agent_names = scopes.names(names, "agent")
        scoped = [*self.task_names, *self.agent_names]
        initial = task_models or [global_state] * len(self.task_sizes)
        # Each task's initial values of its scoped entries: only those ever start an agent.
        self.initial = [{n: state[n].detach().cpu().clone() for n in scoped} for state in initial]
        self.task_hparams = [dict(hparams) for hparams in task_hparams or []]
        self.conditioned = False  # observations end with a one-hot task id
        self.task_states: dict[int, StateDict] = {}
        self.task_strategies: dict[int, Strategy] = {}
        self.versions: dict[int, int] = {}  # each agent's round of its agent-scoped values

    @classmethod
    def for_population(
        cls,
        scopes: SharingScopes,
        model: Learner,
        population: AgentPopulation,
        strategy: Strategy,
        seed: int,
    ) -> Self:
        """The server's model for ``population``'s tasks, starting from ``model``.

        A task whose environment has other spaces gets a model of its own sizes, initialised
        from (run seed, task); every entry whose shape differs between the tasks must be
        scoped to the task or the agent.

        Raises:
            ConfigError: If an entry of differing shapes is global.
        """
        tasks = range(len(population.task_sizes))
        models = [
            model.sized_for(population.task_hparams(t), derive_seed(seed, 0, t, Stream.TASK_MODEL))
            for t in tasks
        ]
        states = [m.state_dict() for m in models]
        for name in states[0]:
            shapes = [tuple(state[name].shape) for state in states]
            if len(set(shapes)) > 1 and scopes.scope_of(name) == "global":
                raise ConfigError(
                    f"trainer.server: {name} has the shapes {shapes} in the tasks' "
                    "models, whose spaces differ; scope it to the task "
                    "(--trainer.server.task [...])"
                )
        shared = cls(
            scopes,
            model.state_dict(),
            population.task_sizes,
            strategy,
            task_models=states,
            task_hparams=[dict(m.hparams) for m in models],
            statistics=tuple(model.statistics_modules()),
        )
        shared.conditioned = population.tasks is not None and population.tasks.conditioned
        return shared

    @classmethod
    def restored(
        cls, state: Mapping[str, Any], global_state: StateDict, store: PersonalStore | None
    ) -> Self:
        """The model a round checkpoint's ``shared`` state and weights describe, to deploy.

        Args:
            state: The checkpoint's ``fedrl.shared`` entry.
            global_state: Its global weights.
            store: The run folder's agents' values; ``None``: the checkpoint is outside it.
        """
        model = cls(
            SharingScopes(state.get("scopes") or {}),
            global_state,
            state.get("task_sizes") or [1],
            FedAvg(),  # never aggregates: it only says what agents deploy
            task_hparams=state.get("task_hparams") or None,
            store=store,
        )
        model.load_state_dict(state)
        model.conditioned = bool(state.get("conditioned"))
        return model

    @property
    @override
    def global_state(self) -> StateDict:
        return self._global

    @global_state.setter
    def global_state(self, state: StateDict) -> None:
        self._global = state

    @override
    def resume_weights(self, global_state: StateDict) -> None:
        self._global = {k: v.detach().cpu().clone() for k, v in global_state.items()}

    @override
    def open(self, run: RunFolder) -> None:
        """Keep the agents' agent-scoped values in ``run``'s ``personal/``, if there are any."""
        if self.agent_names:
            run.personal.mkdir(exist_ok=True)
            self.store = PersonalStore(run.personal)

    @override
    def resume(self, checkpoint: Path, completed_round: int) -> None:
        """Bring the personal store to the checkpoint.

        Raises:
            ConfigError: If agents keep values of their own and the checkpoint lies outside
                its run folder, or they are newer than it (an earlier round resumed).
        """
        if not self.versions:
            return
        recover_run_store(checkpoint, self.versions, completed_round, "personal parameters")

    @override
    def fit_inputs(self, agent: int, round_idx: int) -> FitPart | None:
        """Agent ``agent``'s own entries in round ``round_idx``; ``None`` without scopes."""
        if not self.personalized:
            return None
        store = self.store
        return OwnEntries(
            self.own_state(agent),
            tuple(self.agent_names),
            store.pending_path(agent, round_idx) if store is not None else None,
        )

    @override
    def commit(self) -> None:
        """Once a round is saved, make its agents' new agent-scoped values theirs."""
        if self.store is not None:
            self.store.commit(self._personal)

    @override
    def discard_pending(self) -> None:
        """Drop the agent-scoped values of a round that will not be saved."""
        if self.store is not None:
            self.store.discard_pending()

    @override
    def hparams_of(self, agent: int) -> dict[str, Any]:
        """The hyperparameters of agent ``agent``'s model: its task's."""
        return self.task_hparams[self.task_of(agent)]

    @property
    def personalized(self) -> bool:
        """Whether any entry is scoped to a task or an agent."""
        return bool(self.task_names or self.agent_names)

    @property
    @override
    def own_policies(self) -> bool:
        """Whether agents deploy policies of their own, beyond their task's: agent entries."""
        return bool(self.agent_names)

    def sent_names(self) -> list[str]:
        """The entries that go between the server and an agent: all but the agent-scoped."""
        return [name for name in self.global_state if name not in self.agent_names]

    def own_state(self, agent: int) -> StateDict:
        """Agent ``agent``'s task and agent entries, which replace the global ones for it."""
        task = self.task_of(agent)
        own = dict(self.task_state(task))
        if self.agent_names:
            stored = None
            if self.store is not None and agent in self.versions:
                stored = self.store.load(agent, self.versions[agent])
            own |= stored or {name: self.initial[task][name] for name in self.agent_names}
        return own

    def task_state(self, task: int) -> StateDict:
        """Task ``task``'s task-scoped entries: aggregated, or its initial ones before that."""
        if task in self.task_states:
            return self.task_states[task]
        return {name: self.initial[task][name] for name in self.task_names}

    @override
    def task_deployed_state(self, task: int) -> StateDict:
        """The whole ``state_dict`` of task ``task``'s global policy (its initial agent entries)."""
        agents = {name: self.initial[task][name] for name in self.agent_names}
        return {**self.global_state, **self.task_state(task), **agents}

    @override
    def deployed_state(self, agent: int) -> StateDict:
        """The whole ``state_dict`` agent ``agent`` would deploy."""
        return {**self.global_state, **self.own_state(agent)}

    def sent_state(self, agent: int) -> StateDict:
        """What agent ``agent`` is sent, and sends back: its entries but the agent-scoped."""
        state = self.deployed_state(agent)
        return {name: state[name] for name in self.sent_names()}

    @override
    def aggregate(self, updates: Sequence[AgentUpdate], round_idx: int) -> None:
        """Combine a round's updates, which hold the sent entries, scope by scope.

        The round's agents hold agent-scoped values of it from now on: the next round's
        fits, submitted before this round is saved, start from those values.
        """
        strategy, statistics = self.strategy, self.statistics
        task_names = set(self.task_names)
        global_names = [n for n in self.sent_names() if n not in task_names]
        combined = aggregate_round(
            strategy,
            {n: self.global_state[n] for n in global_names},
            [_restricted(u, global_names) for u in updates],
            statistics,
        )
        self.global_state = {**self.global_state, **combined}
        for task in sorted({self.task_of(u.agent_id) for u in updates}) if task_names else ():
            own = [u for u in updates if self.task_of(u.agent_id) == task]
            start = self.task_state(task)
            task_strategy = self.task_strategies.setdefault(
                task, copy.deepcopy(self._fresh_strategy)
            )
            self.task_states[task] = aggregate_round(
                task_strategy, start, [_restricted(u, self.task_names) for u in own]
            )
        self._personal = {}
        if self.agent_names:
            self._personal = dict.fromkeys((u.agent_id for u in updates), round_idx)
            self.versions |= self._personal

    @override
    def state_dict(self) -> dict[str, Any]:
        """The task entries, the task strategies' states and the agents' value rounds."""
        return {
            "scopes": self.scopes.state_dict(),
            "task_sizes": list(self.task_sizes),
            "task_initial": [dict(state) for state in self.initial],
            "task_hparams": [dict(hparams) for hparams in self.task_hparams],
            "conditioned": self.conditioned,
            "tasks": {t: dict(state) for t, state in self.task_states.items()},
            "task_strategies": {t: s.state_dict() for t, s in self.task_strategies.items()},
            "versions": dict(self.versions),
        }

    @override
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output."""
        self.task_states = {int(t): dict(s) for t, s in state.get("tasks", {}).items()}
        if state.get("task_initial"):
            self.initial = [dict(initial) for initial in state["task_initial"]]
        self.task_strategies = {}
        for task, saved in state.get("task_strategies", {}).items():
            self.task_strategies[int(task)] = copy.deepcopy(self._fresh_strategy)
            self.task_strategies[int(task)].load_state_dict(saved)
        self.versions = {int(a): int(r) for a, r in state.get("versions", {}).items()}


def task_of(state: dict[str, Any], agent: int) -> int:
    """The task of agent ``agent``, from a :meth:`SharedModel.state_dict` (its task sizes)."""
    first = 0
    for task, size in enumerate(state.get("task_sizes") or []):
        if agent < first + size:
            return task
        first += size
    return 0


def _restricted(update: AgentUpdate, names: Sequence[str]) -> AgentUpdate:
    """``update`` with only the entries ``names``."""
    state = {name: update.state_dict[name] for name in names if name in update.state_dict}
    return AgentUpdate(
        agent_id=update.agent_id,
        state_dict=state,
        num_episodes=update.num_episodes,
        num_steps=update.num_steps,
        mean_return=update.mean_return,
        statistics=update.statistics,
        metrics=update.metrics,
    )
