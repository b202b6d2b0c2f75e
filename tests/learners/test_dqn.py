"""DQN: its update and schedules by hand, its agents' memory, and whole runs through the CLI."""

import copy
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TESTS, fit_locally, metrics_without_timings, run_cli
from torch.utils.data import DataLoader

from fedrl_lightning.deploy.loading import load_module
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.sampling import sample_agents
from fedrl_lightning.learners import DQN
from fedrl_lightning.rollouts.replay import ReplayBatch, ReplayBuffer
from fedrl_lightning.rollouts.transitions import StepsBatch, TransitionDataset, training_points

TINY_DQN_CONFIG = TESTS / "configs" / "tiny_dqn.yaml"
RUN = Path("lightning_logs/version_0")


def test_training_points_by_hand():
    # steps 1..100, training after every 4th once past 10: steps 12, 16, ..., 100
    assert training_points(0, 100, 4, 10) == 23
    # and only once the buffer holds a minibatch, from the fit's 32nd step: 32, ..., 100
    assert training_points(0, 100, 4, 10, first_ready=32) == 18
    # the agent's next fit, steps 101..200, learning from step 151: 152, ..., 200
    assert training_points(100, 100, 4, 150) == 13
    assert training_points(0, 10, 4, 100) == 0


def test_the_dataset_yields_what_its_length_says_and_counts_every_step():
    env = gym.make("CartPole-v1")
    buffer = ReplayBuffer.from_spaces(1000, env.observation_space, env.action_space)
    dataset = TransitionDataset(
        env, buffer, lambda observation, t: t % 2, num_steps=150, start_step=0, train_freq=4,
        gradient_steps=2, learning_starts=20, batch_size=16, n_step=1, gamma=0.99,
        env_seed=0, sample_seed=0,
    )  # fmt: skip
    expected = 2 * training_points(0, 150, 4, 20, first_ready=16) + 1

    items = list(dataset)

    assert len(items) == len(dataset) == expected
    assert sum(item.num_steps for item in items) == 150 == len(buffer)
    assert all(item.transitions is not None for item in items[:-1])
    assert items[-1].transitions is None and items[-1].agent_steps == 150
    assert [item.agent_steps % 4 for item in items[:-1]] == [0] * (expected - 1)
    returns = torch.cat([item.episode_returns for item in items])
    # CartPole pays 1 a step: the finished episodes' returns are their lengths
    assert len(returns) > 0 and returns.sum() <= 150 and bool((returns >= 8).all())


def one_batch(batch_size=5, observation_dim=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return ReplayBatch(
        observations=torch.randn(batch_size, observation_dim, generator=generator),
        actions=torch.randint(2, (batch_size,), generator=generator),
        rewards=torch.randn(batch_size, generator=generator),
        next_observations=torch.randn(batch_size, observation_dim, generator=generator),
        dones=torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0]),
        discounts=torch.tensor([0.9, 0.9, 0.81, 0.729, 0.9]),
    )


@pytest.mark.parametrize("double_q", [True, False])
def test_a_training_step_is_the_dqn_update_by_hand(double_q):
    torch.manual_seed(0)
    model = DQN(observation_dim=3, hidden_dim=4, num_layers=1, lr=0.1, max_grad_norm=None,
                double_q=double_q, target_update_interval=1000)  # fmt: skip
    model.load_agent_memory(None)
    with torch.no_grad():  # a target unlike the online network
        for parameter in model.target_policy.parameters():
            parameter.add_(0.5)
    online, target = copy.deepcopy(model.policy), copy.deepcopy(model.target_policy)
    batch = one_batch()
    # by hand: y = r + discount (1 - done) Q'(s', a*), a* the online (double) or target argmax
    next_target = target.q_values(batch.next_observations).detach()
    best = (online if double_q else target).q_values(batch.next_observations).argmax(dim=1)
    y = batch.rewards + batch.discounts * (1 - batch.dones) * next_target[range(5), best]
    q = online.q_values(batch.observations)[range(5), batch.actions]
    loss = F.smooth_l1_loss(q, y)
    optimizer = torch.optim.Adam(online.parameters(), lr=0.1)
    loss.backward()
    optimizer.step()

    items = [StepsBatch(batch, 10, torch.tensor([3.0]), 10)]
    fit_locally(model, DataLoader(items, batch_size=None))

    assert model.agent_stats()["metrics"]["loss"] == pytest.approx(loss.item(), rel=1e-6)
    for name, value in online.state_dict().items():
        assert torch.allclose(model.policy.state_dict()[name], value, atol=1e-6), name
    for name, value in target.state_dict().items():  # no target update was due
        assert torch.equal(model.target_policy.state_dict()[name], value), name
    assert model.num_steps == 10 and model.num_episodes == 1 and model.agent_steps == 10


