"""Evaluating a run's checkpoint on fresh episodes, with seeds the run never used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from gymnasium.vector import VectorEnv

from fedrl_lightning import AgentPopulation, load_module
from fedrl_lightning.learners import Learner
from fedrl_lightning.rollouts.evaluation import evaluate_policy

FRESH_SEED_BASE = 900_000_000
"""Fresh episodes' reset seeds start here, far from any seed a run derives."""


def run_population(run: Path) -> AgentPopulation:
    """The agents a run trained on, rebuilt from the ``config.yaml`` in its folder."""
    config = yaml.safe_load((run / "config.yaml").read_text())
    data = {k: v for k, v in config["data"].items() if v is not None}
    data.pop("seed", None)
    return AgentPopulation(**data, seed=config.get("seed_everything") or 42)


def fresh_evaluation(
    checkpoint: Path,
    population: AgentPopulation,
    seed: int,
    episodes_per_agent: int = 20,
    deterministic: bool = False,
) -> np.ndarray:
    """Mean return per agent of ``checkpoint``'s policy over fresh episodes.

    Args:
        checkpoint: A round checkpoint, such as the run's ``checkpoints/last.ckpt``.
        population: The agents to evaluate on (usually :func:`run_population`).
        seed: Picks the fresh episodes' seeds and the action noise.
        episodes_per_agent: Episodes per agent.
        deterministic: Act with ``module.act(obs, deterministic=True)`` (the most likely
            action, or the mean) instead of sampling; the episodes' seeds are the same.

    Returns:
        ``[num_agents]`` mean undiscounted return.
    """
    module = load_module(checkpoint)
    agents = [a for a in range(population.num_agents) for _ in range(episodes_per_agent)]
    env = population.make_vector_env(agents)
    seeds = [FRESH_SEED_BASE + seed * 10_000 + i for i in range(len(agents))]
    try:
        if deterministic:
            returns = _deterministic_returns(module, env, seeds)
        else:
            returns = evaluate_policy(module.policy, env, seeds, action_seed=seed + 1).returns
    finally:
        env.close()
    return returns.reshape(population.num_agents, episodes_per_agent).mean(axis=1)


def _deterministic_returns(module: Learner, env: VectorEnv, seeds: list[int]) -> np.ndarray:
    """The return of each sub-environment's first episode, acting deterministically."""
    returns = np.zeros(len(seeds))
    alive = np.ones(len(seeds), dtype=bool)
    observations, _ = env.reset(seed=seeds)
    while alive.any():
        actions = module.act(np.asarray(observations, dtype=np.float32), deterministic=True)
        observations, rewards, terminated, truncated, _ = env.step(actions)
        returns += np.where(alive, rewards, 0.0)
        alive &= ~(np.asarray(terminated) | np.asarray(truncated))
    return returns
