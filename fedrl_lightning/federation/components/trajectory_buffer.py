"""The server's bounded buffer of shared episodes, and the packed form episodes travel in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from fedrl_lightning.rollouts.dataset import StoredEpisode
from fedrl_lightning.run.checkpoints import serialize

__all__ = [
    "EpisodeLayout",
    "TrajectoryBuffer",
    "pack_episodes",
    "packed_bytes",
    "unpack_episodes",
]

PER_STEP = ("observations", "actions", "rewards", "log_probs")
PER_EPISODE = ("terminated", "truncated", "final_observations")


class EpisodeLayout(NamedTuple):
    """The spaces every shared episode must have: those of the federation's policy.

    Attributes:
        observation_dim: Size of an observation.
        num_actions: Number of discrete actions, or the size of a continuous action.
        continuous: Whether actions are continuous.
    """

    observation_dim: int
    num_actions: int
    continuous: bool

    @classmethod
    def of_hparams(cls, hparams: Mapping[str, Any]) -> EpisodeLayout:
        """The layout of the policy a learner's hyperparameters describe."""
        return cls(
            int(hparams["observation_dim"]),
            int(hparams["num_actions"]),
            bool(hparams.get("continuous", False)),
        )


def pack_episodes(episodes: Sequence[StoredEpisode]) -> dict[str, torch.Tensor]:
    """Episodes as a few flat tensors: their steps end to end, and each one's length.

    Returns:
        ``lengths`` ``[episodes]``; ``observations``, ``actions``, ``rewards`` and
        ``log_probs`` over all the steps; ``terminated``, ``truncated`` and
        ``final_observations`` per episode. Empty (``{}``) for no episodes.
    """
    if not episodes:
        return {}
    return {
        "lengths": torch.tensor([len(e.rewards) for e in episodes], dtype=torch.int64),
        "observations": torch.cat([e.observations for e in episodes]),
        "actions": torch.cat([e.actions for e in episodes]),
        "rewards": torch.cat([e.rewards for e in episodes]),
        "log_probs": torch.cat([e.log_probs for e in episodes]),
        "terminated": torch.tensor([e.terminated for e in episodes], dtype=torch.bool),
        "truncated": torch.tensor([e.truncated for e in episodes], dtype=torch.bool),
        "final_observations": torch.stack([e.final_observation for e in episodes]),
    }


def packed_bytes(episodes: Sequence[StoredEpisode]) -> int:
    """The serialized size of ``episodes`` packed: what sharing them sends. 0 for none."""
    return len(serialize(pack_episodes(episodes))) if episodes else 0


def unpack_episodes(packed: object, layout: EpisodeLayout) -> list[StoredEpisode]:
    """The episodes of :func:`pack_episodes`'s output, checked, since a sender is untrusted.

    Raises:
        ValueError: With the reason, if anything is missing, of the wrong type or shape,
            not finite, or an action outside the action space.
    """
    if isinstance(packed, dict) and not packed:
        return []
    if not isinstance(packed, dict) or not all(
        isinstance(packed.get(k), torch.Tensor) for k in ("lengths", *PER_STEP, *PER_EPISODE)
    ):
        raise ValueError("shared episodes are not the packed tensors expected")
    lengths = packed["lengths"]
    if lengths.dtype != torch.int64 or lengths.ndim != 1 or bool((lengths < 1).any()):
        raise ValueError("shared episodes' lengths are not positive integers")
    steps, count, obs = int(lengths.sum()), len(lengths), layout.observation_dim
    action_shape = (steps, layout.num_actions) if layout.continuous else (steps,)
    shapes = {
        "observations": ((steps, obs), torch.float32),
        "actions": (action_shape, torch.float32 if layout.continuous else torch.int64),
        "rewards": ((steps,), torch.float32),
        "log_probs": ((steps,), torch.float32),
        "terminated": ((count,), torch.bool),
        "truncated": ((count,), torch.bool),
        "final_observations": ((count, obs), torch.float32),
    }
    for name, (shape, dtype) in shapes.items():
        tensor = packed[name]
        if tuple(tensor.shape) != shape or tensor.dtype != dtype:
            raise ValueError(f"shared episodes' {name} are not {dtype} of shape {list(shape)}")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"shared episodes' {name} have NaN or Inf values")
    actions = packed["actions"]
    if not layout.continuous and bool(((actions < 0) | (actions >= layout.num_actions)).any()):
        raise ValueError("shared episodes' actions are outside the action space")
    if bool((packed["terminated"] & packed["truncated"]).any()):
        raise ValueError("a shared episode is both terminated and truncated")
    split = {name: packed[name].split(lengths.tolist()) for name in PER_STEP}
    return [
        StoredEpisode(
            split["observations"][i].clone(),
            split["actions"][i].clone(),
            split["rewards"][i].clone(),
            split["log_probs"][i].clone(),
            bool(packed["terminated"][i]),
            bool(packed["truncated"][i]),
            packed["final_observations"][i].clone(),
        )
        for i in range(count)
    ]


class TrajectoryBuffer:
    """A bounded first-in first-out buffer of shared episodes.

    Once it holds ``capacity`` episodes, each episode added drops the oldest one.

    Args:
        capacity: The most episodes it holds.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.episodes: list[StoredEpisode] = []

    def __len__(self) -> int:
        return len(self.episodes)

    def add(self, episodes: Sequence[StoredEpisode]) -> None:
        """Append ``episodes`` in order, dropping the oldest beyond the capacity."""
        self.episodes = [*self.episodes, *episodes][-self.capacity :]

    def sample(self, count: int, seed: int) -> list[StoredEpisode]:
        """``count`` episodes (all, if it holds fewer) drawn without replacement, from ``seed``."""
        size = min(count, len(self.episodes))
        if size == 0:
            return []
        picked = np.random.default_rng(seed).choice(len(self.episodes), size, replace=False)
        return [self.episodes[int(i)] for i in picked]

    def state_dict(self) -> dict[str, Any]:
        """The capacity and the episodes, packed (plain tensors, loadable ``weights_only``)."""
        return {"capacity": self.capacity, "episodes": pack_episodes(self.episodes)}

    def load_state_dict(self, state: Mapping[str, Any], layout: EpisodeLayout) -> None:
        """Continue from :meth:`state_dict`'s output; the episodes must have ``layout``."""
        self.episodes = unpack_episodes(state.get("episodes", {}), layout)[-self.capacity :]
