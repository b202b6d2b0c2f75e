"""Evaluating a policy: seeded episodes of chosen agents, played in one batch.

This is the one evaluation the package has. The round loop's evaluation (each task's global
policy, each agent's own, the fine-tuned one: :mod:`fedrl_lightning.federation.evaluation`),
IFCA's scoring of clusters and the ``evaluate`` command all play their episodes through
:func:`play_agents`; they differ only in their :class:`EpisodeSeeds`, the streams their
episodes and action noise come from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import gymnasium as gym
import numpy as np

from fedrl_lightning.policy.networks import MLPPolicy
from fedrl_lightning.rollouts.rollout import run_episodes
from fedrl_lightning.seeding import Stream, derive_seed

if TYPE_CHECKING:
    from fedrl_lightning.population.agents import AgentPopulation

__all__ = [
    "AgentEvaluation",
    "EpisodeOutcomes",
    "EpisodeSeeds",
    "evaluate_agents",
    "evaluate_policy",
    "fresh_episode_seeds",
    "play_agents",
]


class EpisodeSeeds(NamedTuple):
    """The streams an evaluation's episodes and action noise come from.

    Agent ``a``'s ``i``-th episode resets with ``(derive_seed(seed, round_idx, a, env_stream)
    + i) % 2**32``; actions are sampled from ``derive_seed(seed, round_idx, agent,
    action_stream)``, with agent -1 when one batch holds several agents.

    Attributes:
        seed: The run's seed, or the ``evaluate`` command's.
        round_idx: The round; 0 outside a run.
        env_stream: The stream of the episodes' reset seeds.
        action_stream: The stream of the action noise.
    """

    seed: int
    round_idx: int
    env_stream: Stream
    action_stream: Stream

    @classmethod
    def fresh(cls, seed: int) -> EpisodeSeeds:
        """The ``evaluate`` command's episodes, which no run trains or evaluates on."""
        return cls(seed, 0, Stream.FRESH_ENV, Stream.FRESH_ACTIONS)

    @classmethod
    def after_round(cls, seed: int, round_idx: int) -> EpisodeSeeds:
        """The episodes a run evaluates on after round ``round_idx``."""
        return cls(seed, round_idx, Stream.EVAL_ENV, Stream.EVAL_ACTIONS)

    def env_seeds(self, agents: Sequence[int], episodes: int) -> list[int]:
        """The reset seeds of ``episodes`` episodes of each agent, agent after agent."""
        firsts = [derive_seed(self.seed, self.round_idx, a, self.env_stream) for a in agents]
        return [(first + i) % 2**32 for first in firsts for i in range(episodes)]

    def action_seed(self, agent: int = -1) -> int:
        """The seed of the action noise of a batch: one agent's, or -1 for several."""
        return derive_seed(self.seed, self.round_idx, agent, self.action_stream)


class EpisodeOutcomes(NamedTuple):
    """The undiscounted return and the length of each evaluation episode.

    Attributes:
        returns: The returns, float; ``[episodes]``, or ``[agents, episodes]`` per agent.
        lengths: The steps, int, shaped as ``returns``.
    """

    returns: np.ndarray
    lengths: np.ndarray


def evaluate_policy(
    policy: MLPPolicy,
    env: gym.vector.VectorEnv,
    env_seeds: Sequence[int],
    action_seed: int,
    deterministic: bool = False,
) -> EpisodeOutcomes:
    """Run one episode in every sub-environment, in lock-step, one policy call per step.

    Args:
        policy: The policy to evaluate.
        env: A vector environment with next-step autoreset.
        env_seeds: One reset seed per sub-environment.
        action_seed: Seed for action sampling.
        deterministic: Take the most likely action, or the Gaussian's mean, instead of
            sampling.

    Returns:
        Each sub-environment's first episode's return and length, ``[sub-environments]``.
    """
    episodes = run_episodes(policy, env, list(env_seeds), action_seed, deterministic)
    return EpisodeOutcomes(
        np.array([sum(episode.rewards) for episode in episodes]),
        np.array([len(episode.actions) for episode in episodes]),
    )


