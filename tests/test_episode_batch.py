"""What an episode batch carries for actor-critic learners: rewards, end flags, final states."""

import math

import gymnasium as gym
import numpy as np
import torch

from fedrl_lightning import AgentPopulation, EpisodeDataset, Reinforce
from fedrl_lightning.rollouts.dataset import EpisodeBatch

CART_X_LIMIT = 2.4  # CartPole terminates beyond these (gymnasium's CartPoleEnv)
CART_THETA_LIMIT = 12 * 2 * math.pi / 360
TAU = 0.02  # CartPole's Euler time step


def one_batch(env, population, num_episodes, env_seed=3):
    torch.manual_seed(0)
    policy = Reinforce(population.observation_dim, population.num_actions, hidden_dim=8).policy
    dataset = EpisodeDataset(env, policy, num_episodes, num_episodes, 0.9, env_seed, 4)
    (batch,) = list(dataset)
    env.close()
    return batch


def replay(env_id, max_episode_steps, batch, seed):
    """Step a fresh env with the batch's actions; each episode's ends and final observation."""
    env = gym.make(env_id, max_episode_steps=max_episode_steps)
    ends = []
    for i, length in enumerate(batch.mask.sum(1).tolist()):
        observation, _ = env.reset(seed=seed if i == 0 else None)
        for t in range(length):
            assert np.array_equal(observation, batch.observations[i, t].numpy())
            observation, reward, terminated, truncated, _ = env.step(int(batch.actions[i, t]))
            assert reward == batch.rewards[i, t].item()
            assert (terminated or truncated) == (t == length - 1)
        ends.append((terminated, truncated, observation))
    return ends


def assert_consistent(batch: EpisodeBatch):
    """Invariants of any batch: one end flag per episode, rewards add up, padding is zero."""
    assert batch.rewards.dtype == batch.final_observations.dtype == torch.float32
    assert batch.terminated.dtype == batch.truncated.dtype == torch.bool
    assert (batch.terminated ^ batch.truncated).all()
    assert torch.equal(batch.rewards.sum(1), batch.episode_returns)
    assert (batch.rewards[~batch.mask] == 0).all()
    assert batch.final_observations.shape == (len(batch.mask), batch.observations.shape[-1])
    assert torch.isfinite(batch.final_observations).all()


def test_capped_episodes_truncate_and_end_where_a_hand_stepped_env_does():
    population = AgentPopulation(max_episode_steps=7)
    batch = one_batch(population.make_env(0), population, num_episodes=3)
    assert_consistent(batch)
    assert batch.mask.sum(1).tolist() == [7, 7, 7]
    assert batch.truncated.all() and not batch.terminated.any()
    for i, (terminated, truncated, observation) in enumerate(
        replay("fedrl/Simple-v0", 7, batch, seed=3)
    ):
        assert (terminated, truncated) == (False, True)
        assert np.array_equal(batch.final_observations[i].numpy(), observation)
    # the final observation follows the last recorded one: not a reset, not a copy of it
    assert not torch.equal(batch.final_observations, batch.observations[:, -1])


def test_cartpole_terminates_and_its_rewards_sum_to_the_episode_return():
    population = AgentPopulation("CartPole-v1")
    batch = one_batch(population.make_env(0), population, num_episodes=5)
    assert_consistent(batch)
    assert batch.terminated.all() and not batch.truncated.any()
    assert len(set(batch.mask.sum(1).tolist())) > 1  # padded episodes of different lengths
    assert torch.equal(batch.rewards, batch.mask.float())  # CartPole pays 1 per step
    for i, (terminated, _, observation) in enumerate(replay("CartPole-v1", 500, batch, seed=3)):
        assert terminated
        assert np.array_equal(batch.final_observations[i].numpy(), observation)


def last_observations(batch: EpisodeBatch) -> torch.Tensor:
    rows = torch.arange(len(batch.mask))
    return batch.observations[rows, batch.mask.sum(1) - 1]


