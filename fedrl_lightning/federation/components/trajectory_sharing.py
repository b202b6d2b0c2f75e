"""Shared trajectory replay: agents upload some episodes, the next round's agents replay them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from typing_extensions import override

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.components.base import FitPart, InvalidUpdate, RoundComponent
from fedrl_lightning.federation.components.trajectory_buffer import (
    EpisodeLayout,
    TrajectoryBuffer,
    pack_episodes,
    packed_bytes,
    unpack_episodes,
)
from fedrl_lightning.federation.messages import AgentUpdate
from fedrl_lightning.rollouts.dataset import EpisodeDataset, StoredEpisode
from fedrl_lightning.rollouts.transitions import TransitionDataset
from fedrl_lightning.seeding import Stream, derive_seed

if TYPE_CHECKING:
    from fedrl_lightning.federation.local_fit import AgentFit
    from fedrl_lightning.federation.trainer import FederatedTrainer
    from fedrl_lightning.learners import Learner
    from fedrl_lightning.population.agents import AgentPopulation

__all__ = [
    "SHARED_EPISODES_KEY",
    "SHARING_COLUMNS",
    "SharingPart",
    "TrajectorySharing",
    "upload_choice",
]

SHARED_EPISODES_KEY = "shared_episodes"
"""The agent checkpoint's entry of the episodes it uploads."""

DEFAULTS = {"share_fraction": 0.1, "buffer_episodes": 500, "replay_ratio": 0.5, "rho_max": 1.0}
OPTION = "trainer.components TrajectorySharing"
"""The component as a user names it, for messages."""
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


@dataclass(frozen=True)
class SharingPart(FitPart):
    """Trajectory sharing's part of an agent's fit: what it replays, and what it uploads.

    Attributes:
        replay: Episodes other agents shared, which the agent replays beside its own (see
            :class:`~fedrl_lightning.rollouts.dataset.EpisodeDataset`).
        share_fraction: Each of the agent's episodes is uploaded with these odds, drawn from
            its ``SHARE_UPLOAD`` stream; 0: none.
        rho_max: The truncation of replayed episodes' importance weights.
        layout: The spaces every uploaded episode must have.
        most: The most episodes the agent may upload (as many as its fit can finish).
    """

    replay: tuple[StoredEpisode, ...]
    share_fraction: float
    rho_max: float
    layout: EpisodeLayout
    most: int

    @override
    def prepare(self, fit: AgentFit) -> None:
        fit.module.rho_max = self.rho_max

    @override
    def dataset_options(self) -> dict[str, Any]:
        return {"replay": self.replay, "keep_episodes": self.share_fraction > 0}

    @override
    def report(self, fit: AgentFit) -> dict[str, Any]:
        if not self.share_fraction or not isinstance(
            fit.dataset, EpisodeDataset | TransitionDataset
        ):
            return {}
        kept = fit.dataset.kept
        uploaded = upload_choice(len(kept), self.share_fraction, fit.seed(Stream.SHARE_UPLOAD))
        agent = fit.task.agent_id
        episodes = fit.population.byzantine.poison_episodes(agent, [kept[i] for i in uploaded])
        return {SHARED_EPISODES_KEY: pack_episodes(episodes)}

    @override
    def read(
        self, checkpoint: Mapping[str, Any], stats: Mapping[str, Any], path: Path
    ) -> tuple[StoredEpisode, ...]:
        """The episodes the agent uploaded, checked: its spaces, finite, at most :attr:`most`."""
        try:
            episodes = unpack_episodes(checkpoint.get(SHARED_EPISODES_KEY), self.layout)
        except ValueError as err:
            raise InvalidUpdate(f"{path}: {err}") from None
        if len(episodes) > self.most:
            raise InvalidUpdate(
                f"{path}: it shared {len(episodes)} episodes, more than its {self.most}"
            )
        return tuple(episodes)


