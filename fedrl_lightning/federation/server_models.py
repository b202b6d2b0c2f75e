"""Which server-side model a run has: shared weights, IFCA's clusters, or distilled agents."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.clustered_model import ClusteredModel
from fedrl_lightning.federation.distillation import DistillationSettings
from fedrl_lightning.federation.distilled_models import DistilledModels
from fedrl_lightning.federation.scopes import SharingScopes
from fedrl_lightning.federation.shared_model import SharedModel
from fedrl_lightning.federation.strategies import Strategy

if TYPE_CHECKING:
    from fedrl_lightning.learners import Learner
    from fedrl_lightning.population import AgentPopulation

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
) -> ServerModel:
    """The server's side of the run's model, starting from ``model``.

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
    return SharedModel.for_population(scopes, model, population, strategy, seed)
