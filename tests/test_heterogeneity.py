import csv

import gymnasium as gym
import numpy as np
import pytest
import yaml
from conftest import TINY_CONFIG, run_cli, run_main

from fedrl_lightning import AgentPopulation
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.population.heterogeneity import Choices, Heterogeneity


def test_spread_spaces_a_range_evenly_and_cycles_choices():
    spread = Heterogeneity({"length": [0.1, 0.9], "gravity": {"choices": [9.8, 3.7]}}, 5)
    assert [spread.values(a)["length"] for a in range(5)] == pytest.approx(
        [0.1, 0.3, 0.5, 0.7, 0.9]
    )
    assert [spread.values(a)["gravity"] for a in range(5)] == [9.8, 3.7, 9.8, 3.7, 9.8]


def test_sample_depends_only_on_seed_and_agent():
    first = Heterogeneity({"length": [0.1, 0.9]}, 10, mode="sample", seed=1)
    again = Heterogeneity({"length": [0.1, 0.9]}, 10, mode="sample", seed=1)
    other = Heterogeneity({"length": [0.1, 0.9]}, 10, mode="sample", seed=2)
    values = [first.values(a)["length"] for a in range(10)]
    assert values == [again.values(a)["length"] for a in reversed(range(10))][::-1]
    assert values != [other.values(a)["length"] for a in range(10)]
    assert all(0.1 <= v <= 0.9 for v in values) and len(set(values)) == 10


def test_typed_specs_and_plain_ones_spread_alike():
    typed = Heterogeneity({"length": (0.1, 0.9), "sign": Choices([1, -1])}, 3)
    plain = Heterogeneity({"length": [0.1, 0.9], "sign": {"choices": [1, -1]}}, 3)
    assert [typed.values(a) for a in range(3)] == [plain.values(a) for a in range(3)]
    assert [typed.values(a)["sign"] for a in range(3)] == [1, -1, 1]  # integers stay integers


@pytest.mark.parametrize(
    "bad", [[0.9, 0.1], [1, 2, 3], {"choices": []}, Choices([]), (0.1, float("inf")), "long"]
)
def test_bad_specs_name_the_attribute(bad):
    with pytest.raises(ConfigError, match="data.heterogeneity.length"):
        Heterogeneity({"length": bad}, 3)


def test_cartpole_agents_have_their_own_physics():
    population = AgentPopulation("CartPole-v1", num_agents=3, heterogeneity={"length": [0.1, 0.9]})
    envs = [population.make_env(a) for a in range(3)]
    lengths = [env.unwrapped.length for env in envs]
    assert lengths == pytest.approx([0.1, 0.5, 0.9])
    for env in envs:  # CartPole's step uses these, computed once in __init__
        base = env.unwrapped
        assert base.polemass_length == pytest.approx(base.masspole * base.length)
        assert base.total_mass == pytest.approx(base.masspole + base.masscart)

    state = np.array([0.0, 0.0, 0.05, 0.0])
    next_states = []
    for env in envs:
        env.reset(seed=0)
        env.unwrapped.state = state.copy()
        next_states.append(env.step(1)[0])
    # The shorter the pole, the faster it tips: the angular velocity differs agent to agent.
    assert next_states[0][3] != pytest.approx(next_states[1][3])
    assert abs(next_states[0][3] - next_states[2][3]) > 0.05


def test_batched_rollout_envs_keep_the_agents_parameters():
    # CartPole's native vector environment, set to the agent's values
    population = AgentPopulation(
        "CartPole-v1", num_agents=3, num_envs=4, heterogeneity={"length": [0.1, 0.9]}
    )
    vector = population.make_rollout_env(2)
    assert isinstance(vector, gym.vector.VectorEnv) and vector.num_envs == 4
    assert vector.unwrapped.length == pytest.approx(0.9)
    assert vector.unwrapped.polemass_length == pytest.approx(0.1 * 0.9)
    # Acrobot has no native vector environment: copies of the agent's own environment
    population = AgentPopulation(
        "Acrobot-v1", num_agents=3, num_envs=2, heterogeneity={"LINK_MASS_1": [0.8, 1.2]}
    )
    vector = population.make_rollout_env(0)
    assert isinstance(vector, gym.vector.SyncVectorEnv)
    assert vector.get_attr("LINK_MASS_1") == (0.8, 0.8)


def test_simple_env_drift_and_noise_scale_are_per_agent():
    population = AgentPopulation(
        num_agents=2, heterogeneity={"drift": [0.0, 0.05], "noise_scale": {"choices": [0.1, 0.0]}}
    )
    env = population.make_env(1)
    start, _ = env.reset(seed=0)
    after, *_ = env.step(0)
    assert np.allclose(after - start, 0.05)  # no noise, pure drift


def test_agent_parameters_are_written_to_the_run_folder(tmp_path):
    result = run_cli(
        "fit",
        "--config",
        str(TINY_CONFIG),
        "--data.heterogeneity",
        "{noise_scale: [0.05, 0.15], drift: {choices: [0.0, 0.01]}}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "lightning_logs/version_0/agents.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows == [
        {"agent": "0", "noise_scale": "0.05", "drift": "0.0"},
        {"agent": "1", "noise_scale": "0.1", "drift": "0.01"},
        {"agent": "2", "noise_scale": "0.15", "drift": "0.0"},
    ]


def test_the_parser_types_each_attribute_in_yaml_and_dotted_forms(tmp_path, monkeypatch):
    def data(*args):
        code, stdout, stderr = run_main(
            ["fit", "--config", str(TINY_CONFIG), *args, "--print_config"], tmp_path, monkeypatch
        )
        assert code == 0, stderr
        return yaml.safe_load(stdout)["data"]

    whole = data("--data.heterogeneity", "{drift: [0, 1], reward_sign: {choices: [1, -1]}}")
    dotted = data(
        "--data.heterogeneity.drift",
        "[0, 1]",
        "--data.heterogeneity.reward_sign",
        "{choices: [1, -1]}",
    )
    expected = {"drift": [0.0, 1.0], "reward_sign": {"choices": [1, -1]}}
    assert whole["heterogeneity"] == dotted["heterogeneity"] == expected
    code, _, stderr = run_main(
        ["fit", "--config", str(TINY_CONFIG), "--data.heterogeneity.drift", "[0, 1, 2]"],
        tmp_path,
        monkeypatch,
    )
    assert code == 2
    assert stderr.strip() == (
        "error: --data.heterogeneity.drift: expected a list of 2 numbers or {choices: ...}, "
        "got [0, 1, 2]"
    )
