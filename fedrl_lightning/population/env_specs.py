"""What a population needs of a gymnasium environment: its spec, time limit and spaces."""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym
from gymnasium import spaces

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.extras import missing_extra

__all__ = ["action_spec", "dependency_error", "episode_limit", "find_spec", "observation_dim"]

EXTRA_OF_ENTRY_POINTS = {"gymnasium.envs.box2d.": ("Box2D", "box2d")}
"""gymnasium's environments whose package an extra of ours installs: the package and extra."""


def find_spec(env_id: str) -> gym.envs.registration.EnvSpec:
    """The registered spec of ``env_id``; ``module:Env-v0`` first imports ``module``.

    Raises:
        ConfigError: Naming ``data.env_id`` if the module or the id is unknown.
    """
    if not isinstance(env_id, str):
        raise ConfigError(
            f"data.env_id: expected a gymnasium id such as CartPole-v1, got {env_id!r}"
        )
    module, _, name = env_id.rpartition(":")
    if module:  # as gymnasium.make does
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ConfigError(f"data.env_id: cannot import {module!r} ({err})") from None
    try:
        return gym.spec(name)
    except gym.error.Error as err:
        raise ConfigError(f"data.env_id: unknown environment {env_id!r} ({err})") from None


def dependency_error(env_id: str, err: gym.error.DependencyNotInstalled) -> ConfigError:
    """One line for ``env_id`` needing a package that is not installed.

    Box2D's environments (LunarLander, BipedalWalker, CarRacing) name the ``box2d`` extra,
    whose wheel needs no ``swig``; others keep gymnasium's own advice.

    Args:
        env_id: The environment, as ``data.env_id`` gave it.
        err: What gymnasium raised when making it.

    Returns:
        The error naming ``data.env_id``, and the command that installs the package.
    """
    entry_point = str(find_spec(env_id).entry_point)
    for prefix, (package, extra) in EXTRA_OF_ENTRY_POINTS.items():
        if entry_point.startswith(prefix):
            return missing_extra(f"data.env_id: {env_id}", package, extra)
    return ConfigError(f"data.env_id: {env_id} needs a package: {err}")


def episode_limit(
    spec: gym.envs.registration.EnvSpec,
    env_kwargs: dict[str, Any],
    max_episode_steps: int | None,
    env_id: str,
) -> int:
    """The episode length cap: ``max_episode_steps``, else the environment's registered one.

    ``env_id`` is the id as given (``module:Env-v0`` included), for the message.

    Raises:
        ConfigError: For a cap given through ``env_kwargs``, a cap that is not positive, or an
            environment without a limit and no cap given.
    """
    if "max_episode_steps" in env_kwargs:
        raise ConfigError("data.env_kwargs.max_episode_steps: set data.max_episode_steps instead")
    if max_episode_steps is None:
        max_episode_steps = spec.max_episode_steps
        if max_episode_steps is None:
            raise ConfigError(
                f"data.max_episode_steps: {env_id} sets no time limit, so an episode may never "
                "end; set data.max_episode_steps"
            )
    elif isinstance(max_episode_steps, bool) or max_episode_steps <= 0:
        raise ConfigError(f"data.max_episode_steps must be positive, got {max_episode_steps}")
    return int(max_episode_steps)


def observation_dim(env: gym.Env, env_id: str) -> int:
    """The size of ``env``'s flat Box observation.

    Raises:
        ConfigError: Naming ``data.env_id`` for any other observation space.
    """
    space = env.observation_space
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise ConfigError(
            f"data.env_id: {env_id} has observation space {space}; a flat Box is required"
        )
    return int(space.shape[0])


def action_spec(
    env: gym.Env, env_id: str
) -> tuple[bool, int, list[float] | None, list[float] | None]:
    """``(continuous, num_actions, low, high)`` of ``env``'s Discrete or flat Box actions.

    Raises:
        ConfigError: Naming ``data.env_id`` for any other action space.
    """
    space = env.action_space
    if isinstance(space, spaces.Discrete):
        return False, int(space.n), None, None
    if isinstance(space, spaces.Box) and len(space.shape) == 1:
        return True, int(space.shape[0]), space.low.tolist(), space.high.tolist()
    raise ConfigError(
        f"data.env_id: {env_id} has action space {space}; "
        "a Discrete or a flat Box action space is required"
    )
