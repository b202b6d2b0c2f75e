"""SAC: one update by hand, FedProx, its agents' memory, and whole runs through the CLI."""

import copy
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_SAC_CONFIG, fit_locally, metrics_without_timings, run_cli
from torch.distributions import Normal
from torch.utils.data import DataLoader

from fedrl_lightning.deploy.loading import load_module
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.learners import SAC
from fedrl_lightning.rollouts.replay import ReplayBatch, ReplayBuffer
from fedrl_lightning.rollouts.transitions import StepsBatch

RUN = Path("lightning_logs/version_0")
LOW, HIGH = [-2.0, -1.0], [2.0, 3.0]  # scale [2, 2], bias [0, 1]


def continuous_batch(batch_size=5, observation_dim=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return ReplayBatch(
        observations=torch.randn(batch_size, observation_dim, generator=generator),
        actions=torch.rand(batch_size, 2, generator=generator) * 4 - torch.tensor([2.0, 1.0]),
        rewards=torch.randn(batch_size, generator=generator),
        next_observations=torch.randn(batch_size, observation_dim, generator=generator),
        dones=torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0]),
        discounts=torch.tensor([0.9, 0.9, 0.81, 0.729, 0.9]),
    )


def small_sac(**options):
    torch.manual_seed(0)
    options = {"observation_dim": 3, "num_actions": 2, "action_low": LOW, "action_high": HIGH,
               "hidden_dim": 8, **options}  # fmt: skip
    return SAC(**options)


def squashed_by_hand(policy, observations, generator):
    """``a = c + s tanh(u)``, ``u = μ + σ ε``, and ``log π(a)`` by the change of variables."""
    outputs = policy.outputs(observations)
    mean, log_std = outputs[:, :2], outputs[:, 2:].clamp(-20, 2)
    pre_tanh = mean + log_std.exp() * torch.randn(mean.shape, generator=generator)
    scale, bias = torch.tensor([2.0, 2.0]), torch.tensor([0.0, 1.0])
    log_prob = Normal(mean, log_std.exp()).log_prob(pre_tanh)
    log_prob = log_prob - torch.log(scale * (1 - torch.tanh(pre_tanh) ** 2))
    return bias + scale * torch.tanh(pre_tanh), log_prob.sum(dim=1)


def adam_optimizer(module, lr):
    return torch.optim.Adam(module.parameters(), lr=lr)


def adam_step(parameters, loss, lr):
    optimizer = torch.optim.Adam(parameters, lr=lr)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


@pytest.mark.parametrize("mu", [0.0, 0.5])
def test_a_training_step_is_the_sac_update_by_hand(mu):
    model = small_sac(lr=0.01, q_lr=0.02, tau=0.1)
    model.load_agent_memory(None)
    with torch.no_grad():  # targets unlike the critics, and α unlike 1
        for parameter in model.target_critic.parameters():
            parameter.add_(0.5)
        model.log_alpha.fill_(-0.3)
    anchor = {k: v + 0.1 for k, v in model.state_dict().items()}
    if mu:
        model.set_proximal_term(anchor, mu)
    model.noise_seed = 11
    actor, critic = copy.deepcopy(model.policy), copy.deepcopy(model.critic)
    target = copy.deepcopy(model.target_critic)
    log_alpha = torch.tensor(-0.3, requires_grad=True)
    batch, generator, alpha = continuous_batch(), torch.Generator().manual_seed(11), math.exp(-0.3)

    def proximal(module, prefix):
        return mu / 2 * sum((p - anchor[f"{prefix}.{n}"]).square().sum()
                            for n, p in module.named_parameters())  # fmt: skip

    # critics: y = r + discount (1 - done) (min Q'(s', a') - α log π(a'|s'))
    with torch.no_grad():
        next_action, next_log_prob = squashed_by_hand(actor, batch.next_observations, generator)
        inputs = torch.cat([batch.next_observations, next_action], dim=1)
        next_q = torch.minimum(target.q1(inputs), target.q2(inputs)).squeeze(1)
        y = batch.rewards + batch.discounts * (1 - batch.dones) * (next_q - alpha * next_log_prob)
    inputs = torch.cat([batch.observations, batch.actions], dim=1)
    critic_loss = F.mse_loss(critic.q1(inputs).squeeze(1), y) + F.mse_loss(
        critic.q2(inputs).squeeze(1), y
    )
    adam_step(critic.parameters(), critic_loss + proximal(critic, "critic"), 0.02)
    # actor: mean(α log π(a|s) - min Q(s, a)), with the updated critics
    action, log_prob = squashed_by_hand(actor, batch.observations, generator)
    inputs = torch.cat([batch.observations, action], dim=1)
    actor_loss = (alpha * log_prob - torch.minimum(critic.q1(inputs), critic.q2(inputs))
                  .squeeze(1)).mean()  # fmt: skip
    adam_step(actor.parameters(), actor_loss + proximal(actor, "policy"), 0.01)
    # temperature: -mean(log α (log π + H̄)), H̄ = -2; targets: a Polyak step of 0.1
    alpha_loss = -(log_alpha * (log_prob.detach() - 2.0)).mean()
    adam_step([log_alpha], alpha_loss, 0.01)
    with torch.no_grad():
        for t, c in zip(target.parameters(), critic.parameters(), strict=True):
            t.mul_(0.9).add_(0.1 * c)

    fit_locally(model, DataLoader([StepsBatch(batch, 10, torch.tensor([3.0]), 10)], None))

    metrics = model.agent_stats()["metrics"]
    assert metrics["loss"] == pytest.approx(critic_loss.item(), rel=1e-5)
    assert metrics["actor_loss"] == pytest.approx(actor_loss.item(), rel=1e-5)
    assert metrics["alpha"] == pytest.approx(alpha, rel=1e-6)
    assert metrics["entropy"] == pytest.approx(-log_prob.mean().item(), rel=1e-5)
    for mine, theirs in ((model.policy, actor), (model.critic, critic),
                         (model.target_critic, target)):  # fmt: skip
        for name, value in theirs.state_dict().items():
            assert torch.allclose(mine.state_dict()[name], value, atol=1e-6), name
    assert model.log_alpha.item() == pytest.approx(log_alpha.item(), abs=1e-6)
    assert model.num_updates == 1 and model.agent_steps == 10 and model.num_episodes == 1


