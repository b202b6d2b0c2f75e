"""Curiosity-driven exploration: intrinsic rewards from RND or ICM, federated with the policy."""

from fedrl_lightning.exploration.base import Curiosity, Transitions, next_observations, transitions
from fedrl_lightning.exploration.icm import ICM
from fedrl_lightning.exploration.options import CuriosityOptions, make_curiosity
from fedrl_lightning.exploration.rnd import RND

__all__ = [
    "ICM",
    "RND",
    "Curiosity",
    "CuriosityOptions",
    "Transitions",
    "make_curiosity",
    "next_observations",
    "transitions",
]
