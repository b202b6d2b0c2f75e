"""Policy distillation, the server's side: agents keep their whole models; behaviour travels."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from typing_extensions import override

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.components.base import FitPart, InvalidUpdate
from fedrl_lightning.federation.local_fit import one_torch_thread
from fedrl_lightning.federation.messages import AgentUpdate, StateDict
from fedrl_lightning.federation.server.base import ServerModel
from fedrl_lightning.federation.server.distillation import (
    DistillationSettings,
    ProbeExchange,
    consensus_of,
    distill_student,
    draw_probe_states,
    strategy_consensus,
)
from fedrl_lightning.federation.server.personal_store import PersonalStore, recover_run_store
from fedrl_lightning.federation.server.shared import OwnEntries
from fedrl_lightning.federation.strategies import Strategy
from fedrl_lightning.federation.strategies.base import detached as _detached
from fedrl_lightning.learners.base import ENV_HPARAMS
from fedrl_lightning.learners.distillation_term import action_distribution
from fedrl_lightning.policy.networks import CategoricalMLPPolicy
from fedrl_lightning.run.checkpoints import atomic_save
from fedrl_lightning.run.run_folder import RunFolder
from fedrl_lightning.seeding import Stream, derive_seed

if TYPE_CHECKING:
    from fedrl_lightning.federation.local_fit import AgentFit
    from fedrl_lightning.learners import Learner
    from fedrl_lightning.population.agents import AgentPopulation

__all__ = [
    "DISTRIBUTION_KEY",
    "PROBE_STATES_FILE",
    "DistilledModels",
    "ExchangeDistributions",
    "agent_hparams",
    "statistics_options",
]

PROBE_STATES_FILE = "probe_states.pt"
"""The run folder's file of the probe states: ``{"probe_states": [states, observation_dim]}``."""

DISTRIBUTION_KEY = "probe_distribution"
"""The agent checkpoint's entry of its action distribution on the probe states."""


@dataclass(frozen=True)
class ExchangeDistributions(OwnEntries):
    """Distillation's part of an agent's fit: its whole model, and the distributions exchanged.

    The agent keeps its whole model (every entry is its own); its fit is pulled towards the
    consensus, and it may send its own action distribution on the probe states back.

    Attributes:
        exchange: The probe states, the consensus its loss is pulled towards, and whether it
            sends its distribution.
        num_actions: The actions of its distribution's rows.
    """

    exchange: ProbeExchange | None = None
    num_actions: int = 0

    @override
    def prepare(self, fit: AgentFit) -> None:
        if self.exchange is not None:
            fit.module.set_distillation_target(self.exchange.target())

    @override
    def report(self, fit: AgentFit) -> dict[str, Any]:
        exchange = self.exchange
        if exchange is None or not exchange.send:
            return {}
        policy = fit.module.policy
        assert isinstance(policy, CategoricalMLPPolicy)  # refused for continuous actions
        own = action_distribution(policy, exchange.probe_states)
        sent = fit.population.byzantine.corrupt_distribution(
            fit.task.agent_id, own, exchange.consensus, fit.seed(Stream.BYZANTINE)
        )
        return {DISTRIBUTION_KEY: sent}

    @override
    def message(self) -> dict[str, torch.Tensor]:
        return self.exchange.message() if self.exchange is not None else {}

    @override
    def read(
        self, checkpoint: Mapping[str, Any], stats: Mapping[str, Any], path: Path
    ) -> torch.Tensor | None:
        """The action distribution the agent sent on the probe states, checked, if it sends."""
        if self.exchange is None or not self.exchange.send:
            return None
        shape = (len(self.exchange.probe_states), self.num_actions)
        sent = checkpoint.get(DISTRIBUTION_KEY)
        if not isinstance(sent, torch.Tensor) or tuple(sent.shape) != shape:
            raise InvalidUpdate(f"{path}: no {DISTRIBUTION_KEY} of shape {list(shape)}")
        sent = sent.to(torch.float32)
        rows = sent.sum(-1)
        if not bool(torch.isfinite(sent).all()) or bool((sent < 0).any()):
            raise InvalidUpdate(
                f"{path}: its {DISTRIBUTION_KEY} has values that are no probabilities"
            )
        if not bool(torch.allclose(rows, torch.ones_like(rows), atol=1e-4)):
            raise InvalidUpdate(f"{path}: its {DISTRIBUTION_KEY}'s rows do not sum to 1")
        return sent


def distribution_of(update: AgentUpdate) -> torch.Tensor | None:
    """The action distribution ``update``'s agent sent; ``None`` if it sent none."""
    sent = update.extras.get(DistilledModels.name)
    return sent if isinstance(sent, torch.Tensor) else None


