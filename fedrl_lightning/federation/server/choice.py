"""``trainer.server``: which server model a run has, with its typed options.

Each choice is chosen by class path, like ``trainer.strategy`` (``--trainer.server Clustered
--trainer.server.k 2``), builds its :class:`ServerModel` once the model and the agents are
known, and declares what it does not combine with; the trainer asks it, generically.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar, Literal

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.server.base import ServerModel
from fedrl_lightning.federation.server.clustered import CLUSTER_EVAL_EPISODES, ClusteredModel
from fedrl_lightning.federation.server.distillation import DistillationSettings
from fedrl_lightning.federation.server.distilled import DistilledModels
from fedrl_lightning.federation.server.gradient import GradientModel, check_gradient_strategy
from fedrl_lightning.federation.server.scopes import SharingScopes
from fedrl_lightning.federation.server.shared import SharedModel
from fedrl_lightning.federation.strategies import Strategy
from fedrl_lightning.federation.strategies.server_optimizers import server_optimizer_spec
from fedrl_lightning.policy.normalization import STATISTICS_BUFFERS

if TYPE_CHECKING:
    from fedrl_lightning.federation.trainer import FederatedTrainer
    from fedrl_lightning.learners import Learner
    from fedrl_lightning.population.agents import AgentPopulation

__all__ = ["Clustered", "Distilled", "Gradient", "ServerChoice", "Shared"]

OPTION = "trainer.server"


class ServerChoice(ABC):
    """The base of ``trainer.server``'s choices.

    Attributes:
        refused_components: The round components (by name) this server model cannot work
            with, and why.
        own_models: Whether agents may have models of their own
            (``data.model_heterogeneity``).
    """

    refused_components: ClassVar[dict[str, str]] = {}
    own_models: ClassVar[bool] = False

    @property
    def option(self) -> str:
        """The option as a user writes it, for messages."""
        return f"{OPTION} {type(self).__name__}"

    def check(self, trainer: FederatedTrainer) -> None:
        """Refuse the trainer's other settings that this server model cannot work with.

        Raises:
            ConfigError: One line naming the two options.
        """
        for component in trainer.components:
            reason = self.refused_components.get(component.name)
            if reason is not None:
                raise ConfigError(
                    f"{self.option} cannot be combined with trainer.components "
                    f"{type(component).__name__}: "
                    f"{reason}; remove one of them"
                )

    def build(
        self, model: Learner, population: AgentPopulation, strategy: Strategy, seed: int
    ) -> ServerModel:
        """The server model for ``population``, starting from ``model``.

        Raises:
            ConfigError: If the model or the agents do not fit it.
        """
        if population.model_heterogeneity and not self.own_models:
            raise ConfigError(
                "data.model_heterogeneity: agents with models of their own learn together only "
                f"through --{OPTION} Distilled; set it, or remove data.model_heterogeneity"
            )
        return self._build(model, population, strategy, seed)

    @abstractmethod
    def _build(
        self, model: Learner, population: AgentPopulation, strategy: Strategy, seed: int
    ) -> ServerModel: ...


class Shared(ServerChoice):
    """Shared weights (the default), with sharing scopes by parameter-name patterns.

    ``Shared(agent=["policy.head.*"])`` keeps each agent's policy head to itself (FedPer);
    ``task`` entries are aggregated over each task's agents only; the rest is global.
    Agent-scoped values live in the run folder's ``personal/``, one file per agent, and the
    rounds also report each evaluated agent's own policy (``eval_reward_personalized``).
    See :class:`~fedrl_lightning.federation.server.shared.SharedModel`.

    Args:
        agent: Patterns of the entries each agent keeps to itself.
        task: Patterns of the entries each task has a value of its own of.
    """

    def __init__(self, agent: list[str] | None = None, task: list[str] | None = None) -> None:
        spec = {scope: list(p) for scope, p in (("task", task), ("agent", agent)) if p}
        self.scopes = SharingScopes(spec, option=OPTION)

    def _build(
        self, model: Learner, population: AgentPopulation, strategy: Strategy, seed: int
    ) -> ServerModel:
        names = list(model.state_dict())
        statistics = [f"{n}.{b}" for n in model.statistics_modules() for b in STATISTICS_BUFFERS]
        self.scopes.check(names, statistics, type(model).__name__)
        return SharedModel.for_population(self.scopes, model, population, strategy, seed)


class Clustered(ServerChoice):
    """Clustered federation (IFCA) with ``k`` global models, started different.

    Each sampled agent scores every model on its own episodes, trains the best and sends it
    back with its choice; each model is aggregated over the agents that chose it. Each agent
    deploys its last choice's model; the global model (``eval_reward``) is the largest
    cluster's. See :class:`~fedrl_lightning.federation.server.clustered.ClusteredModel`.

    Args:
        k: How many global models.
        eval_episodes: Episodes each agent scores each model on; their steps are counted in
            ``cluster_eval_steps``, not ``env_steps``.
    """

    def __init__(self, k: int = 2, eval_episodes: int = CLUSTER_EVAL_EPISODES) -> None:
        for name, value in (("k", k), ("eval_episodes", eval_episodes)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{OPTION}.{name} must be a positive integer, got {value!r}")
        self.k, self.eval_episodes = k, eval_episodes

    def _build(
        self, model: Learner, population: AgentPopulation, strategy: Strategy, seed: int
    ) -> ServerModel:
        return ClusteredModel.for_population(
            model, population, self.k, strategy, seed, self.eval_episodes
        )


class Gradient(ServerChoice):
    """Gradient sharing: agents send their loss gradient at the global weights, no local step.

    The strategy aggregates the gradients, and a server optimizer applies the result; its
    state is saved in every round checkpoint. See
    :class:`~fedrl_lightning.federation.server.gradient.GradientModel`.

    Args:
        optimizer: The server optimizer: ``adam`` or ``sgd``.
        lr: Its learning rate; ``None``: 0.001 for Adam, 0.01 for SGD.
        momentum: SGD's momentum, in [0, 1).
        betas: Adam's betas, each in [0, 1).
        eps: Adam's epsilon.
    """

    refused_components: ClassVar[dict[str, str]] = {
        "sharing": "it applies one aggregated gradient to one global model, at its weights",
    }

    def __init__(
        self,
        optimizer: Literal["adam", "sgd"] = "adam",
        lr: float | None = None,
        momentum: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        spec: dict[str, object] = {"name": optimizer}
        if lr is not None:
            spec["lr"] = lr
        if optimizer == "sgd":
            spec["momentum"] = momentum
        else:
            spec |= {"betas": list(betas), "eps": eps}
        self.optimizer = server_optimizer_spec(spec, option=OPTION)

    def check(self, trainer: FederatedTrainer) -> None:
        """Refuse strategies that step the weights or change the local steps, and LR schedules.

        Raises:
            ConfigError: One line naming the option that does not fit.
        """
        super().check(trainer)
        check_gradient_strategy(trainer.strategy)
        if trainer.lr_schedule != "constant":
            raise ConfigError(
                f"trainer.lr_schedule {trainer.lr_schedule} cannot be combined with "
                f"{self.option}: agents take no local step; remove one of them"
            )

    def _build(
        self, model: Learner, population: AgentPopulation, strategy: Strategy, seed: int
    ) -> ServerModel:
        return GradientModel.for_gradients(model, population, strategy, seed, self.optimizer)


class Distilled(ServerChoice):
    """Policy distillation (FedHPD) instead of weight averaging.

    Every agent keeps its whole model to itself in the run folder's ``personal/`` (its own
    sizes and learning rate with ``data.model_heterogeneity``) and sends only its action
    distribution on probe states drawn at the run's start (``probe_states.pt``); its fits
    add ``kl_coef * KL(consensus || own policy)`` to their loss. The global model is a
    student the server distills on the consensus (FedDF). See
    :class:`~fedrl_lightning.federation.server.distilled.DistilledModels`.

    Args:
        probe_states: How many probe states the server draws at the run's start.
        every_n_rounds: Agents send their distributions in every round divisible by this.
        kl_coef: The weight of the KL term in every local loss; 0 trains agents alone.
        student_steps: Adam steps with which the server distills the student on each new
            consensus; 0: no student.
        student_lr: The student's Adam learning rate.
        consensus: ``mean`` (FedHPD's) or ``strategy``, the run's strategy applied to the
            distributions as to weights.
    """

    refused_components: ClassVar[dict[str, str]] = {
        "sharing": "distilled agents keep their whole models and share no episodes",
    }
    own_models: ClassVar[bool] = True

    def __init__(
        self,
        probe_states: int = 1000,
        every_n_rounds: int = 1,
        kl_coef: float = 1.0,
        student_steps: int = 100,
        student_lr: float = 0.01,
        consensus: Literal["mean", "strategy"] = "mean",
    ) -> None:
        self.settings = DistillationSettings.parse(
            {
                "probe_states": probe_states,
                "every_n_rounds": every_n_rounds,
                "kl_coef": kl_coef,
                "student_steps": student_steps,
                "student_lr": student_lr,
                "consensus": consensus,
            }
        )

    def _build(
        self, model: Learner, population: AgentPopulation, strategy: Strategy, seed: int
    ) -> ServerModel:
        return DistilledModels.for_population(self.settings, model, population, strategy, seed)
