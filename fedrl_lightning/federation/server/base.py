"""Which server-side model a run has: shared weights, IFCA's clusters, or distilled agents."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.server.clustered import ClusteredModel
from fedrl_lightning.federation.server.distillation import DistillationSettings
from fedrl_lightning.federation.server.distilled import DistilledModels
from fedrl_lightning.federation.server.gradient import GradientModel
from fedrl_lightning.federation.server.scopes import SharingScopes
from fedrl_lightning.federation.server.shared import SharedModel
from fedrl_lightning.federation.strategies import Strategy

if TYPE_CHECKING:
    from fedrl_lightning.learners import Learner
    from fedrl_lightning.population.agents import AgentPopulation

__all__ = ["ServerModel", "server_model"]

ServerModel = SharedModel | ClusteredModel | DistilledModels


def server_model(
    model: Learner,
    population: AgentPopulation,
    strategy: Strategy,
    seed: int,
    scopes: SharingScopes,
    clusters: int | None = None,
    cluster_eval_episodes: int | None = None,
    distillation: DistillationSettings | None = None,
    server_optimizer: dict[str, Any] | None = None,
) -> ServerModel:
    """The server's side of the run's model, starting from ``model``.

    Args:
        model: The global model's starting point.
        population: The agents.
        strategy: How updates are aggregated.
        seed: The run seed.
        scopes: The sharing scopes (``trainer.personalization``).
        clusters: IFCA's number of models; ``None``: one.
        cluster_eval_episodes: With ``clusters``, episodes each agent scores each on.
        distillation: Policy distillation's settings; ``None``: no distillation.
        server_optimizer: In gradient mode, the optimizer that applies the aggregated
            gradients (checked by ``check_update_mode``); ``None``: agents send weights.

    Raises:
        ConfigError: If agents have models of their own (``data.model_heterogeneity``)
            without distillation, which alone lets different models learn together.
    """
    if distillation is not None:
        return DistilledModels.for_population(distillation, model, population, seed)
    if population.model_heterogeneity:
        raise ConfigError(
            "data.model_heterogeneity: agents with models of their own learn together only "
            "through trainer.distillation; set it, or remove data.model_heterogeneity"
        )
    if clusters is not None:
        return ClusteredModel.for_population(
            model, population, clusters, strategy, seed, cluster_eval_episodes
        )
    if server_optimizer is not None:
        return GradientModel.for_gradients(model, population, strategy, seed, server_optimizer)
    return SharedModel.for_population(scopes, model, population, strategy, seed)
