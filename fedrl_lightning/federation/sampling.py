"""Choosing which agents take part in a round."""

from __future__ import annotations

import numpy as np

from fedrl_lightning.seeding import Stream, derive_seed

__all__ = ["sample_agents"]


def sample_agents(
    num_agents: int, agents_per_round: int, run_seed: int, round_idx: int
) -> list[int]:
    """Draw ``agents_per_round`` distinct agents, uniformly, for one round.

    The draw depends only on the run seed and the round, so a resumed or re-run experiment
    samples the same agents.

    Args:
        num_agents: Size of the population; agents are numbered ``0 .. num_agents - 1``.
        agents_per_round: How many to draw, at most ``num_agents``.
        run_seed: The run's seed.
        round_idx: The round, counted from 0.

    Returns:
        The sampled agent ids in increasing order.
    """
    rng = np.random.default_rng(derive_seed(run_seed, round_idx, -1, Stream.SAMPLING))
    return sorted(int(a) for a in rng.choice(num_agents, size=agents_per_round, replace=False))