def test_the_temperature_rises_while_the_entropy_is_below_its_target():
    model = small_sac(target_entropy=50.0)  # far above any entropy the actor has
    model.load_agent_memory(None)
    items = [StepsBatch(continuous_batch(seed=s), s + 1, torch.zeros(0), 1) for s in range(5)]
    fit_locally(model, DataLoader(items, batch_size=None))
    assert model.log_alpha.item() > 0 and model.num_updates == 5
    fixed = small_sac(autotune=False, alpha=0.05)
    fixed.load_agent_memory(None)
    fit_locally(fixed, DataLoader(items, batch_size=None))
    assert fixed.log_alpha.item() == pytest.approx(math.log(0.05)) and len(fixed.optimizers()) == 2


def test_the_target_critics_update_every_interval_of_gradient_updates():
    model = small_sac(target_update_interval=3)
    model.load_agent_memory({"agent_steps": 0, "targets": {}, "num_updates": 1})
    start = copy.deepcopy(model.target_critic.state_dict())
    items = [StepsBatch(continuous_batch(seed=s), s + 1, torch.zeros(0), 1) for s in range(2)]
    fit_locally(model, DataLoader(items[:1], batch_size=None))  # update 2
    assert all(torch.equal(model.target_critic.state_dict()[k], v) for k, v in start.items())
    fit_locally(model, DataLoader(items[1:], batch_size=None))  # update 3: a Polyak step
    assert all(not torch.equal(model.target_critic.state_dict()[k], v) for k, v in start.items())


def test_targets_and_temperature_stay_out_of_the_state_dict_and_move_with_the_module():
    model = small_sac()
    assert {name.split(".")[0] for name in model.state_dict()} == {"policy", "critic"}
    model.double()
    assert model.target_critic.q1[0].weight.dtype == torch.float64
    assert model.log_alpha.dtype == torch.float64 and model.log_alpha.requires_grad
    model.float()
    SAC(observation_dim=3, num_actions=2, action_low=LOW, action_high=HIGH,
        hidden_dim=8).load_state_dict(model.state_dict())  # fmt: skip


def test_the_agent_memory_round_trips_targets_temperature_and_updates():
    model = small_sac(buffer_size=20, batch_size=8)
    model.load_agent_memory(None)
    spaces = (
        gym.spaces.Box(-np.inf, np.inf, (3,)),
        gym.spaces.Box(np.float32(LOW), np.float32(HIGH)),
    )
    buffer = ReplayBuffer.from_spaces(20, *spaces)
    for step in range(25):  # wraps the ring
        observation = np.full((1, 3), step, np.float32)
        buffer.add(observation, observation + 1, np.zeros((1, 2), np.float32), [1.0], [False],
                   [step % 7 == 6])  # fmt: skip
    model.replay, model.agent_steps, model.num_updates = buffer, 25, 17
    with torch.no_grad():
        model.target_critic.q2[0].bias.add_(1.0)
        model.log_alpha.fill_(-1.25)
    memory = model.agent_memory()

    other = small_sac(buffer_size=20, batch_size=8)
    other.load_agent_memory(memory)
    assert (other.agent_steps, other.num_updates) == (25, 17)
    assert other.log_alpha.item() == -1.25 and other.log_alpha.requires_grad
    assert torch.equal(other.target_critic.q2[0].bias, model.target_critic.q2[0].bias)
    assert other.replay is not None and len(other.replay) == 20
    synced = small_sac(buffer_size=20, batch_size=8, sync_targets=True)
    synced.load_agent_memory(memory)  # the targets start from the critics received
    assert torch.equal(synced.target_critic.q2[0].bias, synced.critic.q2[0].bias)
    assert synced.log_alpha.item() == -1.25  # the temperature is the agent's all the same
    other.load_agent_memory(None)  # another agent's first fit
    assert other.log_alpha.item() == 0.0 and other.num_updates == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"continuous": False}, "model SAC needs a continuous action space (a Box)"),
        ({"tau": 0.0}, "model.tau must be in (0, 1], got 0.0"),
        ({"autotune": False, "alpha": 0.0}, "model.alpha must be positive"),
        ({"action_low": [3.0, -2.0]}, "model.action_low must be below model.action_high"),
    ],
)
def test_bad_options_are_refused_by_name(options, message):
    with pytest.raises(ConfigError) as error:
        small_sac(**options)
    assert message in str(error.value)


