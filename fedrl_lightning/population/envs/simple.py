"""The tutorial's SimpleEnv as a gymnasium environment, plus its native vector version."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector.utils import batch_space

__all__ = ["SimpleEnv", "SimpleVectorEnv"]

STATE_DIM = 4
NUM_ACTIONS = 2
NOISE_CHUNK = 128  # random-walk increments drawn per generator call


class SimpleEnv(gym.Env[np.ndarray, np.int64]):
    """A 4-dimensional Gaussian random walk where acting on a positive coordinate pays 1.

    The start state is standard normal. Action ``a`` (0 or 1) earns reward ``1.0`` when
    ``state[a] > 0``; then every coordinate takes a Gaussian step of scale ``noise_scale``.
    Actions do not change the state. The oracle (pick the larger of ``state[0]`` and
    ``state[1]``) scores about 75 over 100 steps; a random policy scores 50. The registered id
    ``fedrl/Simple-v0`` truncates episodes after 100 steps.

    With ``reward_sign`` -1 the task is the opposite one: action ``a`` pays when
    ``state[a] < 0``, and the oracle picks the smaller of ``state[0]`` and ``state[1]`` (it
    still scores about 75). Agents can differ through ``noise_scale``, ``drift`` and
    ``reward_sign`` (see ``--data.heterogeneity``): ``{reward_sign: {choices: [1, -1]}}``
    gives half of them the opposite task, which no single policy serves.

    Args:
        noise_scale: Standard deviation of each random-walk step.
        drift: Mean of each random-walk step, the same for every coordinate.
        reward_sign: 1, reward for a positive coordinate; -1, for a negative one.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self, noise_scale: float = 0.1, drift: float = 0.0, reward_sign: float = 1.0
    ) -> None:
        self.noise_scale = noise_scale
        self.drift = drift
        self.reward_sign = reward_sign
        self.observation_space = spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32)
        self.action_space = spaces.Discrete(NUM_ACTIONS)
        self._state = np.zeros(STATE_DIM, np.float32)
        self._noise = np.zeros((0, STATE_DIM), np.float32)
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw a new start state."""
        super().reset(seed=seed)
        self._state = self.np_random.standard_normal(STATE_DIM, dtype=np.float32)
        self._draw_noise()
        return self._state, {}

    def step(
        self, action: int | np.integer
    ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Pay for the chosen coordinate, then take one random-walk step."""
        reward = 1.0 if self.reward_sign * self._state[action] > 0 else 0.0
        if self._t == len(self._noise):
            self._draw_noise()
        self._state = self._state + self._noise[self._t]
        self._t += 1
        return self._state, reward, False, False, {}

    def _draw_noise(self) -> None:
        noise = self.np_random.standard_normal((NOISE_CHUNK, STATE_DIM), dtype=np.float32)
        self._noise = noise * np.float32(self.noise_scale) + np.float32(self.drift)
        self._t = 0


class SimpleVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` independent SimpleEnvs stepped together with array operations.

    Sub-environment ``i`` reset with seed ``s`` follows exactly the trajectory of a
    ``SimpleEnv`` reset with seed ``s``, so batched evaluation matches one-by-one evaluation.
    Episodes truncate after ``max_episode_steps`` and reset on the next step (gymnasium's
    next-step autoreset).

    Args:
        num_envs: How many sub-environments to run.
        noise_scale: Standard deviation of each random-walk step.
        drift: Mean of each random-walk step.
        reward_sign: 1, reward for a positive coordinate; -1, for a negative one.
        max_episode_steps: Episode length.
    """

    metadata: dict[str, Any] = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}
    accepts_seed_list = True  # reset(seed=[...]) seeds each sub-environment on its own

    def __init__(
        self,
        num_envs: int = 1,
        noise_scale: float = 0.1,
        drift: float = 0.0,
        reward_sign: float = 1.0,
        max_episode_steps: int = 100,
    ) -> None:
        self.num_envs = num_envs
        self.noise_scale = noise_scale
        self.drift = drift
        self.reward_sign = reward_sign
        self.max_episode_steps = max_episode_steps
        self.single_observation_space = spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32)
        self.single_action_space = spaces.Discrete(NUM_ACTIONS)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._rngs = [seeding.np_random(None)[0] for _ in range(num_envs)]
        self._state = np.zeros((num_envs, STATE_DIM), np.float32)
        self._noise = np.zeros((num_envs, 0, STATE_DIM), np.float32)
        self._t = 0
        self._elapsed = np.zeros(num_envs, np.int64)
        self._needs_reset = np.zeros(num_envs, bool)

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-environment; a list gives each its own seed."""
        if seed is not None:
            seeds = seed if isinstance(seed, list) else [seed + i for i in range(self.num_envs)]
            self._rngs = [seeding.np_random(s)[0] for s in seeds]
        for i in range(self.num_envs):
            self._reset_one(i)
        self._needs_reset[:] = False  # a reset replaces any pending autoreset
        self._draw_noise()
        return self._state.copy(), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-environment; those that finished last step reset instead."""
        rows = np.arange(self.num_envs)
        rewards = (self.reward_sign * self._state[rows, actions] > 0).astype(np.float64)
        if self._t == self._noise.shape[1]:
            self._draw_noise()
        self._state = self._state + self._noise[:, self._t]
        self._t += 1
        self._elapsed += 1
        for i in np.flatnonzero(self._needs_reset):
            self._reset_one(i)
            rewards[i] = 0.0
        truncated = self._elapsed >= self.max_episode_steps
        self._needs_reset = truncated.copy()
        terminated = np.zeros(self.num_envs, bool)
        return self._state.copy(), rewards, terminated, truncated, {}

    def _reset_one(self, i: int | np.integer) -> None:
        self._state[i] = self._rngs[i].standard_normal(STATE_DIM, dtype=np.float32)
        self._elapsed[i] = 0

    def _draw_noise(self) -> None:
        noise = np.stack(
            [rng.standard_normal((NOISE_CHUNK, STATE_DIM), dtype=np.float32) for rng in self._rngs]
        )
        self._noise = noise * np.float32(self.noise_scale) + np.float32(self.drift)
        self._t = 0
