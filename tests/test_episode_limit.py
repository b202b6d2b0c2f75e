"""Episodes must end: ``--data.max_episode_steps`` caps every environment a run builds."""

import csv

import faults  # noqa: F401  (registers faults:Endless-v0)
import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_CONFIG, run_cli

from fedrl_lightning import AgentPopulation, Reinforce
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.population.envs import SimpleVectorEnv
from fedrl_lightning.rollouts.dataset import EpisodeDataset
from fedrl_lightning.rollouts.evaluation import evaluate_policy
from fedrl_lightning.rollouts.rollout import rollout_wave


def policy_for(population):
    torch.manual_seed(0)
    return Reinforce(population.observation_dim, population.num_actions, hidden_dim=8).policy


def episode_lengths(population, agent_id=0, num_episodes=6):
    env = population.make_rollout_env(agent_id)
    dataset = EpisodeDataset(env, policy_for(population), num_episodes, 3, 0.99, 5, 6)
    lengths = [int(n) for batch in dataset for n in batch.mask.sum(1)]
    env.close()
    assert len(lengths) == num_episodes
    return lengths


def test_default_is_the_environments_own_limit():
    cartpole, simple = AgentPopulation("CartPole-v1"), AgentPopulation()
    assert (cartpole.max_episode_steps, simple.max_episode_steps) == (500, 100)
    assert cartpole.make_env(0).spec.max_episode_steps == 500
    vector = AgentPopulation("CartPole-v1", num_envs=4).make_rollout_env(0)
    assert vector.unwrapped.max_episode_steps == 500
    assert simple.make_vector_env([0, 1]).max_episode_steps == 100


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"env_id": "faults:Endless-v0"}, "sets no time limit"),
        ({"env_id": "CartPole-v1", "max_episode_steps": 0}, "must be positive, got 0"),
        ({"max_episode_steps": -3}, "must be positive, got -3"),
        ({"env_kwargs": {"max_episode_steps": 5}}, "data.env_kwargs.max_episode_steps"),
    ],
)
def test_no_limit_or_a_bad_one_is_refused(kwargs, message):
    with pytest.raises(ConfigError, match="data.max_episode_steps") as caught:
        AgentPopulation(**kwargs)
    assert message in str(caught.value)


def test_the_cap_truncates_and_never_terminates():
    """An endless environment, single, in a SyncVectorEnv, and SimpleEnv's native vector."""
    endless = AgentPopulation("faults:Endless-v0", max_episode_steps=7, num_envs=3)
    simple = AgentPopulation(max_episode_steps=7, num_envs=3)
    envs = [endless.make_env(0), endless.make_rollout_env(0), simple.make_rollout_env(0)]
    assert isinstance(envs[1], gym.vector.SyncVectorEnv)  # its vector entry takes no limit
    assert isinstance(envs[2], SimpleVectorEnv)
    for env in envs:
        env.reset(seed=1)
        action = env.action_space.sample()
        flags = [env.step(action)[2:4] for _ in range(7)]
        terminated = np.array([t for t, _ in flags]).reshape(7, -1)
        truncated = np.array([t for _, t in flags]).reshape(7, -1)
        assert not terminated.any()
        assert not truncated[:6].any() and truncated[6].all()


def test_single_and_vector_envs_keep_giving_the_same_episodes():
    population = AgentPopulation(max_episode_steps=7)
    vector = population.make_vector_env([0, 1, 2])
    assert isinstance(vector, SimpleVectorEnv)
    singles = [population.make_env(a) for a in range(3)]
    seeds = [10, 11, 12]
    vec_obs, _ = vector.reset(seed=seeds)
    single_obs = [env.reset(seed=s)[0] for env, s in zip(singles, seeds, strict=True)]
    actions = np.random.default_rng(0).integers(0, 2, size=(7, 3))
    for step_actions in actions:
        assert np.array_equal(vec_obs, np.stack(single_obs))
        vec_obs, vec_rewards, _, vec_trunc, _ = vector.step(step_actions)
        results = [env.step(int(a)) for env, a in zip(singles, step_actions, strict=True)]
        single_obs = [r[0] for r in results]
        assert vec_rewards.tolist() == [r[1] for r in results]
        assert vec_trunc.tolist() == [r[3] for r in results]
    assert vec_trunc.all()


@pytest.mark.parametrize("num_envs", [1, 4])
def test_a_cap_below_cartpoles_shortens_its_episodes(num_envs):
    # A CartPole episode lasts at least 8 steps, so a cap of 5 ends every one of them.
    assert max(episode_lengths(AgentPopulation("CartPole-v1", num_envs=num_envs))) > 5
    capped = AgentPopulation(
        "CartPole-v1", num_envs=num_envs, max_episode_steps=5, heterogeneity={"length": [0.2, 0.8]}
    )
    if num_envs > 1:
        assert not isinstance(capped.make_rollout_env(1), gym.vector.SyncVectorEnv)  # native
    assert episode_lengths(capped, agent_id=1) == [5] * 6


@pytest.mark.parametrize("env_id", ["CartPole-v1", "fedrl/Simple-v0", "faults:Endless-v0"])
def test_evaluation_is_capped(env_id):
    population = AgentPopulation(env_id, num_agents=3, max_episode_steps=5)
    env = population.make_vector_env([0, 1, 2, 2])
    episodes = rollout_wave(env, policy_for(population).actor(), np.random.default_rng(0), None)
    assert [len(e.rewards) for e in episodes] == [5] * 4
    if env_id == "CartPole-v1":  # one point a step
        returns = evaluate_policy(policy_for(population), env, [1, 2, 3, 4], 0).returns
        assert returns.tolist() == [5.0] * 4


def test_endless_env_is_refused_before_the_run_starts(tmp_path):
    result = run_cli(
        "fit", "--config", str(TINY_CONFIG), "--data.env_id", "faults:Endless-v0", cwd=tmp_path
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "error: data.max_episode_steps: faults:Endless-v0 sets no time limit, so an episode "
        "may never end; set data.max_episode_steps"
    ], result.stderr
    assert not (tmp_path / "lightning_logs").exists()


def test_capped_endless_run_trains_on_episodes_of_the_cap(tmp_path):
    args = ["--data.env_id", "faults:Endless-v0", "--data.max_episode_steps", "7"]
    result = run_cli("fit", "--config", str(TINY_CONFIG), *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "lightning_logs" / "version_0"
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["episodes"]) for row in rows] == [4, 8, 12]  # 2 agents x 2 episodes a round
    assert [int(row["env_steps"]) for row in rows] == [28, 56, 84]
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["data"]["max_episode_steps"] == 7
    resume = ["--ckpt_path", "last", "--trainer.num_rounds", "4", "--data.max_episode_steps", "9"]
    refused = run_cli("fit", *resume, cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: --data.max_episode_steps: the run in"), refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
