"""The population of agents: whose environment is what, and how to build it."""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym
from gymnasium import spaces

import fedrl_lightning.envs  # noqa: F401  (registers fedrl/* ids)
from fedrl_lightning.errors import ConfigError

__all__ = ["AgentPopulation"]


class AgentPopulation:
    """``num_agents`` agents, each with its own instance of a gymnasium environment.

    This is the ``data`` section of the command line: it says where experience comes from.
    Agents are numbered ``0 .. num_agents - 1``; each agent's environment is built fresh for
    every local fit and seeded from (run seed, round, agent id), so no environment stays open
    between rounds.

    Args:
        env_id: A registered gymnasium id, such as ``fedrl/Simple-v0`` or ``CartPole-v1``;
            ``module:Env-v0`` first imports ``module``, which registers ``Env-v0``.
        num_agents: How many agents the federation has.
        env_kwargs: Keyword arguments passed to ``gymnasium.make`` for every agent.
        episodes_per_update: Episodes per REINFORCE update (one batch of the episode dataset).
    """

    def __init__(
        self,
        env_id: str = "fedrl/Simple-v0",
        num_agents: int = 10,
        env_kwargs: dict[str, Any] | None = None,
        episodes_per_update: int = 1,
    ) -> None:
        if num_agents <= 0:
            raise ConfigError(f"data.num_agents must be positive, got {num_agents}")
        if episodes_per_update <= 0:
            raise ConfigError(
                f"data.episodes_per_update must be positive, got {episodes_per_update}"
            )
        self.env_id = env_id
        self.num_agents = num_agents
        self.env_kwargs = dict(env_kwargs or {})
        self.episodes_per_update = episodes_per_update
        self.spec = self._find_spec(env_id)
        probe = self._make(disable_env_checker=False)
        self.observation_dim, self.num_actions = self._check_spaces(probe)
        probe.reset(seed=0)
        probe.close()

    def make_env(self, agent_id: int) -> gym.Env:
        """Build agent ``agent_id``'s environment.

        gymnasium's passive env checker ran once on the probe built by ``__init__``, so agents'
        environments skip its wrapper and the per-step cost that comes with it.
        """
        return self._make(disable_env_checker=True)

    def _make(self, disable_env_checker: bool) -> gym.Env:
        try:
            return gym.make(self.env_id, disable_env_checker=disable_env_checker, **self.env_kwargs)
        except TypeError as err:
            raise ConfigError(f"data.env_kwargs: {err}") from None

    def make_vector_env(self, agent_ids: list[int]) -> gym.vector.VectorEnv:
        """Build one vectorised environment with a sub-environment per entry of ``agent_ids``.

        Evaluation seeds each sub-environment on its own, so the environment's native vector
        implementation is used only when it accepts a list of seeds (it sets
        ``accepts_seed_list``, as ``fedrl/Simple-v0`` does); otherwise gymnasium's
        ``SyncVectorEnv`` steps the agents' single environments.
        """
        if self.spec.vector_entry_point is not None:
            native = gym.make_vec(
                self.env_id,
                num_envs=len(agent_ids),
                vectorization_mode="vector_entry_point",
                **self.env_kwargs,
            )
            if getattr(native, "accepts_seed_list", False):
                return native
            native.close()
        return gym.vector.SyncVectorEnv([lambda a=a: self.make_env(a) for a in agent_ids])

    @staticmethod
    def _find_spec(env_id: str) -> gym.envs.registration.EnvSpec:
        # As in gymnasium.make, "module:Env-v0" imports the module that registers the env.
        module, _, name = env_id.rpartition(":")
        if module:
            try:
                importlib.import_module(module)
            except ImportError as err:
                raise ConfigError(f"data.env_id: cannot import {module!r} ({err})") from None
        try:
            return gym.spec(name)
        except gym.error.Error as err:
            raise ConfigError(f"data.env_id: unknown environment {env_id!r} ({err})") from None

    def _check_spaces(self, env: gym.Env) -> tuple[int, int]:
        obs_space, action_space = env.observation_space, env.action_space
        if not isinstance(obs_space, spaces.Box) or len(obs_space.shape) != 1:
            raise ConfigError(
                f"data.env_id: {self.env_id} has observation space {obs_space}; "
                "a flat Box is required"
            )
        if not isinstance(action_space, spaces.Discrete):
            raise ConfigError(
                f"data.env_id: {self.env_id} has action space {action_space}; "
                "a Discrete action space is required"
            )
        return int(obs_space.shape[0]), int(action_space.n)
