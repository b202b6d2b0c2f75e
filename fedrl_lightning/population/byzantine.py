"""Byzantine agents: which agents misbehave, and how (the attacks studied by FedPG-BR)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

import gymnasium as gym
import numpy as np
import torch

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.options import check_number, from_mapping
from fedrl_lightning.rollouts.dataset import StoredEpisode
from fedrl_lightning.seeding import Stream, derive_seed

__all__ = ["ATTACKS", "Byzantine", "ByzantineOptions"]

OPTION = "data.byzantine"
Attack = Literal[
    "sign_flip", "random_noise", "zero", "random_action", "reward_flip", "poison_trajectories"
]
ATTACKS: tuple[str, ...] = get_args(Attack)
# Attacks on the update an agent sends (the others are on what it trains on, or uploads).
UPDATE_ATTACKS = ("sign_flip", "random_noise", "zero")


@dataclass(frozen=True)
class ByzantineOptions:
    """Agents that misbehave (``data.byzantine``): which ones, and the attack they all run.

    Args:
        agents: How many agents misbehave, picked at random from the run seed
            (``agents.csv`` lists them), or a list of their ids.
        attack: ``sign_flip``, ``random_noise``, ``zero`` (attacks on the update sent),
            ``random_action``, ``reward_flip`` (on the episodes trained on) or
            ``poison_trajectories`` (on the episodes shared); ``Byzantine`` says what each
            does.
        scale: ``sign_flip``'s factor on the change sent back, and ``poison_trajectories``'
            on the rewards shared, >= 0.
        noise_std: ``random_noise``'s standard deviation, >= 0.
    """

    agents: int | list[int]
    attack: Attack
    scale: float = 2.5
    noise_std: float = 1.0

    def __post_init__(self) -> None:
        """Refuse an unknown attack, no agents, and values out of range, naming the option."""
        if self.attack not in ATTACKS:
            raise ConfigError(
                f"{OPTION}.attack must be one of {', '.join(ATTACKS)}, got {self.attack!r}"
            )
        check_number(f"{OPTION}.scale", self.scale, low=0.0)
        check_number(f"{OPTION}.noise_std", self.noise_std, low=0.0)
        agents = self.agents
        if isinstance(agents, bool) or not isinstance(agents, int | list):
            raise ConfigError(
                f"{OPTION}.agents must be a count or a list of agent ids, got {agents!r}"
            )
        if not agents:
            raise ConfigError(f"{OPTION}.agents names no agent")
        if isinstance(agents, int) and agents < 0:
            raise ConfigError(f"{OPTION}.agents must not be negative, got {agents}")
        if isinstance(agents, list):
            for agent in agents:
                if isinstance(agent, bool) or not isinstance(agent, int) or agent < 0:
                    raise ConfigError(f"{OPTION}.agents: {agent!r} is not an agent id")
            if len(set(agents)) != len(agents):
                twice = next(agent for agent in agents if agents.count(agent) > 1)
                raise ConfigError(f"{OPTION}.agents: names agent {twice} twice")


class Byzantine:
    """Which agents are Byzantine, and the attack they all run.

    With ``delta`` the change an honest local fit made to the global weights ``w``:

    - ``sign_flip`` sends ``w - scale * delta`` (``scale`` 2.5 by default);
    - ``random_noise`` sends ``w + noise``, each coordinate drawn from ``N(0, noise_std^2)``
      and seeded by (run seed, round, agent);
    - ``zero`` sends ``w`` unchanged;
    - ``random_action`` trains on episodes in which the agent acts uniformly at random;
    - ``reward_flip`` trains on negated rewards;
    - ``poison_trajectories`` trains and sends its weights honestly, but the episodes it
      uploads for trajectory sharing (``TrajectorySharing``) have every reward multiplied
      by ``scale``: without sharing it changes nothing.

    In policy distillation (``trainer.server Distilled``) an agent sends its action distribution
    ``p`` on the probe states instead of weights, and the update attacks apply to it, with the
    consensus ``c`` it was sent (uniform before the first) in the place of ``w``:
    ``sign_flip`` sends ``c - scale * (p - c)``, its negative entries set to 0 and each row
    renormalised; ``random_noise`` sends ``softmax(log c + noise)``; ``zero`` sends ``c``.

    Every agent reports the statistics of the episodes it trained on: the update attacks change
    only the weights (or distribution) sent, while ``reward_flip`` reports the negated returns
    it trained on and ``random_action`` the returns of its random episodes.

    Args:
        options: The agents and their attack (:class:`ByzantineOptions`, or a plain mapping
            of its fields); ``None`` or an empty mapping: every agent is honest.
        num_agents: How many agents there are.
        seed: The run seed, from which a count of agents is picked.
    """

    def __init__(
        self,
        options: ByzantineOptions | Mapping[str, Any] | None,
        num_agents: int,
        seed: int,
    ) -> None:
        given = from_mapping(ByzantineOptions, options, OPTION) if options else None
        self.attack: str | None = given.attack if given else None
        self.scale = float(given.scale) if given else 2.5
        self.noise_std = float(given.noise_std) if given else 1.0
        self.agents = self._pick(given.agents, num_agents, seed) if given else frozenset()

    def __bool__(self) -> bool:
        return bool(self.agents)

    def attack_of(self, agent_id: int) -> str | None:
        """The attack agent ``agent_id`` runs, or ``None`` if it is honest."""
        return self.attack if agent_id in self.agents else None

    def wrap_training_env(
        self, env: gym.Env | gym.vector.VectorEnv, agent_id: int
    ) -> gym.Env | gym.vector.VectorEnv:
        """Agent ``agent_id``'s training environment, with rewards negated for ``reward_flip``."""
        if self.attack_of(agent_id) != "reward_flip":
            return env
        if isinstance(env, gym.vector.VectorEnv):
            return gym.wrappers.vector.TransformReward(env, np.negative)
        # gymnasium types a reward as SupportsFloat; the environments' rewards are numbers
        return gym.wrappers.TransformReward(env, lambda reward: -cast(float, reward))

    def acts_randomly(self, agent_id: int) -> bool:
        """Whether agent ``agent_id`` acts uniformly at random while training."""
        return self.attack_of(agent_id) == "random_action"

    def corrupt_update(
        self,
        agent_id: int,
        state: dict[str, torch.Tensor],
        global_state: dict[str, torch.Tensor],
        seed: int,
    ) -> dict[str, torch.Tensor]:
        """The weights agent ``agent_id`` sends instead of ``state``; ``state`` if honest.

        Args:
            agent_id: The agent.
            state: The weights its local fit produced.
            global_state: The global weights it started from.
            seed: Seed for ``random_noise``.
        """
        attack = self.attack_of(agent_id)
        if attack not in UPDATE_ATTACKS:
            return state
        generator = torch.Generator().manual_seed(seed)
        sent = {}
        for key, weights in state.items():
            start = global_state[key].to(weights.device, weights.dtype)
            if attack == "sign_flip":
                sent[key] = start - self.scale * (weights - start)
            elif attack == "random_noise":
                noise = torch.randn(weights.shape, generator=generator, dtype=weights.dtype)
                sent[key] = start + self.noise_std * noise.to(weights.device)
            else:
                sent[key] = start.clone()
        return sent

    def corrupt_distribution(
        self,
        agent_id: int,
        distribution: torch.Tensor,
        consensus: torch.Tensor | None,
        seed: int,
    ) -> torch.Tensor:
        """The action distribution agent ``agent_id`` sends instead of ``distribution``.

        Args:
            agent_id: The agent.
            distribution: ``[states, actions]`` its policy's probabilities on the probe states.
            consensus: The consensus it was sent, ``None`` before the first: then uniform.
            seed: Seed for ``random_noise``.

        Returns:
            ``distribution`` itself if the agent is honest or its attack is not on updates;
            otherwise a distribution (each row non-negative and summing to 1).
        """
        attack = self.attack_of(agent_id)
        if attack not in UPDATE_ATTACKS:
            return distribution
        start = consensus if consensus is not None else torch.ones_like(distribution)
        start = (start / start.sum(-1, keepdim=True)).to(distribution.dtype)
        if attack == "sign_flip":  # each row sums to 1 before clamping, so to >= 1 after it
            flipped = (start - self.scale * (distribution - start)).clamp(min=0)
            return flipped / flipped.sum(-1, keepdim=True)
        if attack == "random_noise":
            generator = torch.Generator().manual_seed(seed)
            noise = torch.randn(start.shape, generator=generator, dtype=start.dtype)
            return torch.softmax(start.clamp(min=1e-8).log() + self.noise_std * noise, dim=-1)
        return start.clone()

    def poison_episodes(self, agent_id: int, episodes: list[StoredEpisode]) -> list[StoredEpisode]:
        """The episodes agent ``agent_id`` uploads instead of ``episodes``; them if honest."""
        if self.attack_of(agent_id) != "poison_trajectories":
            return episodes
        return [e._replace(rewards=e.rewards * self.scale) for e in episodes]

    @staticmethod
    def _pick(agents: int | list[int], num_agents: int, seed: int) -> frozenset[int]:
        """The agents: ``agents`` ids, or a count of them picked from ``seed``."""
        if isinstance(agents, int):
            if agents > num_agents:
                raise ConfigError(
                    f"{OPTION}.agents must be between 0 and data.num_agents ({num_agents}), "
                    f"got {agents}"
                )
            rng = np.random.default_rng(derive_seed(seed, 0, -1, Stream.BYZANTINE))
            return frozenset(int(a) for a in rng.choice(num_agents, agents, replace=False))
        for agent in agents:
            if agent >= num_agents:
                raise ConfigError(
                    f"{OPTION}.agents: {agent!r} is not an agent id in 0..{num_agents - 1}"
                )
        return frozenset(agents)