class TrajectorySharing(RoundComponent):
    """Shared trajectory replay, a round component (``--trainer.components+ TrajectorySharing``).

    Each sampled agent uploads a seeded fraction of its whole episodes (:func:`upload_choice`),
    with the behaviour policy's log-probabilities, in its checkpoint. After a round is
    collected, its uploads join a bounded FIFO buffer (:class:`TrajectoryBuffer`), agent by
    agent in sampling order. Each of the next round's agents is sent a seeded sample of the
    buffer, ``replay_ratio`` times ``episodes_per_round``. An on-policy learner trains on its
    own episodes plus those, corrected for being off-policy (weights truncated at
    ``rho_max``); an off-policy learner adds them to its replay buffer, where its targets
    need no correction (Q-learning's and SAC's and TD3's critics' targets do not depend on the
    policy that acted). The buffer lives in the round checkpoint, so a resumed run replays
    what it would have.

    Its rows report ``episodes_shared`` (uploaded in the round), ``shared_bytes_up`` and
    ``shared_bytes_down``: the serialized size of the packed episodes the round's agents
    uploaded, and were sent.

    Args:
        share_fraction: The odds with which each agent's episode is uploaded, in (0, 1].
        buffer_episodes: The most episodes the server's buffer keeps.
        replay_ratio: Episodes each agent replays, as a multiple of its own per round.
        rho_max: The truncation of replayed episodes' importance weights.
    """

    name = "sharing"

    def __init__(
        self,
        share_fraction: float = DEFAULTS["share_fraction"],
        buffer_episodes: int = int(DEFAULTS["buffer_episodes"]),
        replay_ratio: float = DEFAULTS["replay_ratio"],
        rho_max: float = DEFAULTS["rho_max"],
    ) -> None:
        _check_ranges(share_fraction, buffer_episodes, replay_ratio, rho_max)
        self.share_fraction = float(share_fraction)
        self.replay_ratio = float(replay_ratio)
        self.rho_max = float(rho_max)
        self.buffer = TrajectoryBuffer(buffer_episodes)
        self.episodes_per_round = 0
        self.most_uploads = 0
        self.replay_episodes = 0
        self.seed = 0
        self.layout: EpisodeLayout | None = None
        self._sent_bytes: dict[int, int] = {}
        self._columns: dict[str, int] = dict.fromkeys(SHARING_COLUMNS, 0)

    @override
    def setup(self, trainer: FederatedTrainer, model: Learner, population: AgentPopulation) -> None:
        """Start empty, for ``model``'s spaces and the trainer's episodes per round.

        Each agent is sent ``replay_ratio`` times ``trainer.episodes_per_round`` episodes a
        round, whatever its learner: for an on-policy learner, as many as its own times the
        ratio; an off-policy learner's fit takes ``steps_per_round`` steps instead, and the
        shared episodes join its replay buffer.

        Raises:
            ConfigError: In a multi-task federation.
        """
        if population.tasks is not None:
            raise ConfigError(
                f"{OPTION} cannot be combined with data.tasks: agents replay each "
                "other's episodes, which needs one environment's spaces; remove one of them"
            )
        self.episodes_per_round, self.seed = trainer.episodes_per_round, trainer.seed
        self.most_uploads = model.most_episodes_per_fit(trainer.episodes_per_round)
        self.replay_episodes = math.floor(self.replay_ratio * self.episodes_per_round + 0.5)
        self.buffer.episodes, self._sent_bytes = [], {}
        self.layout = EpisodeLayout.of_hparams(model.hparams)

    @override
    def fit_inputs(self, agent: int, round_idx: int) -> SharingPart:
        """A seeded sample of the buffer to replay, and the odds of uploading."""
        assert self.layout is not None  # setup() ran
        seed = derive_seed(self.seed, round_idx, agent, Stream.SHARE_SAMPLE)
        replay = tuple(self.buffer.sample(self.replay_episodes, seed))
        self._sent_bytes[round_idx] = self._sent_bytes.get(round_idx, 0) + packed_bytes(replay)
        most = self.most_uploads
        return SharingPart(replay, self.share_fraction, self.rho_max, self.layout, most)

    @override
    def aggregate(self, updates: Sequence[AgentUpdate], round_idx: int) -> None:
        """Add the round's uploads to the buffer, in the updates' order, and count them."""
        uploads = [list(_uploads(update, self.name)) for update in updates]
        for episodes in uploads:
            self.buffer.add(episodes)
        self._columns = {
            "episodes_shared": sum(len(episodes) for episodes in uploads),
            "shared_bytes_up": sum(packed_bytes(episodes) for episodes in uploads),
            "shared_bytes_down": self._sent_bytes.pop(round_idx, 0),
        }

    @override
    def round_columns(self) -> dict[str, Any]:
        """The last aggregated round's sharing columns."""
        return dict(self._columns)

    @override
    def metric_names(self) -> list[str]:
        return list(SHARING_COLUMNS)

    @override
    def state_dict(self) -> dict[str, Any]:
        """The buffer."""
        return {"buffer": self.buffer.state_dict()}

    @override
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self.layout is not None:
            self.buffer.load_state_dict(state.get("buffer", {}), self.layout)


def _uploads(update: AgentUpdate, name: str) -> tuple[StoredEpisode, ...]:
    """The episodes ``update``'s agent uploaded, as its :class:`SharingPart` read them."""
    episodes = update.extras.get(name, ())
    assert isinstance(episodes, tuple)  # SharingPart.read gives a tuple
    return episodes


def _check_ranges(
    share_fraction: float, buffer_episodes: int, replay_ratio: float, rho_max: float
) -> None:
    """Refuse, in one line, a setting outside its range (jsonargparse has checked the types).

    Raises:
        ConfigError: Naming the setting.
    """
    for name, value in {
        "share_fraction": share_fraction,
        "replay_ratio": replay_ratio,
        "rho_max": rho_max,
    }.items():
        if not math.isfinite(value):
            raise ConfigError(f"{OPTION}.{name} must be a finite number, got {value!r}")
    if not 0 < share_fraction <= 1:
        raise ConfigError(f"{OPTION}.share_fraction must be in (0, 1], got {share_fraction}")
    if isinstance(buffer_episodes, bool) or buffer_episodes < 1:
        raise ConfigError(
            f"{OPTION}.buffer_episodes must be a positive integer, got {buffer_episodes}"
        )
    if replay_ratio < 0:
        raise ConfigError(f"{OPTION}.replay_ratio must not be negative, got {replay_ratio}")
    if rho_max <= 0:
        raise ConfigError(f"{OPTION}.rho_max must be positive, got {rho_max}")
