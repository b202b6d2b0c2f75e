"""Learners: one LightningModule per algorithm over a small base."""

from fedrl_lightning.learners.a2c import A2C
from fedrl_lightning.learners.actor_critic import ActorCritic
from fedrl_lightning.learners.base import Learner
from fedrl_lightning.learners.dqn import DQN
from fedrl_lightning.learners.ppo import PPO
from fedrl_lightning.learners.reinforce import Reinforce
from fedrl_lightning.learners.replay_learner import ReplayLearner
from fedrl_lightning.learners.sac import SAC

__all__ = [
    "A2C",
    "DQN",
    "LEARNERS",
    "SAC",
    "ActorCritic",
    "Learner",
    "PPO",
    "Reinforce",
    "ReplayLearner",
]

LEARNERS: tuple[type[Learner], ...] = (Reinforce, A2C, PPO, DQN, SAC)
"""The learners fedrl_lightning ships, which ``--model NAME`` and ``load_module`` know by name."""
