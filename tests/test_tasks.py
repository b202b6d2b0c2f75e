"""Multi-task populations: tasks' agents, their environments, task-conditioned observations."""

import csv

import numpy as np
import pytest
import torch
from conftest import TINY_TASKS_CONFIG, run_cli

from fedrl_lightning import AgentPopulation, load_module
from fedrl_lightning.errors import ConfigError

RUN = "lightning_logs/version_0"
SIGNS = [{"env_kwargs": {"reward_sign": 1}}, {"env_kwargs": {"reward_sign": -1}}]


TASK_SCOPED = "[policy.hidden.*, policy.head.*, critic.0.*]"


def test_agents_are_numbered_task_by_task():
    population = AgentPopulation(
        num_agents=10,
        tasks=[{"num_agents": 3, "heterogeneity": {"noise_scale": [0.0, 0.2]}}, {}],
    )
    assert population.task_sizes == [3, 7]
    assert [population.task_of(a) for a in range(10)] == [0] * 3 + [1] * 7
    table = population.agent_table()
    assert [row["task"] for row in table] == [0] * 3 + [1] * 7
    # Each task's heterogeneity is spread over its own agents.
    assert [row.get("noise_scale") for row in table[:3]] == pytest.approx([0.0, 0.1, 0.2])
    assert "noise_scale" not in table[3]
    assert population.agents_differ
    assert AgentPopulation(num_agents=10, tasks=[{}, {}]).task_sizes == [5, 5]


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        ([{"num_agents": 3}, {"num_agents": 3}], "the tasks' num_agents add up to 6"),
        ([{"num_agents": 3}, {}, {}], "cannot share the 7 agents the others leave evenly"),
        ([{"env_idd": "CartPole-v1"}], r"data.tasks\[0\].env_idd: not an option of a task"),
        ([{"env_id": "Nope-v0"}], r"data.tasks\[0\]: data.env_id: unknown environment"),
        ({"env_id": "CartPole-v1"}, "give a list of tasks"),
        ([{"num_agents": 0}, {}], "num_agents must be positive"),
    ],
)
def test_bad_tasks_are_refused_by_name(tasks, message):
    with pytest.raises(ConfigError, match=message):
        AgentPopulation(num_agents=10, tasks=tasks)


def test_conditioned_observations_end_with_the_one_hot_task_id():
    population = AgentPopulation(num_agents=4, tasks=SIGNS, task_conditioned=True, num_envs=2)
    assert population.observation_dim == 4 + 2
    observation, _ = population.make_env(3).reset(seed=0)
    assert observation.shape == (6,) and observation[4:].tolist() == [0.0, 1.0]
    assert population.make_env(3).unwrapped.reward_sign == -1
    rollout = population.make_rollout_env(0)  # a vector env of the agent's own copies
    observations, _ = rollout.reset(seed=0)
    assert observations.shape == (2, 6) and observations[:, 4:].tolist() == [[1.0, 0.0]] * 2
    mixed, _ = population.make_vector_env([0, 3]).reset(seed=[1, 2])
    assert mixed[:, 4:].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    with pytest.raises(ConfigError, match="data.task_conditioned: the tasks' observation"):
        AgentPopulation(
            num_agents=2,
            tasks=[{"env_id": "CartPole-v1"}, {"env_id": "Acrobot-v1"}],
            task_conditioned=True,
        )


@pytest.fixture(scope="module")
def tasks_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("tasks")
    result = run_cli("fit", "--config", str(TINY_TASKS_CONFIG), cwd=cwd)
    assert result.returncode == 0, result.stderr
    return cwd


def test_each_task_is_reported_on_its_own(tasks_run):
    with open(tasks_run / RUN / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        per_agent = [float(row[f"eval_reward_per_agent/{a}"]) for a in range(4)]
        assert float(row["eval_reward_per_task/0"]) == pytest.approx(np.mean(per_agent[:2]))
        assert float(row["eval_reward_per_task/1"]) == pytest.approx(np.mean(per_agent[2:]))
    with open(tasks_run / RUN / "agents.csv") as f:
        assert [row["task"] for row in csv.DictReader(f)] == ["0", "0", "1", "1"]


def test_an_agent_deploys_its_tasks_head_and_appends_its_task_id_itself(tasks_run):
    last = tasks_run / RUN / "checkpoints/last.ckpt"
    shared = torch.load(last, weights_only=True)["fedrl"]["shared"]
    for agent, task in ((0, 0), (3, 1)):
        module = load_module(last, agent=agent)
        head = shared["tasks"][task]["policy.head.weight"]
        assert torch.equal(module.state_dict()["policy.head.weight"], head)
        assert module.observation_suffix.tolist() == ([1.0, 0.0] if task == 0 else [0.0, 1.0])
        raw = np.zeros(4, np.float32)  # what the environment itself returns
        conditioned = torch.from_numpy(np.concatenate([raw, module.observation_suffix]))
        expected = int(module.policy(conditioned[None]).probs.argmax())
        assert module.act(raw, deterministic=True) == expected
    assert not torch.equal(
        shared["tasks"][0]["policy.head.weight"], shared["tasks"][1]["policy.head.weight"]
    )


def test_tasks_with_other_spaces_get_models_of_their_own_sizes(tmp_path):
    tasks = "[{env_id: CartPole-v1}, {env_id: Acrobot-v1}]"
    common = ["--model", "PPO", "--model.num_layers", "2", "--model.hidden_dim", "8"]
    common += ["--data.tasks", tasks, "--data.num_agents", "2", "--data.max_episode_steps", "30"]
    common += ["--trainer.num_rounds", "2", "--trainer.agents_per_round", "2"]
    common += ["--trainer.episodes_per_round", "2", "--trainer.eval_episodes", "1"]
    refused = run_cli("fit", *common, cwd=tmp_path)
    assert refused.returncode == 2
    assert "policy.hidden.weight has the shapes [(8, 4), (8, 6)]" in refused.stderr
    assert not (tmp_path / "lightning_logs").exists()
    scoped = ["--trainer.server", "Shared", "--trainer.server.task", TASK_SCOPED]
    result = run_cli("fit", *common, *scoped, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    last = tmp_path / RUN / "checkpoints/last.ckpt"
    cartpole, acrobot = load_module(last, agent=0), load_module(last, agent=1)
    assert (cartpole.hparams.observation_dim, cartpole.hparams.num_actions) == (4, 2)
    assert (acrobot.hparams.observation_dim, acrobot.hparams.num_actions) == (6, 3)
    # The trunk is global: both tasks' models hold the same one.
    assert torch.equal(
        cartpole.state_dict()["policy.deeper.0.weight"],
        acrobot.state_dict()["policy.deeper.0.weight"],
    )
    assert acrobot.act(np.zeros(6, np.float32)) in (0, 1, 2)
    evaluated = run_cli("evaluate", "--episodes", "2", "--out", "tasks.csv", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "each task's global policy" in evaluated.stdout
    with open(tmp_path / "tasks.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["task"] for row in rows] == ["0", "1"]
    assert float(rows[1]["mean_return"]) <= 0 < float(rows[0]["mean_return"])  # Acrobot, CartPole