def test_the_target_copies_the_online_network_once_an_interval_ends():
    torch.manual_seed(0)
    model = DQN(observation_dim=3, hidden_dim=4, num_layers=1, target_update_interval=20)
    model.load_agent_memory(None)
    start = copy.deepcopy(model.policy.state_dict())
    model.agent_steps = 10
    # steps 11..18, then 19..24: the second item crosses step 20
    items = [
        StepsBatch(one_batch(), 18, torch.zeros(0), 8),
        StepsBatch(None, 24, torch.zeros(0), 6),
    ]
    fit_locally(model, DataLoader(items[:1], batch_size=None))
    assert all(torch.equal(model.target_policy.state_dict()[k], v) for k, v in start.items())
    fit_locally(model, DataLoader(items[1:], batch_size=None))
    trained = model.policy.state_dict()
    assert any(not torch.equal(trained[k], v) for k, v in start.items())
    assert all(torch.equal(model.target_policy.state_dict()[k], v) for k, v in trained.items())


def test_the_targets_stay_out_of_the_state_dict_and_move_with_the_module():
    model = DQN(dueling=True)
    assert not any(name.startswith("target") for name in model.state_dict())
    assert "policy.value_head.weight" in model.state_dict()
    model.double()
    assert model.target_policy.head.weight.dtype == torch.float64
    loaded = DQN(dueling=True)
    loaded.load_state_dict(model.float().state_dict())  # strict: no target entries missing


def test_the_agent_memory_round_trips_and_first_fits_start_the_target_from_the_weights():
    torch.manual_seed(0)
    model = DQN(observation_dim=4, buffer_size=50, n_step=2)
    model.load_agent_memory(None)
    assert model.agent_steps == 0 and model.replay is None
    online = model.policy.state_dict()
    assert all(torch.equal(model.target_policy.state_dict()[k], v) for k, v in online.items())
    env = gym.make("CartPole-v1")
    model.replay = ReplayBuffer.from_spaces(50, env.observation_space, env.action_space)
    observation, _ = env.reset(seed=0)
    for _ in range(70):  # wraps the ring
        next_observation, reward, terminated, truncated, _ = env.step(1)
        model.replay.add(observation[None], next_observation[None], [1], [reward], [terminated],
                         [truncated])  # fmt: skip
        observation = next_observation if not (terminated or truncated) else env.reset()[0]
    model.agent_steps = 70
    with torch.no_grad():
        model.target_policy.head.bias.add_(1.0)
    memory = model.agent_memory()

    other = DQN(observation_dim=4, buffer_size=50, n_step=2)
    other.load_agent_memory(memory)

    assert other.agent_steps == 70
    assert torch.equal(other.target_policy.head.bias, model.target_policy.head.bias)
    drawn = [m.replay.sample(16, torch.Generator().manual_seed(3), 2) for m in (model, other)]
    for name, value in drawn[0]._asdict().items():
        assert torch.equal(getattr(drawn[1], name), value), name
    synced = DQN(observation_dim=4, buffer_size=50, n_step=2, sync_targets=True)
    synced.load_agent_memory(memory)  # the target starts from the weights received
    assert torch.equal(synced.target_policy.head.bias, synced.policy.head.bias)
    without = DQN(observation_dim=4, buffer_size=50, persist_replay=False)
    without.replay, without.agent_steps = model.replay, 70
    assert "replay" not in without.agent_memory()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"buffer_size": 16, "batch_size": 32}, "model.buffer_size (16) must be at least"),
        ({"tau": 0.0}, "model.tau must be in (0, 1]"),
        ({"tau": 1.5}, "model.tau must be in (0, 1]"),
        ({"continuous": True}, "model DQN needs a discrete action space"),
        ({"train_freq": 0}, "model.train_freq must be at least 1"),
        ({"exploration_final_eps": 2.0}, "model.exploration_final_eps must be in [0, 1]"),
    ],
)
def test_bad_options_are_refused_by_name(options, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):  # fmt: skip
        DQN(**options)