class DistilledModels(ServerModel):
    """Federated policy distillation (FedHPD, Jiang et al., 2025), with a FedDF student.

    Every agent keeps its whole model, which may have its own architecture and learning rate
    (``data.model_heterogeneity``), agent-scoped in the :class:`PersonalStore`: no weight ever
    leaves an agent. At the run's start the server draws probe states from the agents'
    environments (:func:`draw_probe_states`) and saves them in the run folder. In every
    round divisible by ``every_n_rounds`` the sampled agents send their action distributions
    on the probe states; the server averages them into the consensus, and the next round's
    fits add ``kl_coef * KL(consensus || own policy)`` on the probe states to their loss. The
    server also distills the global model, the student, on each new consensus
    (``student_steps``, FedDF), so the run's ``last.ckpt`` holds one deployable policy; its
    ``eval_reward`` is the student's, and ``eval_reward_personalized`` each agent's own.

    The consensus is the plain mean of the distributions, as FedHPD's, unless
    ``consensus: strategy`` asks for the run's strategy (a robust one against Byzantine
    distributions).

    Args:
        settings: ``trainer.server Distilled``'s.
        module_class: The learner every agent trains.
        student_state: The global model's initial weights.
        student_hparams: The global model's hyperparameters.
        agent_hparams: Each agent's own model's hyperparameters, in agent order.
        probe_states: ``[states, observation_dim]`` the probe states.
        seed: The run's seed: agent ``k``'s initial weights are drawn under
            ``derive_seed(seed, 0, k, Stream.AGENT_MODEL)``.
        strategy: The run's strategy; used only with ``consensus: strategy``.
    """

    def __init__(
        self,
        settings: DistillationSettings,
        module_class: type[Learner],
        student_state: StateDict,
        student_hparams: dict[str, Any],
        agent_hparams: Sequence[dict[str, Any]],
        probe_states: torch.Tensor,
        seed: int,
        strategy: Strategy | None = None,
    ) -> None:
        self.settings = settings
        self.module_class = module_class
        self.strategy = strategy
        self._global = _detached(student_state)
        self.task_hparams = [dict(student_hparams)]
        self.agent_hparams = [dict(hparams) for hparams in agent_hparams]
        self.task_sizes = [len(self.agent_hparams)]
        self.probe_states = probe_states
        self.seed = seed
        self.store: PersonalStore | None = None
        self.consensus: torch.Tensor | None = None
        self.consensus_round = 0  # the round whose distributions made the consensus
        self.round = 0  # the last round aggregated
        self.averaged = 0  # how many distributions the last round averaged
        self.student_kl = float("nan")
        # Every agent's values start as its initial model's, written at round 0.
        self.versions = dict.fromkeys(range(len(self.agent_hparams)), 0)
        self._personal: dict[int, int] = {}  # the agents whose models the last round wrote

    @classmethod
    def for_population(
        cls,
        settings: DistillationSettings,
        model: Learner,
        population: AgentPopulation,
        strategy: Strategy,
        seed: int,
    ) -> DistilledModels:
        """Every agent's model for ``population``, the probe states, and ``model`` as student.

        Raises:
            ConfigError: For a population of several tasks, continuous actions, a model with
                running statistics, or model hyperparameters that do not build a model.
        """
        if len(population.task_sizes) > 1 or population.tasks is not None:
            raise ConfigError("trainer.server Distilled: data.tasks is not supported with it")
        if population.continuous:
            raise ConfigError(
                f"trainer.server Distilled: {population.env_id} has continuous actions; the "
                "consensus averages categorical distributions, so it needs discrete ones"
            )
        if model.statistics_modules():
            options = statistics_options(model.statistics_modules())
            raise ConfigError(
                f"trainer.server Distilled: {type(model).__name__} keeps running statistics "
                f"({', '.join(model.statistics_modules())}), which the server would pool; turn "
                f"off {' and '.join(options)}"
            )
        hparams = agent_hparams(model, population)
        probes = draw_probe_states(population, settings.probe_states, seed)
        return cls(
            settings,
            type(model),
            model.state_dict(),
            dict(model.hparams),
            hparams,
            probes,
            seed,
            strategy,
        )

    @classmethod
    def restored(
        cls, state: Mapping[str, Any], global_state: StateDict, store: PersonalStore | None
    ) -> DistilledModels:
        """The agents' models a round checkpoint's ``shared`` state describes, to deploy.

        Args:
            state: The checkpoint's ``fedrl.shared`` entry.
            global_state: Its global weights, the student's.
            store: The run folder's agents' models; ``None``: the checkpoint is outside it.
        """
        hparams = [dict(h) for h in state["agent_hparams"]]
        settings = DistillationSettings.parse(state.get("distillation") or {})
        # Neither a learner nor probe states: a restored model deploys, and never trains.
        model = cls(settings, cast(Any, None), global_state, {}, hparams, torch.zeros(0), 0)
        model.load_state_dict(state)
        model.store = store
        return model

    @property
    @override
    def global_state(self) -> StateDict:
        """The student."""
        return self._global

    @override
    def resume_weights(self, global_state: StateDict) -> None:
        self._global = _detached(global_state)

    @property
    @override
    def own_policies(self) -> bool:
        """Agents deploy policies of their own: their whole models."""
        return True

    @override
    def hparams_of(self, agent: int) -> dict[str, Any]:
        """Agent ``agent``'s own model's hyperparameters."""
        return self.agent_hparams[agent]

    @override
    def open(self, run: RunFolder) -> None:
        """Save the probe states, and every agent's initial model that is not saved yet."""
        atomic_save({"probe_states": self.probe_states}, run.path / PROBE_STATES_FILE)
        run.personal.mkdir(exist_ok=True)
        self.store = PersonalStore(run.personal)
        for agent, hparams in enumerate(self.agent_hparams):
            if not self.store.path(agent).is_file():
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(derive_seed(self.seed, 0, agent, Stream.AGENT_MODEL))
                    initial = self.module_class(**hparams).state_dict()
                PersonalStore.save(self.store.path(agent), 0, initial)

    @override
    def resume(self, checkpoint: Path, completed_round: int) -> None:
        """Bring the personal store to the checkpoint.

        Raises:
            ConfigError: If the checkpoint lies outside its run folder, or the agents' models
                are newer than it.
        """
        recover_run_store(checkpoint, self.versions, completed_round, "their models")

    @override
    def fit_inputs(self, agent: int, round_idx: int) -> FitPart:
        """Agent ``agent``'s whole model, kept by it, and what it exchanges in ``round_idx``.

        The fit is pulled towards the consensus only if the round before made it.
        """
        fresh = self.consensus is not None and self.consensus_round == round_idx - 1
        exchange = ProbeExchange(
            probe_states=self.probe_states,
            consensus=self.consensus if fresh else None,
            kl_coef=self.settings.kl_coef,
            send=self.settings.sends(round_idx),
            first_contact=self.versions.get(agent, 0) == 0,
        )
        own = self.own_state(agent)
        assert self.store is not None  # open() made it, before any round
        return ExchangeDistributions(
            own,
            tuple(own),
            self.store.pending_path(agent, round_idx),
            exchange,
            int(self.agent_hparams[agent]["num_actions"]),
        )

    def own_state(self, agent: int) -> StateDict:
        """Agent ``agent``'s whole model, as its last completed fit left it."""
        assert self.store is not None  # open() made it, before any round
        state = self.store.load(agent, self.versions.get(agent, 0))
        if state is None:
            raise ConfigError(f"agent {agent}'s model is missing from {self.store.folder}")
        return state

    @override
    def deployed_state(self, agent: int) -> StateDict:
        """What agent ``agent`` deploys: its own model."""
        return dict(self.own_state(agent))

    @override
    def aggregate(self, updates: Sequence[AgentUpdate], round_idx: int) -> None:
        """Average the round's distributions into the consensus, and distill the student on it.

        In a round that exchanges, each update holds a distribution. The round's agents hold
        their models of it from now on, to commit once the round is saved.
        """
        self._aggregate(updates)
        self._personal = dict.fromkeys((u.agent_id for u in updates), round_idx)
        self.versions |= self._personal
        self.round = round_idx

    def _aggregate(self, updates: Sequence[AgentUpdate]) -> None:
        sent = [u for u in updates if distribution_of(u) is not None]
        distributions = [d for u in updates if (d := distribution_of(u)) is not None]
        self.averaged = len(sent)
        if not sent:
            return
        if self.settings.consensus == "strategy":
            assert self.strategy is not None  # for_population gives the run's
            self.consensus = strategy_consensus(self.strategy, sent, distributions, self.consensus)
        else:
            self.consensus = consensus_of(distributions)
        self.consensus_round = self.round + 1
        if self.settings.student_steps:
            with one_torch_thread():
                student = self.module_class(**self.task_hparams[0])
                student.load_state_dict(self.global_state)
                self.student_kl = distill_student(
                    student,
                    self.probe_states,
                    self.consensus,
                    self.settings.student_steps,
                    self.settings.student_lr,
                )
                self._global = _detached(student.state_dict())

    @override
    def commit(self) -> None:
        """Once a round is saved, make its agents' new models theirs."""
        assert self.store is not None  # open() made it, before any round
        self.store.commit(self._personal)

    @override
    def discard_pending(self) -> None:
        """Drop the models of a round that will not be saved."""
        if self.store is not None:
            self.store.discard_pending()

    @override
    def round_columns(self) -> dict[str, Any]:
        """The round's ``distributions_averaged`` (0 without exchange) and ``student_kl``."""
        return {"distributions_averaged": self.averaged, "student_kl": self.student_kl}

    @override
    def metric_names(self) -> list[str]:
        """The numeric columns :meth:`round_columns` adds."""
        return list(self.round_columns())

    @override
    def state_dict(self) -> dict[str, Any]:
        """The consensus, the rounds, every agent's hyperparameters and model round."""
        return {
            "distillation": dict(vars(self.settings)),
            "task_sizes": list(self.task_sizes),
            "agent_hparams": [dict(hparams) for hparams in self.agent_hparams],
            "consensus": self.consensus,
            "consensus_round": self.consensus_round,
            "round": self.round,
            "averaged": self.averaged,
            "student_kl": self.student_kl,
            "versions": dict(self.versions),
        }

    @override
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output.

        Raises:
            ConfigError: If the run being resumed was no distillation, or its agents' models
                had other hyperparameters.
        """
        if "agent_hparams" not in state:
            raise ConfigError("trainer.server Distilled: the run being resumed did not distill")
        if [dict(h) for h in state["agent_hparams"]] != self.agent_hparams:
            raise ConfigError(
                "data.model_heterogeneity: the agents' models differ from those of the run "
                "being resumed"
            )
        self.consensus = state["consensus"]
        self.consensus_round = int(state["consensus_round"])
        self.round = int(state["round"])
        self.averaged = int(state["averaged"])
        self.student_kl = float(state["student_kl"])
        self.versions = {int(a): int(r) for a, r in state["versions"].items()}


STATISTICS_OPTIONS = {
    "policy.normalizer": "model.normalize_observations",
    "reward_normalizer": "model.normalize_rewards",
    "curiosity.": "model.curiosity",
}
"""The option that gives a learner each of its running statistics, by module name (prefix)."""


def statistics_options(names: Iterable[str]) -> list[str]:
    """The options that turn off the running statistics ``names``, in order, each once."""
    options: list[str] = []
    for name in names:
        option = next(
            (o for prefix, o in STATISTICS_OPTIONS.items() if name.startswith(prefix)),
            f"the module {name}",
        )
        if option not in options:
            options.append(option)
    return options


def agent_hparams(model: Learner, population: AgentPopulation) -> list[dict[str, Any]]:
    """Each agent's model's hyperparameters: ``model``'s, with its own model heterogeneity.

    Raises:
        ConfigError: Naming ``data.model_heterogeneity`` when it sets what is no
            hyperparameter of the model, a size that comes from the environment, an integer
            hyperparameter to a fraction, or values the learner refuses.
    """
    base = dict(model.hparams)
    option = "data.model_heterogeneity"
    for name in population.model_heterogeneity.spec:
        if name not in base or name in ENV_HPARAMS:
            usable = ", ".join(n for n in base if n not in ENV_HPARAMS)
            raise ConfigError(
                f"{option}: {name!r} is not a hyperparameter of {type(model).__name__} that "
                f"agents may vary (its hyperparameters: {usable})"
            )
    for name in population.model_heterogeneity.spec:
        owner = f"{type(model).__name__}'s {name}"
        population.model_heterogeneity.check_kind(name, base[name], owner)
    built: set[str] = set()
    table = []
    for agent in range(population.num_agents):
        own = population.model_hparams_of(agent)
        for name, value in own.items():
            if isinstance(base[name], int) and not isinstance(base[name], bool):
                if not float(value).is_integer():
                    raise ConfigError(
                        f"{option}.{name}: an integer, drawn {value!r}; give {{choices: [...]}}"
                    )
                own[name] = int(value)
        hparams = {**base, **own}
        key = repr(sorted(hparams.items()))
        if key not in built:  # refuse values the learner refuses, before the run starts
            try:
                with torch.random.fork_rng(devices=[]):
                    type(model)(**hparams)
            except Exception as err:  # the learner's own refusal, or a value it cannot take
                reason = " ".join(str(err).split()) or type(err).__name__
                raise ConfigError(f"{option}: agent {agent}: {reason}") from None
            built.add(key)
        table.append(hparams)
    return table
