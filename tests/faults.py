"""Failures on purpose, for the tests of failing agents.

``faults:Crashing-v0`` is an environment whose every step raises. ``FlakyModule`` fails some
local fits: it raises, or returns NaN weights, with given probabilities drawn from torch's
generator, which each local fit seeds from (run seed, round, agent).
"""

import gymnasium as gym
import torch

from fedrl_lightning import ReinforceModule
from fedrl_lightning.envs.simple import SimpleEnv


class CrashingEnv(SimpleEnv):
    def step(self, action):
        raise RuntimeError("injected crash in step")


gym.register("Crashing-v0", entry_point=CrashingEnv, max_episode_steps=100)


class FlakyModule(ReinforceModule):
    def __init__(self, crash_prob: float = 0.0, nan_prob: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.poison = False

    def on_train_start(self):
        draw = torch.rand(()).item()
        if draw < self.hparams.crash_prob:
            raise RuntimeError("injected crash in the local fit")
        self.poison = draw < self.hparams.crash_prob + self.hparams.nan_prob

    def on_train_end(self):
        if self.poison:
            with torch.no_grad():
                self.policy.head.weight.fill_(float("nan"))
