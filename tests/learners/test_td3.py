"""TD3: two updates by hand (smoothing, the delay, FedProx), its memory, and CLI runs."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_TD3_CONFIG, fit_locally, metrics_without_timings, run_cli
from test_sac import HIGH, LOW, adam_optimizer, assert_refused_in_one_line, continuous_batch
from torch.utils.data import DataLoader

from fedrl_lightning.deploy.loading import load_module
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.learners import TD3
from fedrl_lightning.rollouts.transitions import StepsBatch

RUN = Path("lightning_logs/version_0")
SCALE, BIAS = torch.tensor([2.0, 2.0]), torch.tensor([0.0, 1.0])  # of LOW and HIGH


def small_td3(**options):
    torch.manual_seed(0)
    options = {"observation_dim": 3, "num_actions": 2, "action_low": LOW, "action_high": HIGH,
               "hidden_dim": 8, **options}  # fmt: skip
    return TD3(**options)


def q(critic, observations, actions, which):
    return getattr(critic, which)(torch.cat([observations, actions], dim=1)).squeeze(1)


@pytest.mark.parametrize("mu", [0.0, 0.5])
def test_two_training_steps_are_the_td3_updates_by_hand(mu):
    model = small_td3(lr=0.01, q_lr=0.02, tau=0.1)
    model.load_agent_memory(None)
    with torch.no_grad():  # targets unlike the online networks
        for parameter in [*model.target_critic.parameters(), *model.target_policy.parameters()]:
            parameter.add_(0.3)
    anchor = {k: v + 0.1 for k, v in model.state_dict().items()}
    if mu:
        model.set_proximal_term(anchor, mu)
    model.noise_seed = 11
    actor, critic = copy.deepcopy(model.policy), copy.deepcopy(model.critic)
    target_actor, target_critic = (
        copy.deepcopy(model.target_policy),
        copy.deepcopy(model.target_critic),
    )
    critic_adam, actor_adam = adam_optimizer(critic, 0.02), adam_optimizer(actor, 0.01)
    generator = torch.Generator().manual_seed(11)
    batches = [continuous_batch(seed=1), continuous_batch(seed=2)]

    def proximal(module, prefix):
        return mu / 2 * sum((p - anchor[f"{prefix}.{n}"]).square().sum()
                            for n, p in module.named_parameters())  # fmt: skip

    critic_losses = []
    for batch in batches:
        # y = r + discount (1 - done) min Q'(s', clip(μ'(s') + s clip(0.2 ε, ±0.5), low, high))
        with torch.no_grad():
            noise = (0.2 * torch.randn(5, 2, generator=generator)).clamp(-0.5, 0.5)
            smoothed = BIAS + SCALE * torch.tanh(target_actor.outputs(batch.next_observations))
            smoothed = torch.clamp(smoothed + SCALE * noise, BIAS - SCALE, BIAS + SCALE)
            next_q = torch.minimum(*(q(target_critic, batch.next_observations, smoothed, w)
                                     for w in ("q1", "q2")))  # fmt: skip
            y = batch.rewards + batch.discounts * (1 - batch.dones) * next_q
        loss = sum(F.mse_loss(q(critic, batch.observations, batch.actions, w), y)
                   for w in ("q1", "q2"))  # fmt: skip
        critic_adam.zero_grad()
        (loss + proximal(critic, "critic")).backward()
        critic_adam.step()
        critic_losses.append(loss.item())
    # the second update is the delayed one: the actor up Q1(s, μ(s)), then the targets
    observations = batches[1].observations
    action = BIAS + SCALE * torch.tanh(actor.outputs(observations))
    actor_loss = -q(critic, observations, action, "q1").mean()
    actor_adam.zero_grad()
    (actor_loss + proximal(actor, "policy")).backward()
    actor_adam.step()
    with torch.no_grad():
        for target, online in ((target_actor, actor), (target_critic, critic)):
            for t, o in zip(target.parameters(), online.parameters(), strict=True):
                t.mul_(0.9).add_(0.1 * o)

    items = [StepsBatch(b, s + 1, torch.zeros(0), 1) for s, b in enumerate(batches)]
    fit_locally(model, DataLoader(items, batch_size=None))

    metrics = model.agent_stats()["metrics"]
    assert metrics["loss"] == pytest.approx(np.mean(critic_losses), rel=1e-5)
    assert metrics["actor_loss"] == pytest.approx(actor_loss.item(), rel=1e-5)
    for mine, theirs in ((model.policy, actor), (model.critic, critic),
                         (model.target_policy, target_actor),
                         (model.target_critic, target_critic)):  # fmt: skip
        for name, value in theirs.state_dict().items():
            assert torch.allclose(mine.state_dict()[name], value, atol=1e-6), name
    assert model.num_updates == 2


def test_the_actor_and_targets_wait_for_every_policy_delay_th_update_of_the_agent():
    model = small_td3(policy_delay=3)
    model.load_agent_memory({"agent_steps": 0, "targets": {}, "num_updates": 4})
    start = copy.deepcopy(model.state_dict())
    targets = copy.deepcopy(model.target_policy.state_dict())
    items = [StepsBatch(continuous_batch(seed=s), s + 1, torch.zeros(0), 1) for s in range(2)]
    fit_locally(model, DataLoader(items[:1], batch_size=None))  # update 5: the critics only
    assert all(torch.equal(model.state_dict()[k], v) for k, v in start.items() if "policy" in k)
    assert all(torch.equal(model.target_policy.state_dict()[k], v) for k, v in targets.items())
    fit_locally(model, DataLoader(items[1:], batch_size=None))  # update 6: the actor too
    assert not torch.equal(model.state_dict()["policy.head.weight"], start["policy.head.weight"])
    assert all(not torch.equal(model.target_policy.state_dict()[k], v) for k, v in targets.items())


def test_the_agent_memory_round_trips_both_targets_and_the_update_count():
    model = small_td3()
    model.load_agent_memory(None)
    model.agent_steps, model.num_updates = 40, 9
    with torch.no_grad():
        model.target_policy.head.bias.add_(1.0)
        model.target_critic.q1[0].bias.add_(1.0)
    memory = model.agent_memory()
    assert set(memory["targets"]) == {"policy", "critic"}
    other = small_td3()
    other.load_agent_memory(memory)
    assert (other.agent_steps, other.num_updates) == (40, 9)
    assert torch.equal(other.target_policy.head.bias, model.target_policy.head.bias)
    assert torch.equal(other.target_critic.q1[0].bias, model.target_critic.q1[0].bias)
    assert {name.split(".")[0] for name in model.state_dict()} == {"policy", "critic"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"policy_delay": 0}, "model.policy_delay must be at least 1, got 0"),
        ({"target_noise_clip": -0.1}, "model.target_noise_clip must not be negative"),
        ({"continuous": False}, "model TD3 needs a continuous action space (a Box)"),
    ],
)
def test_bad_options_are_refused_by_name(options, message):
    with pytest.raises(ConfigError) as error:
        small_td3(**options)
    assert message in str(error.value)


@pytest.fixture(scope="module")
def td3_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("td3")
    result = run_cli("fit", "--config", str(TINY_TD3_CONFIG), cwd=cwd)
    assert result.returncode == 0, result.stderr
    return cwd


def test_a_trained_td3_runs_loads_acts_evaluates_and_exports(td3_run, tmp_path):
    rows = metrics_without_timings(td3_run)
    assert [int(row["env_steps"]) for row in rows] == [200, 400, 600]
    for path in (td3_run / RUN / "memory").iterdir():
        memory = torch.load(path, weights_only=True)["memory"]
        assert memory["num_updates"] == 35 + 50 * (memory["agent_steps"] // 100 - 1)
        assert set(memory["targets"]) == {"policy", "critic"}
    checkpoint = str(td3_run / RUN / "checkpoints" / "last.ckpt")
    module = load_module(checkpoint)
    assert isinstance(module, TD3)
    observations = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    expected = (2.0 * torch.tanh(module.policy.outputs(torch.from_numpy(observations)))).detach()
    assert np.allclose(module.act(observations), expected.numpy(), atol=1e-6)
    assert np.allclose(module.act(observations, deterministic=True), expected.numpy(), atol=1e-6)
    noise = np.random.default_rng(1).normal(size=(6, 1)).astype(np.float32)
    numpy_actions = module.policy.actor().sample(observations, noise)
    assert np.all(np.abs(numpy_actions) <= 2)

    evaluated = run_cli("evaluate", "--ckpt_path", checkpoint, "--episodes", "2", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    exported = run_cli("export", "--ckpt_path", checkpoint, "--out", "policy.pt", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    scripted = torch.jit.load(tmp_path / "policy.pt")
    assert np.allclose(scripted(torch.from_numpy(observations)).numpy(), expected, atol=1e-6)
    with_noise = scripted(torch.from_numpy(observations), torch.from_numpy(noise)).numpy()
    assert np.allclose(with_noise, numpy_actions, atol=1e-5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model.tau", "0"], "model.tau must be in (0, 1], got 0.0"),
        (["--model.buffer_size", "4"], "model.buffer_size (4) must be at least model.batch_size"),
        (["--data.env_id", "CartPole-v1"], "model TD3 needs a continuous action space (a Box)"),
        (["--trainer.server", "Gradient"], "model TD3 steps its critics and actor on separate"),
    ],
)
def test_bad_td3_options_get_one_line_and_write_nothing(tmp_path, args, message):
    assert_refused_in_one_line(tmp_path, TINY_TD3_CONFIG, args, message)
