"""Environments that ship with fedrl_lightning, registered with gymnasium on import."""

import gymnasium

from fedrl_lightning.population.envs.simple import SimpleEnv, SimpleVectorEnv

__all__ = ["SimpleEnv", "SimpleVectorEnv"]

SIMPLE_ENV_ID = "fedrl/Simple-v0"

if SIMPLE_ENV_ID not in gymnasium.registry:
    gymnasium.register(
        id=SIMPLE_ENV_ID,
        entry_point="fedrl_lightning.population.envs.simple:SimpleEnv",
        vector_entry_point="fedrl_lightning.population.envs.simple:SimpleVectorEnv",
        max_episode_steps=100,
    )