@pytest.fixture(scope="module")
def sac_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("sac")
    result = run_cli("fit", "--config", str(TINY_SAC_CONFIG), cwd=cwd)
    assert result.returncode == 0, result.stderr
    return cwd


def test_a_run_keeps_each_agent_s_buffer_targets_and_temperature(sac_run):
    rows = metrics_without_timings(sac_run)
    assert [int(row["env_steps"]) for row in rows] == [200, 400, 600]  # 2 agents x 100 steps
    assert all(0 < float(row["train_alpha"]) < 1 for row in rows)  # α learnt down from 1
    total = 0
    for path in sorted((sac_run / RUN / "memory").iterdir()):
        memory = torch.load(path, weights_only=True)["memory"]
        total += memory["agent_steps"]
        # 2 of every 100 steps' updates, from step 31: 35 in an agent's first fit, 50 after
        assert memory["num_updates"] == 35 + 50 * (memory["agent_steps"] // 100 - 1)
        assert set(memory["targets"]) == {"critic"} and memory["log_alpha"].shape == ()
        assert len(ReplayBuffer.from_state_dict(memory["replay"])) == min(
            memory["agent_steps"], 150
        )
    assert total == 600
    checkpoint = torch.load(sac_run / RUN / "checkpoints" / "last.ckpt", weights_only=True)
    assert {name.split(".")[0] for name in checkpoint["state_dict"]} == {"policy", "critic"}


def test_a_trained_sac_loads_acts_evaluates_and_exports(sac_run, tmp_path):
    checkpoint = str(sac_run / RUN / "checkpoints" / "last.ckpt")
    module = load_module(checkpoint)
    assert isinstance(module, SAC)
    observations = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    mean = module.policy.outputs(torch.from_numpy(observations))[:, :1].detach()
    expected = (2.0 * torch.tanh(mean)).numpy()  # Pendulum's torque is in [-2, 2]
    assert np.allclose(module.act(observations, deterministic=True), expected, atol=1e-6)
    sampled = module.act(observations)
    assert sampled.shape == (6, 1) and np.all(np.abs(sampled) <= 2)
    noise = np.random.default_rng(1).standard_normal((6, 1)).astype(np.float32)
    numpy_actions = module.policy.actor().sample(observations, noise)

    evaluated = run_cli("evaluate", "--ckpt_path", checkpoint, "--episodes", "2", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    onnx = ["--out", "policy.onnx", "--format", "onnx", "--noise_input", "true"]
    for args in (["--out", "policy.pt"], onnx):
        exported = run_cli("export", "--ckpt_path", checkpoint, *args, cwd=tmp_path)
        assert exported.returncode == 0, exported.stderr
    scripted = torch.jit.load(tmp_path / "policy.pt")
    assert np.allclose(scripted(torch.from_numpy(observations)).numpy(), expected, atol=1e-6)
    with_noise = scripted(torch.from_numpy(observations), torch.from_numpy(noise)).numpy()
    assert np.allclose(with_noise, numpy_actions, atol=1e-5)
    session = ort.InferenceSession(str(tmp_path / "policy.onnx"))
    (onnx_actions,) = session.run(None, {"observations": observations, "noise": noise})
    assert np.allclose(onnx_actions, numpy_actions, atol=1e-5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model.tau", "1.5"], "model.tau must be in (0, 1], got 1.5"),
        (["--model.buffer_size", "4"], "model.buffer_size (4) must be at least model.batch_size"),
        (["--data.env_id", "CartPole-v1"], "model SAC needs a continuous action space (a Box)"),
        (["--trainer.strategy", "PerFedAvg"], "PerFedAvg takes paired meta steps of one loss"),
        (["--trainer.server", "Gradient"], "model SAC steps its critics and actor on separate"),
    ],
)
def test_bad_sac_options_get_one_line_and_write_nothing(tmp_path, args, message):
    assert_refused_in_one_line(tmp_path, TINY_SAC_CONFIG, args, message)


def assert_refused_in_one_line(tmp_path, config, args, message):
    """``fit --config config args`` exits 2 with one line holding ``message``, writing nothing."""
    result = run_cli("fit", "--config", str(config), *args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "lightning_logs").exists()
