"""The federated layer: the outer loop, local fits, aggregation, sampling and evaluation."""

from fedrl_lightning.federation.callbacks import (
    BestCheckpoint,
    Callback,
    EarlyStopping,
    RoundCheckpoint,
)
from fedrl_lightning.federation.components.base import RoundComponent
from fedrl_lightning.federation.components.coverage import Coverage
from fedrl_lightning.federation.components.trajectory_sharing import TrajectorySharing
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
    "Coverage",
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
    "RoundComponent",
    "Strategy",
    "TrajectorySharing",
    "TrustRegion",
]
