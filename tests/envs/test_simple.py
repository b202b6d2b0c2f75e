import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import fedrl_lightning  # noqa: F401  (registers fedrl/Simple-v0)
from fedrl_lightning.population.envs import SimpleEnv, SimpleVectorEnv


def test_env_checker_passes():
    check_env(SimpleEnv(), skip_render_check=True)
    check_env(gym.make("fedrl/Simple-v0").unwrapped, skip_render_check=True)


def test_registered_episode_lasts_100_steps():
    env = gym.make("fedrl/Simple-v0")
    env.reset(seed=0)
    for step in range(1, 101):
        _, _, terminated, truncated, _ = env.step(0)
        assert not terminated
        assert truncated == (step == 100)


def test_reward_pays_for_the_positive_coordinate():
    env = SimpleEnv()
    observation, _ = env.reset(seed=3)
    for t in range(300):
        action = t % 2
        expected = 1.0 if observation[action] > 0 else 0.0
        observation, reward, *_ = env.step(action)
        assert reward == expected


def test_reward_sign_minus_one_pays_for_the_negative_coordinate():
    env = SimpleEnv(reward_sign=-1)
    observation, _ = env.reset(seed=3)
    for t in range(300):
        action = t % 2
        expected = 1.0 if observation[action] < 0 else 0.0
        observation, reward, *_ = env.step(action)
        assert reward == expected


@pytest.mark.parametrize("sign", [1, -1])
def test_each_task_has_an_oracle_scoring_about_75_and_the_other_task_s_scores_25(sign):
    """The oracle of one sign is the worst policy of the other: no single policy serves both."""
    scores = {1: [], -1: []}
    for seed in range(1000):  # an episode's return is nearly 0 or 100: a standard error of ~1.3
        env = gym.make("fedrl/Simple-v0", reward_sign=sign)
        observation, _ = env.reset(seed=seed)
        totals = {1: 0.0, -1: 0.0}
        done = False
        while not done:
            # Both oracles act on the same state, in two copies of the environment.
            larger = int(observation[1] > observation[0])
            totals[1] += float(sign * observation[larger] > 0)
            totals[-1] += float(sign * observation[1 - larger] > 0)
            observation, _, terminated, truncated, _ = env.step(larger)
            done = terminated or truncated
        for oracle, total in totals.items():
            scores[oracle].append(total)
    own, other = np.mean(scores[sign]), np.mean(scores[-sign])
    assert 71 < own < 79
    assert 21 < other < 29


def test_vector_env_has_the_reward_sign_too():
    seeds = [5, 6, 7]
    vector = SimpleVectorEnv(num_envs=3, reward_sign=-1)
    singles = [SimpleEnv(reward_sign=-1) for _ in seeds]
    vec_obs, _ = vector.reset(seed=seeds)
    single_obs = [env.reset(seed=s)[0] for env, s in zip(singles, seeds, strict=True)]
    for t in range(50):
        assert np.array_equal(vec_obs, np.stack(single_obs))
        actions = np.array([t % 2] * 3)
        vec_obs, vec_rewards, *_ = vector.step(actions)
        results = [env.step(int(a)) for env, a in zip(singles, actions, strict=True)]
        single_obs = [r[0] for r in results]
        assert vec_rewards.tolist() == [r[1] for r in results]


def test_dynamics_are_a_gaussian_random_walk_with_scale_0_1():
    env = SimpleEnv()
    starts, steps = [], []
    for seed in range(400):
        observation, _ = env.reset(seed=seed)
        starts.append(observation)
        for _ in range(25):
            next_observation, *_ = env.step(seed % 2)
            steps.append(next_observation - observation)
            observation = next_observation
    starts, steps = np.array(starts), np.array(steps)
    assert starts.shape[1] == 4
    assert abs(starts.mean()) < 0.1 and abs(starts.std() - 1.0) < 0.05
    assert abs(steps.mean()) < 0.005 and abs(steps.std() - 0.1) < 0.003


def test_actions_do_not_move_the_state():
    env_a, env_b = SimpleEnv(), SimpleEnv()
    obs_a, _ = env_a.reset(seed=5)
    obs_b, _ = env_b.reset(seed=5)
    for _ in range(200):
        obs_a, *_ = env_a.step(0)
        obs_b, *_ = env_b.step(1)
    assert np.array_equal(obs_a, obs_b)


def test_same_seed_same_trajectory():
    first = SimpleEnv().reset(seed=11)[0]
    again = SimpleEnv().reset(seed=11)[0]
    other = SimpleEnv().reset(seed=12)[0]
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("num_envs", [1, 5])
def test_vector_env_matches_single_envs_seed_for_seed(num_envs):
    seeds = [100 + i for i in range(num_envs)]
    vector = SimpleVectorEnv(num_envs=num_envs)
    singles = [gym.make("fedrl/Simple-v0") for _ in seeds]
    vec_obs, _ = vector.reset(seed=seeds)
    single_obs = [env.reset(seed=s)[0] for env, s in zip(singles, seeds, strict=True)]
    rng = np.random.default_rng(0)
    for _ in range(100):
        assert np.array_equal(vec_obs, np.stack(single_obs))
        actions = rng.integers(0, 2, size=num_envs)
        vec_obs, vec_rewards, vec_term, vec_trunc, _ = vector.step(actions)
        results = [env.step(int(a)) for env, a in zip(singles, actions, strict=True)]
        single_obs = [r[0] for r in results]
        assert vec_rewards.tolist() == [r[1] for r in results]
        assert vec_trunc.tolist() == [r[3] for r in results]
        assert not vec_term.any()
    assert vec_trunc.all()


def test_vector_env_autoresets_on_the_next_step():
    vector = gym.make_vec("fedrl/Simple-v0", num_envs=2, vectorization_mode="vector_entry_point")
    vector.reset(seed=[1, 2])
    for _ in range(100):
        _, _, _, truncated, _ = vector.step(np.zeros(2, dtype=np.int64))
    assert truncated.all()
    _, rewards, terminated, truncated, _ = vector.step(np.zeros(2, dtype=np.int64))
    assert rewards.tolist() == [0.0, 0.0]
    assert not truncated.any() and not terminated.any()


def test_vector_env_reset_after_a_finished_episode_starts_clean():
    used = SimpleVectorEnv(num_envs=2)
    used.reset(seed=[1, 2])
    for _ in range(100):
        used.step(np.zeros(2, dtype=np.int64))  # both episodes end, an autoreset is pending
    fresh = SimpleVectorEnv(num_envs=2)
    assert np.array_equal(used.reset(seed=[5, 6])[0], fresh.reset(seed=[5, 6])[0])
    for _ in range(3):
        actions = np.ones(2, dtype=np.int64)
        for a, b in zip(used.step(actions), fresh.step(actions), strict=True):
            if isinstance(a, np.ndarray):
                assert np.array_equal(a, b)
