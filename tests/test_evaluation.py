import numpy as np
import torch

from fedrl_lightning import AgentPopulation, Reinforce
from fedrl_lightning.rollouts.evaluation import (
    EpisodeSeeds,
    evaluate_agents,
    evaluate_policy,
    play_agents,
)
from fedrl_lightning.seeding import Stream, derive_seed


def test_episode_seeds_by_hand():
    seeds = EpisodeSeeds.after_round(7, 3)
    first_3, first_5 = (derive_seed(7, 3, a, Stream.EVAL_ENV) for a in (3, 5))
    assert seeds.env_seeds([3, 5], 2) == [
        first_3,
        (first_3 + 1) % 2**32,
        first_5,
        (first_5 + 1) % 2**32,
    ]
    assert seeds.action_seed() == derive_seed(7, 3, -1, Stream.EVAL_ACTIONS)
    assert seeds.action_seed(5) == derive_seed(7, 3, 5, Stream.EVAL_ACTIONS)
    fresh = EpisodeSeeds.fresh(7)
    assert fresh.env_seeds([5], 1) == [derive_seed(7, 0, 5, Stream.FRESH_ENV)]


def test_the_round_and_the_command_play_the_same_episodes_with_the_same_seeds():
    torch.manual_seed(0)
    population = AgentPopulation(num_agents=4)
    policy = Reinforce.for_population(population, hidden_dim=8).policy
    agents, episodes = [1, 3], 3
    env = population.make_vector_env([a for a in agents for _ in range(episodes)])
    try:
        played = play_agents(policy, env, agents, episodes, EpisodeSeeds.fresh(11))
        seeds = EpisodeSeeds.fresh(11)
        flat = evaluate_policy(policy, env, seeds.env_seeds(agents, episodes), seeds.action_seed())
    finally:
        env.close()
    assert played.returns.shape == (2, 3)
    np.testing.assert_array_equal(played.returns.reshape(-1), flat.returns)
    evaluations = evaluate_agents(policy, population, agents, episodes, seed=11)
    for row, evaluation in zip(played.returns, evaluations, strict=True):
        np.testing.assert_array_equal(evaluation.returns, row)
