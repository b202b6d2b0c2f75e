"""One agent's replay buffer for the off-policy learners: a compact ring over vector env steps.

How it is stored:

- Each call to :meth:`ReplayBuffer.add` writes one step of all ``num_envs`` environments into
  one row of the ring: the observation the action was taken in, the action, the reward, and
  whether the step ``terminated`` (what a TD target treats as done) or was ``truncated`` (an
  episode end by time limit, which a TD target bootstraps through). Observations are kept as
  ``float32``, or ``uint8`` where the observation space is ``uint8``.
- A transition's next observation is not stored again: it is the observation in the ring's
  following row, for the same env. Only where that is not so is it kept apart: the final
  observation of an episode that ended (the env auto-reset, so the following row holds the
  reset observation), or any step whose ``obs`` does not continue the previous step's
  ``next_obs``. The buffer decides by comparing the two, so it never relies on the caller's
  auto-reset mode. These few observations sit in a small pool whose rows are reused once
  the transitions holding them are overwritten, so its size follows the episode ends held,
  not the steps.
- The newest step's next observations have no following row yet; they are kept as one row
  per env until the next :meth:`~ReplayBuffer.add` (which moves those that do not continue
  into the pool).
- When the ring is full the oldest row is overwritten; the transition before it (the newest)
  takes its next observation from the row just written, which is right because that row is
  the continuation the comparison above checked. The oldest remaining transition takes its
  next observation from the row after it, which is still intact.

With a gymnasium vector env, use same-step auto-reset
(``autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP``, the semantics of SB3's vector
envs and of the gymnasium that CleanRL pins) and pass as ``next_obs`` the final observations
(``infos["final_obs"]``) of the envs that ended. In the default next-step mode an env's reset
step is no transition, and with several envs it cannot be left out of a row.

The rows are allocated as they fill (doubling, up to ``buffer_size``), and
:meth:`~ReplayBuffer.state_dict` holds only the filled rows, so a buffer costs memory and disk
in proportion to what it holds. A population keeps each agent's buffer on disk
(:meth:`~ReplayBuffer.save`, :meth:`~ReplayBuffer.load`) and loads it only for that agent's
local fit.

Sampling is uniform over all stored transitions (every row, every env) and is reproducible
from a ``torch.Generator``. See :meth:`~ReplayBuffer.sample` for the n-step returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium import spaces

from fedrl_lightning.run.checkpoints import atomic_save

__all__ = ["ReplayBatch", "ReplayBuffer"]

_OBSERVATION_DTYPES = {"float32": torch.float32, "uint8": torch.uint8}
_ACTION_DTYPES = {"float32": torch.float32, "int64": torch.int64}
_NUMPY_DTYPES = {torch.float32: np.float32, torch.uint8: np.uint8, torch.int64: np.int64}
_STEP_FIELDS = ("observations", "actions", "rewards", "terminated", "truncated")
"""What each row holds of each env's step (beside ``final_rows``, the pool row or -1)."""


def _numpy_dtype(dtype: torch.dtype) -> Any:
    return _NUMPY_DTYPES[dtype]


