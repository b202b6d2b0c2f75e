import gymnasium as gym
import pytest

from fedrl_lightning import AgentPopulation, FederatedTrainer, Reinforce
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.population.envs import SimpleVectorEnv


def test_spaces_size_the_policy():
    population = AgentPopulation("CartPole-v1", num_agents=2)
    assert (population.observation_dim, population.num_actions) == (4, 2)
    assert (AgentPopulation().observation_dim, AgentPopulation().num_actions) == (4, 2)


def test_vector_env_is_native_only_when_it_takes_per_env_seeds():
    native = AgentPopulation().make_vector_env([0, 0, 1])
    assert isinstance(native, SimpleVectorEnv) and native.num_envs == 3
    fallback = AgentPopulation("CartPole-v1").make_vector_env([0, 1])
    assert isinstance(fallback, gym.vector.SyncVectorEnv) and fallback.num_envs == 2


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"env_id": "Nope-v0"}, "data.env_id"),
        ({"env_id": "FrozenLake-v1"}, "data.env_id"),
        ({"num_envs": 0}, "data.num_envs"),
        ({"heterogeneity": {"length": [0.9, 0.1]}}, "data.heterogeneity.length"),
        ({"env_id": "CartPole-v1", "heterogeneity": {"lenght": [0.1, 0.9]}}, "data.heterogeneity"),
        ({"num_agents": 0}, "data.num_agents"),
        ({"episodes_per_update": 0}, "data.episodes_per_update"),
    ],
)
def test_bad_population_names_the_option(kwargs, option):
    with pytest.raises(ConfigError, match=option):
        AgentPopulation(**kwargs)


def test_a_round_on_cartpole(tmp_path):
    population = AgentPopulation("CartPole-v1", num_agents=2)
    model = Reinforce(population.observation_dim, population.num_actions, hidden_dim=16)
    trainer = FederatedTrainer(
        num_rounds=1,
        agents_per_round=2,
        episodes_per_round=2,
        eval_episodes=2,
        default_root_dir=str(tmp_path),
        enable_progress_bar=False,
        seed=3,
    )
    (row,) = trainer.fit(model, population)
    assert row["episodes"] == 4
    assert 8 <= row["eval_reward_min"] <= row["eval_reward"] <= 500
