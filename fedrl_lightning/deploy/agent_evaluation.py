"""A trained policy on fresh episodes of chosen agents: returns and lengths, agent by agent."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedrl_lightning.policy.networks import MLPPolicy
from fedrl_lightning.population.agents import AgentPopulation
from fedrl_lightning.rollouts.rollout import run_episodes
from fedrl_lightning.seeding import Stream, derive_seed

__all__ = ["AgentEvaluation", "evaluate_agents", "fresh_episode_seeds"]


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


def fresh_episode_seeds(seed: int, agent: int, episodes: int) -> list[int]:
    """Reset seeds of agent ``agent``'s evaluation episodes under ``seed``.

    They come from a stream of their own (:attr:`Stream.FRESH_ENV`), so they are none of the
    episodes a run trains or evaluates on, whatever the run's seed.
    """
    first = derive_seed(seed, 0, agent, Stream.FRESH_ENV)
    return [(first + i) % 2**32 for i in range(episodes)]


def evaluate_agents(
    policy: MLPPolicy | Callable[[int], MLPPolicy],
    population: AgentPopulation,
    agents: Sequence[int],
    episodes: int,
    seed: int,
    deterministic: bool = False,
) -> list[AgentEvaluation]:
    """Run ``episodes`` fresh episodes of each agent in ``agents``, batched.

    This is the batched evaluation that training uses after every round: every episode of
    every agent is a sub-environment of one vector environment, stepped in lock-step with one
    policy call per step. When each agent has a policy of its own, each agent's episodes are
    one such batch.

    Args:
        policy: The policy to evaluate, or the policy of each agent (a function of its id).
        population: The agents' environments.
        agents: Which agents, by id.
        episodes: Episodes per agent.
        seed: Picks the episodes (:func:`fresh_episode_seeds`) and the action noise.
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
    slots = [a for a in agents for _ in range(episodes)]
    env_seeds = [s for a in agents for s in fresh_episode_seeds(seed, a, episodes)]
    action_seed = derive_seed(seed, 0, -1, Stream.FRESH_ACTIONS)
    env = population.make_vector_env(slots)
    try:
        results = run_episodes(policy, env, env_seeds, action_seed, deterministic)
    finally:
        env.close()
    returns = np.array([sum(episode.rewards) for episode in results]).reshape(-1, episodes)
    lengths = np.array([len(episode.actions) for episode in results]).reshape(-1, episodes)
    return [
        AgentEvaluation(agent, returns[i], lengths[i], population.agent_parameters(agent))
        for i, agent in enumerate(agents)
    ]
