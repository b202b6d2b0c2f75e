"""Shared trajectory replay: agents upload some episodes, the next round's agents replay them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.components.trajectory_buffer import (
    EpisodeLayout,
    TrajectoryBuffer,
    packed_bytes,
)
from fedrl_lightning.federation.strategies import AgentUpdate
from fedrl_lightning.seeding import Stream, derive_seed

if TYPE_CHECKING:
    from fedrl_lightning.learners import Learner
    from fedrl_lightning.population.agents import AgentPopulation

__all__ = ["SHARING_COLUMNS", "TrajectorySharing", "upload_choice"]

DEFAULTS = {"share_fraction": 0.1, "buffer_episodes": 500, "replay_ratio": 0.5, "rho_max": 1.0}
SHARING_COLUMNS = ("episodes_shared", "shared_bytes_up", "shared_bytes_down")
"""The numeric columns a round's row has with sharing on."""


def upload_choice(count: int, share_fraction: float, seed: int) -> list[int]:
    """Which of an agent's ``count`` episodes it uploads: each with ``share_fraction``'s odds.

    The number is binomial, so a fraction of few episodes is still shared on average; the
    episodes are then drawn without replacement, all from ``seed`` (the agent's
    ``SHARE_UPLOAD`` stream).

    Returns:
        The indices of the episodes to upload, in the order drawn.
    """
    rng = np.random.default_rng(seed)
    size = int(rng.binomial(count, share_fraction))
    return [int(i) for i in rng.choice(count, size, replace=False)]


class TrajectorySharing:
    """The server's side of shared trajectory replay (``trainer.sharing``); off when ``None``.

    Each sampled agent uploads a seeded fraction of its episodes (:func:`upload_choice`),
    with the behaviour policy's log-probabilities, in its checkpoint. After a round is
    collected, its uploads join a bounded FIFO buffer (:class:`TrajectoryBuffer`), agent by
    agent in sampling order. Each of the next round's agents is sent a seeded sample of the
    buffer, ``replay_ratio`` times its episodes per round, and trains on its own episodes
    plus those, corrected for being off-policy (weights truncated at ``rho_max``). The
    buffer lives in the round checkpoint, so a resumed run replays what it would have.

    Its rows report ``episodes_shared`` (uploaded in the round), ``shared_bytes_up`` and
    ``shared_bytes_down``: the serialized size of the packed episodes the round's agents
    uploaded, and were sent.

    Args:
        spec: ``{share_fraction, buffer_episodes, replay_ratio, rho_max}`` (defaults 0.1, 500,
            0.5, 1.0); ``None``: no sharing.
        episodes_per_round: Each sampled agent's own episodes per round.
        seed: The run seed.
    """

    def __init__(self, spec: Mapping[str, Any] | None, episodes_per_round: int, seed: int) -> None:
        self.enabled = spec is not None
        options = _checked(dict(spec or {}))
        self.share_fraction = float(options["share_fraction"])
        self.replay_ratio = float(options["replay_ratio"])
        self.rho_max = float(options["rho_max"])
        self.replay_episodes = math.floor(self.replay_ratio * episodes_per_round + 0.5)
        self.episodes_per_round = episodes_per_round
        self.seed = seed
        self.buffer = TrajectoryBuffer(int(options["buffer_episodes"]))
        self.layout: EpisodeLayout | None = None
        self._sent_bytes: dict[int, int] = {}
        self._columns: dict[str, int] = dict.fromkeys(SHARING_COLUMNS, 0)

    def __bool__(self) -> bool:
        return self.enabled

    def setup(self, model: Learner, population: AgentPopulation) -> None:
        """Start empty, for ``model``'s spaces.

        Raises:
            ConfigError: With sharing on in a multi-task federation.
        """
        self.buffer.episodes, self._sent_bytes = [], {}
        self.layout = EpisodeLayout.of_hparams(model.hparams)
        if self.enabled and population.tasks is not None:
            raise ConfigError(
                "trainer.sharing cannot be combined with data.tasks: agents replay each "
                "other's episodes, which needs one environment's spaces; remove one of them"
            )

    def fit_inputs(self, agent: int, round_idx: int) -> dict[str, Any]:
        """What agent ``agent``'s ``LocalFit`` in round ``round_idx`` needs to share."""
        if not self.enabled:
            return {}
        seed = derive_seed(self.seed, round_idx, agent, Stream.SHARE_SAMPLE)
        replay = tuple(self.buffer.sample(self.replay_episodes, seed))
        self._sent_bytes[round_idx] = self._sent_bytes.get(round_idx, 0) + packed_bytes(replay)
        return {
            "replay": replay,
            "share_fraction": self.share_fraction,
            "rho_max": self.rho_max,
        }

    def aggregate(self, updates: Sequence[AgentUpdate], round_idx: int) -> None:
        """Add the round's uploads to the buffer, in the updates' order, and count them."""
        if not self.enabled:
            return
        uploads = [list(update.shared_episodes) for update in updates]
        for episodes in uploads:
            self.buffer.add(episodes)
        self._columns = {
            "episodes_shared": sum(len(episodes) for episodes in uploads),
            "shared_bytes_up": sum(packed_bytes(episodes) for episodes in uploads),
            "shared_bytes_down": self._sent_bytes.pop(round_idx, 0),
        }

    def round_columns(self) -> dict[str, int]:
        """The last aggregated round's sharing columns; none without sharing."""
        return dict(self._columns) if self.enabled else {}

    def metric_names(self) -> list[str]:
        """The numeric columns :meth:`round_columns` adds."""
        return list(SHARING_COLUMNS) if self.enabled else []

    def state_dict(self) -> dict[str, Any]:
        """The buffer; empty without sharing."""
        return {"buffer": self.buffer.state_dict()} if self.enabled else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output (after :meth:`setup`)."""
        if self.enabled and self.layout is not None:
            self.buffer.load_state_dict(state.get("buffer", {}), self.layout)


def _checked(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` over the defaults, each refused in one line unless in its range."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise ConfigError(
            f"trainer.sharing.{unknown[0]}: unknown key; expected {', '.join(DEFAULTS)}"
        )
    options = DEFAULTS | options
    for name, value in options.items():
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value):
            raise ConfigError(f"trainer.sharing.{name} must be a number, got {value!r}")
    if not 0 < options["share_fraction"] <= 1:
        raise ConfigError(
            f"trainer.sharing.share_fraction must be in (0, 1], got {options['share_fraction']}"
        )
    buffer = options["buffer_episodes"]
    if buffer != int(buffer) or buffer < 1:
        raise ConfigError(
            f"trainer.sharing.buffer_episodes must be a positive integer, got {buffer}"
        )
    if options["replay_ratio"] < 0:
        raise ConfigError(
            f"trainer.sharing.replay_ratio must not be negative, got {options['replay_ratio']}"
        )
    if options["rho_max"] <= 0:
        raise ConfigError(f"trainer.sharing.rho_max must be positive, got {options['rho_max']}")
    return options
