"""The federated layer: the outer loop, local fits, aggregation, sampling and evaluation."""

from fedrl_lightning.federation.callbacks import (
    BestCheckpoint,
    Callback,
    EarlyStopping,
    RoundCheckpoint,
)
from fedrl_lightning.federation.strategies import (
    AgentUpdate,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    FedYogi,
    Krum,
    MultiKrum,
    PerFedAvg,
    Reptile,
    RewardWeighted,
    Strategy,
    TrustRegion,
)
from fedrl_lightning.federation.trainer import FederatedTrainer

__all__ = [
    "AgentUpdate",
    "BestCheckpoint",
    "Callback",
    "EarlyStopping",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedMedian",
    "FedProx",
    "FedTrimmedAvg",
    "FedYogi",
    "FederatedTrainer",
    "Krum",
    "MultiKrum",
    "PerFedAvg",
    "Reptile",
    "RewardWeighted",
    "RoundCheckpoint",
    "Strategy",
    "TrustRegion",
]
