"""The federated layer: the outer loop, local fits, aggregation, sampling and evaluation."""

from fedrl_lightning.federation.strategies import (
    AgentUpdate,
    FedAvg,
    FedAvgM,
    RewardWeighted,
    Strategy,
)
from fedrl_lightning.federation.trainer import FederatedTrainer

__all__ = ["AgentUpdate", "FedAvg", "FedAvgM", "FederatedTrainer", "RewardWeighted", "Strategy"]