@pytest.fixture(scope="module")
def dqn_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("dqn")
    result = run_cli("fit", "--config", str(TINY_DQN_CONFIG), cwd=cwd)
    assert result.returncode == 0, result.stderr
    return cwd


def test_a_run_counts_the_agents_steps_and_keeps_each_agent_s_memory(dqn_run):
    rows = metrics_without_timings(dqn_run)
    assert [int(row["env_steps"]) for row in rows] == [200, 400, 600]  # 2 agents x 100 steps
    memory = sorted(p.name for p in (dqn_run / RUN / "memory").iterdir())
    sampled = {agent for r in (1, 2, 3) for agent in sample_agents(3, 2, 7, r)}
    assert memory == [f"agent-{agent:04d}.ckpt" for agent in sorted(sampled)]
    total = 0
    for name in memory:
        saved = torch.load(dqn_run / RUN / "memory" / name, weights_only=True)
        steps = saved["memory"]["agent_steps"]
        total += steps
        replay = ReplayBuffer.from_state_dict(saved["memory"]["replay"])
        assert len(replay) == min(steps, 150)  # the buffer wrapped where the agent took 200
        assert set(saved["memory"]["targets"]) == {"policy"}
    assert total == 600
    for path in (dqn_run / RUN / "checkpoints").iterdir():
        checkpoint = torch.load(path, weights_only=True)
        assert not any("target" in name for name in checkpoint["state_dict"])


def test_a_trained_dqn_loads_acts_greedily_and_exports(dqn_run, tmp_path):
    module = load_module(dqn_run / RUN / "checkpoints" / "last.ckpt")
    assert isinstance(module, DQN)
    observations = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    q = module.policy.q_values(torch.from_numpy(observations))
    expected = q.argmax(dim=1).numpy()
    assert np.array_equal(module.act(observations), expected)
    assert np.array_equal(module.act(observations, deterministic=True), expected)
    checkpoint = str(dqn_run / RUN / "checkpoints" / "last.ckpt")
    evaluated = run_cli("evaluate", "--ckpt_path", checkpoint, "--episodes", "2", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    exported = run_cli("export", "--ckpt_path", checkpoint, "--out", "policy.pt", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    policy = torch.jit.load(tmp_path / "policy.pt")
    assert np.array_equal(policy(torch.from_numpy(observations)).numpy(), expected)


def test_persist_replay_off_starts_every_round_from_an_empty_buffer(dqn_run, tmp_path):
    result = run_cli("fit", "--config", str(TINY_DQN_CONFIG), "--model.persist_replay", "false",
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    for path in (tmp_path / RUN / "memory").iterdir():
        memory = torch.load(path, weights_only=True)["memory"]
        assert "replay" not in memory and memory["agent_steps"] > 0
    assert metrics_without_timings(tmp_path) != metrics_without_timings(dqn_run)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model.tau", "0"], "model.tau must be in (0, 1], got 0.0"),
        (["--model.buffer_size", "4"], "model.buffer_size (4) must be at least model.batch_size"),
        (["--data.num_envs", "2"], "model DQN steps one environment per agent"),
        (["--data.env_id", "Pendulum-v1"], "model DQN needs a discrete action space"),
        (["--trainer.finetune_episodes", "2"], "trainer.finetune_episodes cannot be used with"),
    ],
)
def test_bad_dqn_options_get_one_line_and_write_nothing(tmp_path, args, message):
    result = run_cli("fit", "--config", str(TINY_DQN_CONFIG), *args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "lightning_logs").exists()
