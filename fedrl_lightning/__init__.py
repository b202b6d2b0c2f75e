"""fedrl_lightning: federated reinforcement learning on PyTorch Lightning."""

from fedrl_lightning.data import EpisodeBatch, EpisodeDataset
from fedrl_lightning.federation import FedAvg, FedAvgM, FederatedTrainer, RewardWeighted, Strategy
from fedrl_lightning.module import ReinforceModule
from fedrl_lightning.population import AgentPopulation

__all__ = [
    "AgentPopulation",
    "EpisodeBatch",
    "EpisodeDataset",
    "FedAvg",
    "FedAvgM",
    "FederatedTrainer",
    "ReinforceModule",
    "RewardWeighted",
    "Strategy",
]
