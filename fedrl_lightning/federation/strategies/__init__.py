"""Aggregation strategies: pure arithmetic that turns agents' updates into new global weights."""

from fedrl_lightning.federation.strategies.averaging import FedAvg, FedProx, RewardWeighted
from fedrl_lightning.federation.strategies.base import (
    AgentUpdate,
    Strategy,
    all_strategies,
    weighted_average,
)
from fedrl_lightning.federation.strategies.meta_learning import PerFedAvg, Reptile
from fedrl_lightning.federation.strategies.robust import FedMedian, FedTrimmedAvg, Krum, MultiKrum
from fedrl_lightning.federation.strategies.server_optimizers import (
    FedAdagrad,
    FedAdam,
    FedAvgM,
    FedYogi,
)
from fedrl_lightning.federation.strategies.trust_region import TrustRegion

__all__ = [
    "AgentUpdate",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedMedian",
    "FedProx",
    "FedTrimmedAvg",
    "FedYogi",
    "Krum",
    "MultiKrum",
    "PerFedAvg",
    "Reptile",
    "RewardWeighted",
    "Strategy",
    "TrustRegion",
    "all_strategies",
    "weighted_average",
]
