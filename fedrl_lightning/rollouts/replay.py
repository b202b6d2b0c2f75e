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
  auto-reset mode. These few observations sit in a small pool that grows and shrinks with
  the episode ends held, so its size follows the number of episodes, not of steps.
- The newest step's next observations have no following row yet; they are kept as one row
  per env until the next :meth:`~ReplayBuffer.add` (which moves those that do not continue
  into the pool).
- When the ring is full the oldest row is overwritten; the transition before it (the newest)
  takes its next observation from the row just written, which is right because that row is
  the continuation the comparison above checked. The oldest remaining transition takes its
  next observation from the row after it, which is still intact.

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
_FIELDS = ("observations", "actions", "rewards", "terminated", "truncated", "final_rows")


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

    def _rows(self) -> int:
        return self.buffer_size if self.full else self.pos

    def _clear(self) -> None:
        n = self.num_envs
        self._data: dict[str, torch.Tensor] = {
            "observations": torch.empty(
                (0, n, *self.observation_shape), dtype=self.observation_dtype
            ),
            "actions": torch.empty((0, n, *self.action_shape), dtype=self.action_dtype),
            "rewards": torch.empty((0, n), dtype=torch.float32),
            "terminated": torch.empty((0, n), dtype=torch.bool),
            "truncated": torch.empty((0, n), dtype=torch.bool),
            # the pool row holding the transition's next observation; -1: the following row
            "final_rows": torch.empty((0, n), dtype=torch.int32),
        }
        self._pool = torch.empty((0, *self.observation_shape), dtype=self.observation_dtype)
        self._free_pool_rows: list[int] = []
        self._last_next = torch.empty((n, *self.observation_shape), dtype=self.observation_dtype)

    def _grow(self, rows: int) -> None:
        """Allocate at least ``rows`` rows, doubling, at most ``buffer_size``."""
        allocated = self._data["observations"].shape[0]
        if rows <= allocated:
            return
        new = min(self.buffer_size, max(rows, 2 * allocated))
        for name, old in self._data.items():
            fill = -1 if name == "final_rows" else 0  # a new row has no pooled observation
            grown = torch.full((new, *old.shape[1:]), fill, dtype=old.dtype)
            grown[:allocated] = old
            self._data[name] = grown

    def _to_pool(self, observations: torch.Tensor) -> torch.Tensor:
        """Put observations in the pool; their pool rows, as ``int32``."""
        rows: list[int] = []
        for observation in observations:
            if not self._free_pool_rows:
                size = self._pool.shape[0]
                grown = torch.empty(
                    (max(8, 2 * size), *self.observation_shape), dtype=self._pool.dtype
                )
                grown[:size] = self._pool
                self._pool = grown
                self._free_pool_rows = list(range(grown.shape[0] - 1, size - 1, -1))
            row = self._free_pool_rows.pop()
            self._pool[row] = observation
            rows.append(row)
        return torch.tensor(rows, dtype=torch.int32)

    def _checked(
        self, name: str, value: Any, shape: tuple[int, ...], dtype: torch.dtype
    ) -> torch.Tensor:
        tensor = torch.as_tensor(value)
        expected = (self.num_envs, *shape)
        if tuple(tensor.shape) != expected:
            raise ValueError(f"{name} must have shape {expected}, got {tuple(tensor.shape)}")
        if dtype in (torch.int64, torch.bool) and tensor.is_floating_point():
            raise ValueError(f"{name} must hold integers or booleans, got {tensor.dtype}")
        return tensor.to(dtype)

    def add(
        self,
        obs: Any,
        next_obs: Any,
        actions: Any,
        rewards: Any,
        terminated: Any,
        truncated: Any,
    ) -> None:
        """Add one step of all envs.

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
        obs_t = self._checked("obs", obs, self.observation_shape, self.observation_dtype)
        next_t = self._checked("next_obs", next_obs, self.observation_shape, self.observation_dtype)
        actions_t = self._checked("actions", actions, self.action_shape, self.action_dtype)
        rewards_t = self._checked("rewards", rewards, (), torch.float32)
        terminated_t = self._checked("terminated", terminated, (), torch.bool)
        truncated_t = self._checked("truncated", truncated, (), torch.bool)
        data = self._data
        previous = (self.pos - 1) % self.buffer_size
        if len(self) and previous != self.pos:
            # the newest step's next observations that this step's do not continue
            breaks = (obs_t != self._last_next).flatten(1).any(1)
            if breaks.any():
                data["final_rows"][previous, breaks] = self._to_pool(self._last_next[breaks])
        self._grow(self.pos + 1)
        overwritten = data["final_rows"][self.pos]
        self._free_pool_rows.extend(overwritten[overwritten >= 0].tolist())
        data["observations"][self.pos] = obs_t
        data["actions"][self.pos] = actions_t
        data["rewards"][self.pos] = rewards_t
        data["terminated"][self.pos] = terminated_t
        data["truncated"][self.pos] = truncated_t
        data["final_rows"][self.pos] = -1
        self._last_next = next_t.clone()
        self.pos = (self.pos + 1) % self.buffer_size
        self.full = self.full or self.pos == 0

    def _next_observations(self, rows: torch.Tensor, envs: torch.Tensor) -> torch.Tensor:
        """The next observations of the transitions at ``(rows, envs)``."""
        data = self._data
        following = data["observations"][(rows + 1) % self._rows(), envs]
        pool_rows = data["final_rows"][rows, envs]
        kept = pool_rows >= 0
        following[kept] = self._pool[pool_rows[kept].long()]
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
        flat = torch.randint(len(self), (batch_size,), generator=generator)
        rows, envs = flat // self.num_envs, flat % self.num_envs
        data = self._data
        # [B, n_step]: the rows each transition may run through, and where it must stop
        span = (rows[:, None] + torch.arange(n_step)) % self._rows()
        env_span = envs[:, None].expand_as(span)
        stops = (
            data["terminated"][span, env_span]
            | data["truncated"][span, env_span]
            | (data["final_rows"][span, env_span] >= 0)
            | (span == (self.pos - 1) % self.buffer_size)
        )
        taken = torch.ones_like(stops)
        taken[:, 1:] = (~stops[:, :-1]).cumprod(dim=1).bool()
        steps = taken.sum(dim=1)
        powers = gamma ** torch.arange(n_step, dtype=torch.float64)
        weights = torch.where(taken, powers, 0.0).to(torch.float32)
        last = span.gather(1, (steps - 1)[:, None]).squeeze(1)
        return ReplayBatch(
            observations=data["observations"][rows, envs],
            actions=data["actions"][rows, envs],
            rewards=(weights * data["rewards"][span, env_span]).sum(dim=1),
            next_observations=self._next_observations(last, envs),
            dones=data["terminated"][last, envs].to(torch.float32),
            discounts=(gamma ** steps.to(torch.float64)).to(torch.float32),
        )

    def state_dict(self) -> dict[str, Any]:
        """The buffer's settings, positions and filled contents: tensors and plain values.

        Only the filled rows are held (copies, not views of the ring), so the saved size
        follows what the buffer holds; the pooled next observations are held in the order
        of their transitions.
        """
        rows = self._rows()
        state: dict[str, Any] = {
            "buffer_size": self.buffer_size,
            "num_envs": self.num_envs,
            "observation_shape": list(self.observation_shape),
            "action_shape": list(self.action_shape),
            "observation_dtype": str(self.observation_dtype).removeprefix("torch."),
            "action_dtype": str(self.action_dtype).removeprefix("torch."),
            "pos": self.pos,
            "full": self.full,
            "last_next_observations": self._last_next.clone(),
        }
        for name in _FIELDS[:-1]:
            state[name] = self._data[name][:rows].clone()
        final_rows = self._data["final_rows"][:rows].flatten()
        kept = torch.nonzero(final_rows >= 0).squeeze(1)
        state["final_index"] = kept
        state["final_observations"] = self._pool[final_rows[kept].long()].clone()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned, from a buffer of the same settings.

        Raises:
            ValueError: If the settings differ from this buffer's, or an entry is missing or
                misshapen; the message names it.
        """
        settings = {
            "buffer_size": self.buffer_size,
            "num_envs": self.num_envs,
            "observation_shape": list(self.observation_shape),
            "action_shape": list(self.action_shape),
            "observation_dtype": str(self.observation_dtype).removeprefix("torch."),
            "action_dtype": str(self.action_dtype).removeprefix("torch."),
        }
        for name, value in settings.items():
            if state_dict.get(name) != value:
                raise ValueError(f"replay state has {name} {state_dict.get(name)!r}, not {value!r}")
        pos, full = state_dict.get("pos"), state_dict.get("full")
        if (
            not isinstance(pos, int)
            or not 0 <= pos < self.buffer_size
            or not isinstance(full, bool)
        ):
            raise ValueError(f"replay state has pos {pos!r} and full {full!r}")
        rows = self.buffer_size if full else pos
        self._clear()
        self.pos, self.full = pos, full
        self._grow(rows)
        for name in (*_FIELDS[:-1], "last_next_observations", "final_index", "final_observations"):
            if not isinstance(state_dict.get(name), torch.Tensor):
                raise ValueError(f"replay state has no tensor {name!r}")
        for name in _FIELDS[:-1]:
            value = state_dict[name]
            expected = self._data[name][:rows]
            if value.shape != expected.shape or value.dtype != expected.dtype:
                raise ValueError(f"replay state's {name} is {tuple(value.shape)} {value.dtype}")
            expected.copy_(value)
        last_next = state_dict["last_next_observations"]
        if last_next.shape != self._last_next.shape:
            raise ValueError(f"replay state's last_next_observations is {tuple(last_next.shape)}")
        self._last_next = last_next.to(self.observation_dtype).clone()
        index = state_dict["final_index"].long()
        if index.numel() and (index.min() < 0 or index.max() >= rows * self.num_envs):
            raise ValueError("replay state's final_index points outside the filled rows")
        finals = state_dict["final_observations"]
        if finals.shape != (index.numel(), *self.observation_shape):
            raise ValueError(f"replay state's final_observations is {tuple(finals.shape)}")
        final_rows = self._data["final_rows"]
        final_rows[:rows] = -1
        final_rows[:rows].view(-1)[index] = self._to_pool(finals)

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
        if not isinstance(state, dict):
            raise ValueError(f"{path} does not hold a replay buffer's state")
        observation_dtype = _OBSERVATION_DTYPES.get(state.get("observation_dtype", ""))
        action_dtype = _ACTION_DTYPES.get(state.get("action_dtype", ""))
        if observation_dtype is None or action_dtype is None:
            raise ValueError(f"{path} does not hold a replay buffer's dtypes")
        buffer = cls(
            state.get("buffer_size"),
            tuple(state.get("observation_shape", ())),
            tuple(state.get("action_shape", ())),
            state.get("num_envs"),
            observation_dtype,
            action_dtype,
        )
        buffer.load_state_dict(state)
        return buffer