class ReplayBatch(NamedTuple):
    """A sampled minibatch of transitions, ``B`` of them.

    The TD target is ``rewards + discounts * (1 - dones) * V(next_observations)``.

    Attributes:
        observations: ``[B, *observation_shape]``, in the buffer's observation dtype
            (``uint8`` observations stay ``uint8``; the network scales them).
        actions: ``[B, *action_shape]``, ``float32`` (continuous) or ``int64`` (discrete).
        rewards: ``[B]`` ``float32``: the reward, or the discounted sum of the ``k`` rewards
            of an n-step transition.
        next_observations: ``[B, *observation_shape]``: the observation after the ``k``
            steps (the final observation where the episode ended within them).
        dones: ``[B]`` ``float32``, 1 where the episode terminated within the ``k`` steps
            (never for a time-limit truncation, which is bootstrapped through).
        discounts: ``[B]`` ``float32``: ``gamma ** k``, the discount of the bootstrap value.
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    dones: torch.Tensor
    discounts: torch.Tensor


class ReplayBuffer:
    """A fixed-capacity ring of one agent's transitions from ``num_envs`` vector envs.

    Args:
        buffer_size: How many steps (rows of ``num_envs`` transitions) the ring holds.
        observation_shape: The shape of one env's observation.
        action_shape: The shape of one env's action; ``()`` for a discrete action.
        num_envs: How many envs each :meth:`add` holds a step of.
        observation_dtype: ``torch.float32`` or ``torch.uint8``.
        action_dtype: ``torch.float32`` (continuous) or ``torch.int64`` (discrete).

    Raises:
        ValueError: If an argument is out of range; the message names it.
    """

    def __init__(
        self,
        buffer_size: int,
        observation_shape: tuple[int, ...],
        action_shape: tuple[int, ...] = (),
        num_envs: int = 1,
        observation_dtype: torch.dtype = torch.float32,
        action_dtype: torch.dtype = torch.int64,
    ) -> None:
        for name, value in (("buffer_size", buffer_size), ("num_envs", num_envs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer of at least 1, got {value!r}")
        if observation_dtype not in _OBSERVATION_DTYPES.values():
            raise ValueError(f"observation_dtype must be float32 or uint8, got {observation_dtype}")
        if action_dtype not in _ACTION_DTYPES.values():
            raise ValueError(f"action_dtype must be float32 or int64, got {action_dtype}")
        self.buffer_size = buffer_size
        self.num_envs = num_envs
        self.observation_shape = tuple(int(size) for size in observation_shape)
        self.action_shape = tuple(int(size) for size in action_shape)
        self.observation_dtype = observation_dtype
        self.action_dtype = action_dtype
        self.pos = 0
        """The row the next :meth:`add` writes."""
        self.full = False
        """Whether the ring has wrapped, so that every row holds a step."""
        self._clear()

    @classmethod
    def from_spaces(
        cls,
        buffer_size: int,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any],
        num_envs: int = 1,
    ) -> ReplayBuffer:
        """A buffer for one env's (not the vector env's) observation and action spaces.

        Observations are stored as ``uint8`` where the space's dtype is ``uint8``, else as
        ``float32``. A :class:`~gymnasium.spaces.Box` action space gives ``float32`` actions;
        ``Discrete`` and ``MultiDiscrete`` give ``int64``.

        Raises:
            ValueError: If a space has no shape or is of an unsupported kind.
        """
        if observation_space.shape is None:
            raise ValueError(f"observation_space has no shape: {observation_space}")
        uint8 = observation_space.dtype == np.uint8
        if isinstance(action_space, spaces.Box):
            action_dtype = torch.float32
        elif isinstance(action_space, spaces.Discrete | spaces.MultiDiscrete):
            action_dtype = torch.int64
        else:
            raise ValueError(
                f"action_space must be Box, Discrete or MultiDiscrete, got {action_space}"
            )
        return cls(
            buffer_size,
            observation_space.shape,
            action_space.shape or (),
            num_envs,
            torch.uint8 if uint8 else torch.float32,
            action_dtype,
        )

    def __len__(self) -> int:
        """How many transitions are stored: filled rows times ``num_envs``."""
        return self._rows() * self.num_envs

    @property
    def nbytes(self) -> int:
        """The bytes its arrays hold: they grow with the steps added, up to ``buffer_size``."""
        arrays = (*self._data.values(), self._pool, self._last_next)
        return sum(array.nbytes for array in arrays)

    def _rows(self) -> int:
        return self.buffer_size if self.full else self.pos

    def _clear(self) -> None:
        n, obs_shape = self.num_envs, self.observation_shape
        obs_dtype = _numpy_dtype(self.observation_dtype)
        self._data: dict[str, np.ndarray] = {
            "observations": np.empty((0, n, *obs_shape), obs_dtype),
            "actions": np.empty((0, n, *self.action_shape), _numpy_dtype(self.action_dtype)),
            "rewards": np.empty((0, n), np.float32),
            "terminated": np.empty((0, n), np.bool_),
            "truncated": np.empty((0, n), np.bool_),
            # the pool row holding the transition's next observation; -1: the following row
            "final_rows": np.empty((0, n), np.int32),
        }
        self._pool = np.empty((0, *obs_shape), obs_dtype)
        self._free_pool_rows: list[int] = []
        self._last_next = np.zeros((n, *obs_shape), obs_dtype)

    def _grow(self, rows: int) -> None:
        """Allocate at least ``rows`` rows, doubling, at most ``buffer_size``."""
        allocated = self._data["observations"].shape[0]
        if rows <= allocated:
            return
        new = min(self.buffer_size, max(rows, 2 * allocated))
        for name, old in self._data.items():
            fill = -1 if name == "final_rows" else 0  # a new row has no pooled observation
            grown = np.full((new, *old.shape[1:]), fill, old.dtype)
            grown[:allocated] = old
            self._data[name] = grown

    def _to_pool(self, observations: np.ndarray) -> np.ndarray:
        """Put observations in the pool; their pool rows."""
        rows: list[int] = []
        for observation in observations:
            if not self._free_pool_rows:
                size = self._pool.shape[0]
                grown = np.empty((max(8, 2 * size), *self.observation_shape), self._pool.dtype)
                grown[:size] = self._pool
                self._pool = grown
                self._free_pool_rows = list(range(grown.shape[0] - 1, size - 1, -1))
            row = self._free_pool_rows.pop()
            self._pool[row] = observation
            rows.append(row)
        return np.array(rows, np.int32)

    def _checked(self, name: str, value: Any, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        array = np.asarray(value)
        expected = (self.num_envs, *shape)
        if array.shape != expected:
            raise ValueError(f"{name} must have shape {expected}, got {array.shape}")
        # kind "f" is np.issubdtype(..., np.floating) at a tenth of its cost, once a step each
        if array.dtype.kind == "f" and dtype in (np.int64, np.bool_):
            raise ValueError(f"{name} must hold integers or booleans, got {array.dtype}")
        return array.astype(dtype, copy=False)

    def add(
        self,
        obs: Any,
        next_obs: Any,
        actions: Any,
        rewards: Any,
        terminated: Any,
        truncated: Any,
    ) -> None:
        """Add one step of all envs (numpy arrays, tensors or nested lists).

        Args:
            obs: ``[num_envs, *observation_shape]``, the observations the actions were taken in.
            next_obs: The observations the step led to: for an env whose episode ended, its
                final observation (not the reset one that a vector env returns in its place).
            actions: ``[num_envs, *action_shape]``.
            rewards: ``[num_envs]``.
            terminated: ``[num_envs]`` booleans: the episode ended in a terminal state.
            truncated: ``[num_envs]`` booleans: the episode was cut short (a time limit).

        Raises:
            ValueError: If an argument has the wrong shape (or floats for integer actions).
        """
        obs_dtype = self._data["observations"].dtype
        obs_a = self._checked("obs", obs, self.observation_shape, obs_dtype)
        next_a = self._checked("next_obs", next_obs, self.observation_shape, obs_dtype)
        actions_a = self._checked(
            "actions", actions, self.action_shape, self._data["actions"].dtype.type
        )
        rewards_a = self._checked("rewards", rewards, (), np.float32)
        terminated_a = self._checked("terminated", terminated, (), np.bool_)
        truncated_a = self._checked("truncated", truncated, (), np.bool_)
        data, pos = self._data, self.pos
        previous = (pos - 1) % self.buffer_size
        if (self.full or pos) and previous != pos:  # len(self), without its calls
            # the newest step's next observations that this step's do not continue
            differs = obs_a != self._last_next
            if differs.any():
                breaks = differs.reshape(self.num_envs, -1).any(axis=1)
                data["final_rows"][previous, breaks] = self._to_pool(self._last_next[breaks])
        self._grow(pos + 1)
        overwritten = data["final_rows"][pos]
        if max(overwritten.tolist()) >= 0:  # a Python max: a numpy reduce costs more per step
            self._free_pool_rows.extend(overwritten[overwritten >= 0].tolist())
            overwritten[:] = -1
        data["observations"][pos] = obs_a
        data["actions"][pos] = actions_a
        data["rewards"][pos] = rewards_a
        data["terminated"][pos] = terminated_a
        data["truncated"][pos] = truncated_a
        self._last_next[:] = next_a
        self.pos = (pos + 1) % self.buffer_size
        self.full = self.full or self.pos == 0

    def _next_observations(self, rows: np.ndarray, envs: np.ndarray) -> np.ndarray:
        """The next observations of the transitions at ``(rows, envs)``."""
        following = self._data["observations"][(rows + 1) % self._rows(), envs]
        pool_rows = self._data["final_rows"][rows, envs]
        kept = pool_rows >= 0
        following[kept] = self._pool[pool_rows[kept]]
        newest = rows == (self.pos - 1) % self.buffer_size
        following[newest] = self._last_next[envs[newest]]
        return following

    def sample(
        self, batch_size: int, generator: torch.Generator, n_step: int = 1, gamma: float = 0.99
    ) -> ReplayBatch:
        """Draw ``batch_size`` transitions uniformly, with replacement, from ``generator``.

        With ``n_step`` > 1, each transition runs on through the same env's following steps
        for up to ``n_step`` steps, stopping early at the end of its episode (terminated or
        truncated), at the newest step held, or where the next observation is not the
        following row. With ``k`` the steps taken (1 to ``n_step``), ``rewards`` is
        ``sum(gamma**i * r_{t+i}, i < k)``, ``next_observations`` the observation after step
        ``t+k-1``, ``dones`` whether that step terminated, and ``discounts`` is
        ``gamma**k``. A target that stops early still bootstraps with its own discount, so
        a truncation inside the ``n_step`` steps is bootstrapped through from its final
        observation. ``n_step`` and ``gamma`` are arguments of the draw, not of the buffer,
        so the stored steps serve any ``n_step``.

        Args:
            batch_size: How many transitions; at most ``len(self)``.
            generator: The random stream; the same state gives the same batch.
            n_step: The most steps each transition spans, at least 1.
            gamma: The discount, in ``[0, 1]``.

        Returns:
            The batch, on the CPU.

        Raises:
            ValueError: If ``batch_size``, ``n_step`` or ``gamma`` is out of range.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer of at least 1, got {batch_size!r}")
        if batch_size > len(self):
            raise ValueError(
                f"batch_size ({batch_size}) is more than the {len(self)} transitions stored"
            )
        if isinstance(n_step, bool) or not isinstance(n_step, int) or n_step < 1:
            raise ValueError(f"n_step must be an integer of at least 1, got {n_step!r}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma!r}")
        flat = torch.randint(len(self), (batch_size,), generator=generator).numpy()
        rows, envs = flat // self.num_envs, flat % self.num_envs
        data = self._data
        if n_step == 1:
            rewards, last, steps = data["rewards"][rows, envs], rows, np.ones_like(rows)
        else:
            rewards, last, steps = self._n_step(rows, envs, n_step, gamma)
        discounts = (gamma ** steps.astype(np.float64)).astype(np.float32)
        return ReplayBatch(
            observations=torch.from_numpy(data["observations"][rows, envs]),
            actions=torch.from_numpy(data["actions"][rows, envs]),
            rewards=torch.from_numpy(rewards),
            next_observations=torch.from_numpy(self._next_observations(last, envs)),
            dones=torch.from_numpy(data["terminated"][last, envs].astype(np.float32)),
            discounts=torch.from_numpy(discounts),
        )

    def _n_step(
        self, rows: np.ndarray, envs: np.ndarray, n_step: int, gamma: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The discounted reward sums, the last rows and the steps taken of n-step draws."""
        data = self._data
        # [B, n_step]: the rows each transition may run through, and where it must stop
        span = (rows[:, None] + np.arange(n_step)) % self._rows()
        env_span = np.broadcast_to(envs[:, None], span.shape)
        stops = (
            data["terminated"][span, env_span]
            | data["truncated"][span, env_span]
            | (data["final_rows"][span, env_span] >= 0)
            | (span == (self.pos - 1) % self.buffer_size)
        )
        taken = np.ones_like(stops)
        taken[:, 1:] = np.logical_and.accumulate(~stops[:, :-1], axis=1)
        steps = taken.sum(axis=1)
        weights = np.where(taken, gamma ** np.arange(n_step, dtype=np.float64), 0.0)
        sums = (weights.astype(np.float32) * data["rewards"][span, env_span]).sum(axis=1)
        last = span[np.arange(len(rows)), steps - 1]
        return sums.astype(np.float32), last, steps

    def _settings(self) -> dict[str, Any]:
        return {
            "buffer_size": self.buffer_size,
            "num_envs": self.num_envs,
            "observation_shape": list(self.observation_shape),
            "action_shape": list(self.action_shape),
            "observation_dtype": str(self.observation_dtype).removeprefix("torch."),
            "action_dtype": str(self.action_dtype).removeprefix("torch."),
        }

    def state_dict(self) -> dict[str, Any]:
        """The buffer's settings, positions and filled contents: tensors and plain values.

        Only the filled rows are held (copies, not views of the ring), so the saved size
        follows what the buffer holds; the pooled next observations are held in the order
        of their transitions (``final_index``: row times ``num_envs`` plus env).
        """
        rows = self._rows()
        state = self._settings()
        state.update(pos=self.pos, full=self.full)
        state["last_next_observations"] = torch.from_numpy(self._last_next.copy())
        for name in _STEP_FIELDS:
            state[name] = torch.from_numpy(self._data[name][:rows].copy())
        final_rows = self._data["final_rows"][:rows].reshape(-1)
        kept = np.flatnonzero(final_rows >= 0)
        state["final_index"] = torch.from_numpy(kept.astype(np.int64))
        state["final_observations"] = torch.from_numpy(self._pool[final_rows[kept]])
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned, from a buffer of the same settings.

        Raises:
            ValueError: If the settings differ from this buffer's, or an entry is missing or
                misshapen; the message names it.
        """
        for name, value in self._settings().items():
            if state_dict.get(name) != value:
                raise ValueError(f"replay state has {name} {state_dict.get(name)!r}, not {value!r}")
        pos, full = state_dict.get("pos"), state_dict.get("full")
        if (
            not isinstance(pos, int)
            or not 0 <= pos < self.buffer_size
            or not isinstance(full, bool)
        ):
            raise ValueError(f"replay state has pos {pos!r} and full {full!r}")
        tensors = (*_STEP_FIELDS, "last_next_observations", "final_index", "final_observations")
        for name in tensors:
            if not isinstance(state_dict.get(name), torch.Tensor):
                raise ValueError(f"replay state has no tensor {name!r}")
        rows = self.buffer_size if full else pos
        self._clear()
        self._grow(rows)
        shapes = {name: array[:rows] for name, array in self._data.items()}
        shapes["last_next_observations"] = self._last_next
        for name, expected in shapes.items():
            if name == "final_rows":
                continue
            value = state_dict[name].numpy()
            if value.shape != expected.shape or value.dtype != expected.dtype:
                raise ValueError(f"replay state's {name} is {value.shape} {value.dtype}")
            expected[...] = value
        index = state_dict["final_index"].numpy()
        finals = state_dict["final_observations"].numpy()
        if index.ndim != 1 or ((index < 0) | (index >= rows * self.num_envs)).any():
            raise ValueError("replay state's final_index points outside the filled rows")
        if finals.shape != (len(index), *self.observation_shape):
            raise ValueError(f"replay state's final_observations is {finals.shape}")
        self._data["final_rows"][:rows].reshape(-1)[index] = self._to_pool(finals)
        self.pos, self.full = pos, full

    def save(self, path: str | Path) -> None:
        """Write :meth:`state_dict` to ``path`` atomically (all of it, or the old file)."""
        atomic_save(self.state_dict(), Path(path))

    @classmethod
    def load(cls, path: str | Path) -> ReplayBuffer:
        """The buffer that :meth:`save` wrote to ``path``, loaded with ``weights_only=True``.

        Raises:
            ValueError: If the file does not hold a replay buffer's state.
        """
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
        return cls.from_state_dict(state, str(path))

    @classmethod
    def from_state_dict(cls, state: Any, source: str = "replay state") -> ReplayBuffer:
        """The buffer whose :meth:`state_dict` ``state`` is, settings included.

        Args:
            state: What :meth:`state_dict` returned (loaded with ``weights_only=True``).
            source: Where it came from, for messages.

        Raises:
            ValueError: If ``state`` is not a replay buffer's state.
        """
        if not isinstance(state, dict):
            raise ValueError(f"{source} does not hold a replay buffer's state")
        size, num_envs = state.get("buffer_size"), state.get("num_envs")
        observation_dtype = _OBSERVATION_DTYPES.get(state.get("observation_dtype", ""))
        action_dtype = _ACTION_DTYPES.get(state.get("action_dtype", ""))
        obs_shape, action_shape = state.get("observation_shape"), state.get("action_shape")
        if (
            not isinstance(size, int)
            or not isinstance(num_envs, int)
            or observation_dtype is None
            or action_dtype is None
            or not isinstance(obs_shape, list)
            or not isinstance(action_shape, list)
        ):
            raise ValueError(f"{source} does not hold a replay buffer's settings")
        buffer = cls(
            size, tuple(obs_shape), tuple(action_shape), num_envs, observation_dtype, action_dtype
        )
        buffer.load_state_dict(state)
        return buffer