def play_agents(
    policy: MLPPolicy,
    env: gym.vector.VectorEnv,
    agents: Sequence[int],
    episodes: int,
    seeds: EpisodeSeeds,
    action_agent: int = -1,
    deterministic: bool = False,
) -> EpisodeOutcomes:
    """``episodes`` seeded episodes of each agent in ``agents``, as one batch.

    Args:
        policy: The policy every agent plays.
        env: One sub-environment per episode, agent after agent: ``agents[0]``'s
            ``episodes`` first.
        agents: The agents, by id.
        episodes: Episodes per agent.
        seeds: Where the episodes and the action noise come from.
        action_agent: Whose action noise (:meth:`EpisodeSeeds.action_seed`): -1, the
            batch's, or the one agent's.
        deterministic: Take the most likely action, or the Gaussian's mean, instead.

    Returns:
        The returns and lengths, ``[agents, episodes]``.
    """
    played = evaluate_policy(
        policy,
        env,
        seeds.env_seeds(agents, episodes),
        seeds.action_seed(action_agent),
        deterministic,
    )
    return EpisodeOutcomes(
        played.returns.reshape(-1, episodes), played.lengths.reshape(-1, episodes)
    )


def fresh_episode_seeds(seed: int, agent: int, episodes: int) -> list[int]:
    """Reset seeds of agent ``agent``'s evaluation episodes under ``seed``.

    They come from a stream of their own (:attr:`Stream.FRESH_ENV`), so they are none of the
    episodes a run trains or evaluates on, whatever the run's seed.
    """
    return EpisodeSeeds.fresh(seed).env_seeds([agent], episodes)


@dataclass(frozen=True)
class AgentEvaluation:
    """One agent's evaluation episodes.

    Attributes:
        agent: The agent's id.
        returns: ``[episodes]`` undiscounted return of each episode.
        lengths: ``[episodes]`` steps of each episode.
        parameters: The agent's environment attribute values (its heterogeneity).
    """

    agent: int
    returns: np.ndarray
    lengths: np.ndarray
    parameters: dict[str, Any]

    @property
    def mean(self) -> float:
        """The mean return."""
        return float(self.returns.mean())

    @property
    def std(self) -> float:
        """The returns' standard deviation (over episodes, ``ddof=0`` as SB3 reports it)."""
        return float(self.returns.std())

    def row(self) -> dict[str, Any]:
        """The agent's row of ``evaluation.csv``."""
        return {
            "agent": self.agent,
            **self.parameters,
            "episodes": len(self.returns),
            "mean_return": self.mean,
            "std_return": self.std,
            "min_return": float(self.returns.min()),
            "max_return": float(self.returns.max()),
            "mean_episode_length": float(self.lengths.mean()),
        }


def evaluate_agents(
    policy: MLPPolicy | Callable[[int], MLPPolicy],
    population: AgentPopulation,
    agents: Sequence[int],
    episodes: int,
    seed: int,
    deterministic: bool = False,
) -> list[AgentEvaluation]:
    """Run ``episodes`` fresh episodes of each agent in ``agents``, batched.

    Every episode of every agent is a sub-environment of one vector environment, stepped in
    lock-step with one policy call per step (:func:`play_agents`, as the round loop
    evaluates). When each agent has a policy of its own, each agent's episodes are one such
    batch.

    Args:
        policy: The policy to evaluate, or the policy of each agent (a function of its id).
        population: The agents' environments.
        agents: Which agents, by id.
        episodes: Episodes per agent.
        seed: Picks the episodes (:meth:`EpisodeSeeds.fresh`) and the action noise.
        deterministic: Take the most likely action, or the Gaussian's mean, instead of
            sampling.

    Returns:
        One evaluation per agent, in the order of ``agents``.
    """
    if callable(policy) and not isinstance(policy, MLPPolicy):
        return [
            evaluate_agents(policy(agent), population, [agent], episodes, seed, deterministic)[0]
            for agent in agents
        ]
    env = population.make_vector_env([a for a in agents for _ in range(episodes)])
    try:
        played = play_agents(
            policy, env, agents, episodes, EpisodeSeeds.fresh(seed), deterministic=deterministic
        )
    finally:
        env.close()
    return [
        AgentEvaluation(
            agent, played.returns[i], played.lengths[i], population.agent_parameters(agent)
        )
        for i, agent in enumerate(agents)
    ]