def test_native_cartpole_vector_env_ends_like_single_envs():
    """Its seeding differs from single envs', so check what must hold of every episode."""
    population = AgentPopulation("CartPole-v1", num_envs=4)
    assert type(population.make_rollout_env(0).unwrapped).__name__ == "CartPoleVectorEnv"
    batch = one_batch(population.make_rollout_env(0), population, num_episodes=8)
    assert_consistent(batch)
    assert batch.terminated.all()
    x, theta = batch.final_observations[:, 0], batch.final_observations[:, 2]
    assert ((x.abs() > CART_X_LIMIT) | (theta.abs() > CART_THETA_LIMIT)).all()
    # Euler's step from the last observation, not an autoreset's fresh start
    last = last_observations(batch)
    assert torch.allclose(x, last[:, 0] + TAU * last[:, 1], atol=1e-5)
    assert torch.allclose(theta, last[:, 2] + TAU * last[:, 3], atol=1e-5)

    capped = AgentPopulation("CartPole-v1", num_envs=4, max_episode_steps=5)
    batch = one_batch(capped.make_rollout_env(0), capped, num_episodes=4)
    assert_consistent(batch)
    assert batch.truncated.all() and batch.mask.all() and batch.mask.shape[1] == 5
    x, theta = batch.final_observations[:, 0], batch.final_observations[:, 2]
    assert ((x.abs() < CART_X_LIMIT) & (theta.abs() < CART_THETA_LIMIT)).all()
    last = last_observations(batch)
    assert torch.allclose(x, last[:, 0] + TAU * last[:, 1], atol=1e-5)


def test_simple_vector_env_gives_the_single_envs_flags_and_final_observations():
    """Sub-env ``i`` reset with seed ``s`` is SimpleEnv reset with ``s + i``: comparable."""
    vector = AgentPopulation(num_envs=4, max_episode_steps=6)
    batch = one_batch(vector.make_rollout_env(0), vector, num_episodes=4, env_seed=10)
    assert_consistent(batch)
    assert batch.truncated.all() and not batch.terminated.any()
    for i in range(4):
        single = AgentPopulation(max_episode_steps=6)
        alone = one_batch(single.make_env(0), single, num_episodes=1, env_seed=10 + i)
        assert torch.equal(alone.observations[0], batch.observations[i])
        assert torch.equal(alone.final_observations[0], batch.final_observations[i])
        assert (alone.terminated.item(), alone.truncated.item()) == (False, True)


def test_an_episode_that_terminates_on_its_last_allowed_step_is_terminated_only():
    """The same CartPole episode, capped at the step where its pole falls: no bootstrap."""
    free = AgentPopulation("CartPole-v1")
    length = int(one_batch(free.make_env(0), free, num_episodes=1).mask.sum())
    capped = AgentPopulation("CartPole-v1", max_episode_steps=length)
    batch = one_batch(capped.make_env(0), capped, num_episodes=1)
    assert int(batch.mask.sum()) == length  # the very same episode
    (ends,) = replay("CartPole-v1", length, batch, seed=3)
    assert ends[:2] == (True, True)  # gymnasium reports both
    assert_consistent(batch)
    assert (batch.terminated.item(), batch.truncated.item()) == (True, False)


def test_batches_record_the_behaviour_policys_log_probabilities():
    """For discrete and continuous actions, and for the Byzantine uniform actor."""
    for env_id, random_actions in [
        ("CartPole-v1", False),
        ("Pendulum-v1", False),
        ("Pendulum-v1", True),
    ]:
        population = AgentPopulation(env_id=env_id, num_agents=1)
        torch.manual_seed(0)
        module = Reinforce.for_population(population, hidden_dim=8, log_std_init=-0.5)
        env = population.make_rollout_env(0)
        dataset = EpisodeDataset(env, module.policy, 3, 3, 0.9, 1, 2, random_actions)
        (batch,) = list(dataset)
        env.close()
        mask = batch.mask
        assert batch.log_probs.dtype == torch.float32 and (batch.log_probs[~mask] == 0).all()
        if random_actions:  # uniform over [-2, 2]
            assert torch.allclose(batch.log_probs[mask], torch.tensor(-math.log(4.0)))
            continue
        with torch.no_grad():
            expected, _ = module.policy.log_prob_and_entropy(
                batch.observations[mask], batch.actions[mask]
            )
        torch.testing.assert_close(batch.log_probs[mask], expected, atol=1e-5, rtol=1e-5)
