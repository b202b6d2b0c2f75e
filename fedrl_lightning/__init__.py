"""fedrl_lightning: federated reinforcement learning on PyTorch Lightning."""

from fedrl_lightning.deploy.loading import load_module
from fedrl_lightning.federation import (
    BestCheckpoint,
    Callback,
    EarlyStopping,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FederatedTrainer,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    FedYogi,
    Krum,
    MultiKrum,
    PerFedAvg,
    Reptile,
    RewardWeighted,
    RoundCheckpoint,
    Strategy,
    TrustRegion,
)
from fedrl_lightning.learners import A2C, PPO, Learner, Reinforce
from fedrl_lightning.population.agents import AgentPopulation
from fedrl_lightning.rollouts.dataset import EpisodeBatch, EpisodeDataset

__all__ = [
    "A2C",
    "PPO",
    "AgentPopulation",
    "BestCheckpoint",
    "Callback",
    "EarlyStopping",
    "EpisodeBatch",
    "EpisodeDataset",
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
    "Learner",
    "MultiKrum",
    "PerFedAvg",
    "Reinforce",
    "Reptile",
    "RewardWeighted",
    "RoundCheckpoint",
    "Strategy",
    "TrustRegion",
    "load_module",
]
