"""Learners: one LightningModule per algorithm over a small base."""

from fedrl_lightning.learners.a2c import A2C
from fedrl_lightning.learners.actor_critic import ActorCritic
from fedrl_lightning.learners.base import Learner
from fedrl_lightning.learners.dqn import DQN
from fedrl_lightning.learners.ppo import PPO
from fedrl_lightning.learners.reinforce import Reinforce
from fedrl_lightning.learners.replay_learner import ReplayLearner
from fedrl_lightning.learners.sac import SAC
from fedrl_lightning.learners.td3 import TD3

__all__ = [
    "A2C",
    "DQN",
    "LEARNERS",
    "SAC",
    "TD3",
    "ActorCritic",
    "Learner",
    "PPO",
    "Reinforce",
    "ReplayLearner",
]

LEARNERS: tuple[type[Learner], ...] = (Reinforce, A2C, PPO, DQN, SAC, TD3)
"""The learners fedrl_lightning ships, which ``--model NAME`` and ``load_module`` know by name."""
