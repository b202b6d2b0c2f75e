"""IFCA on the agent's side: score every cluster's model on its own episodes, and pick one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

from fedrl_lightning.rollouts.evaluation import EpisodeSeeds, play_agents
from fedrl_lightning.seeding import Stream

if TYPE_CHECKING:
    from fedrl_lightning.learners import Learner
    from fedrl_lightning.population.agents import AgentPopulation

__all__ = ["ClusterChoice", "choose_cluster"]


class ClusterChoice(NamedTuple):
    """Which cluster an agent chose, and on what evidence.

    Attributes:
        cluster: The chosen cluster: the highest mean return, ties to the lowest index.
        returns: Each cluster's mean return on the agent's scoring episodes.
        steps: The environment steps the scoring took, all clusters together.
    """

    cluster: int
    returns: tuple[float, ...]
    steps: int

    def stats(self) -> dict[str, Any]:
        """The entries the agent adds to the statistics it sends back."""
        return {
            "cluster": self.cluster,
            "cluster_returns": list(self.returns),
            "cluster_eval_steps": self.steps,
        }


def choose_cluster(
    module: Learner,
    states: Sequence[dict[str, torch.Tensor]],
    population: AgentPopulation,
    agent: int,
    episodes: int,
    run_seed: int,
    round_idx: int,
) -> ClusterChoice:
    """Score each cluster's model on agent ``agent``'s own episodes; the best one wins.

    Every model plays the same ``episodes`` episodes (the same reset seeds and action noise,
    from :attr:`Stream.CLUSTER_ENV` and :attr:`Stream.CLUSTER_ACTIONS` of (run seed, round,
    agent)), in one batch each through the round evaluation's
    :func:`~fedrl_lightning.rollouts.evaluation.play_agents`, so the comparison is paired
    and depends on nothing but the seeds and the models. Actions are sampled, as in training.

    Args:
        module: A module of the learner the states belong to; it is left holding the last
            state scored (the caller loads the chosen one). Its weights only are used: no
            torch random number is drawn.
        states: Each cluster's ``state_dict``.
        population: The agents' environments.
        agent: The agent scoring.
        episodes: Episodes per cluster.
        run_seed: The run's seed.
        round_idx: The round.

    Returns:
        The choice, with every cluster's mean return.
    """
    seeds = EpisodeSeeds(run_seed, round_idx, Stream.CLUSTER_ENV, Stream.CLUSTER_ACTIONS)
    env = population.make_vector_env([agent] * episodes)
    returns, steps = [], 0
    try:
        for state in states:
            module.load_state_dict(state)
            played = play_agents(module.policy, env, [agent], episodes, seeds, action_agent=agent)
            returns.append(float(played.returns[0].mean()))
            steps += int(played.lengths.sum())
    finally:
        env.close()
    return ClusterChoice(int(np.argmax(returns)), tuple(returns), steps)
