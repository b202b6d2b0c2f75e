"""Learners: one LightningModule per algorithm over a small base."""

from fedrl_lightning.learners.base import Learner
from fedrl_lightning.learners.reinforce import Reinforce

__all__ = ["Learner", "Reinforce"]
