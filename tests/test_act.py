import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import fit_one_agent
from doc_blocks import marked_block

from fedrl_lightning import AgentPopulation, Reinforce

DOCS_MARKER = "<!-- tests/test_act.py runs the next block"


@pytest.fixture(scope="module")
def cartpole():
    return AgentPopulation("CartPole-v1", num_agents=1)


@pytest.fixture(scope="module")
def pendulum():
    return AgentPopulation("Pendulum-v1", num_agents=1)


def observations(env_id, count, seed=0):
    env = gym.make(env_id)
    batch = [env.reset(seed=seed + i)[0] for i in range(count)]
    env.close()
    return np.stack(batch)


def test_discrete_actions_are_ints_the_env_accepts(cartpole):
    torch.manual_seed(0)
    module = Reinforce.for_population(cartpole, hidden_dim=8)
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=0)
    for _ in range(20):
        for deterministic in (False, True):
            action = module.act(obs, deterministic=deterministic)
            assert type(action) is int
            assert env.action_space.contains(action)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()


def test_continuous_actions_are_clipped_float32_arrays(pendulum):
    module = Reinforce.for_population(pendulum, hidden_dim=8)
    space = gym.make("Pendulum-v1").action_space
    obs = observations("Pendulum-v1", 1)[0]
    for bias, bound in ((1e30, 2.0), (-1e30, -2.0)):
        with torch.no_grad():
            module.policy.head.bias.fill_(bias)
        for deterministic in (False, True):
            action = module.act(obs, deterministic=deterministic)
            assert isinstance(action, np.ndarray)
            assert action.dtype == np.float32 and action.shape == (1,)
            assert action[0] == bound
            assert space.contains(action)


def test_a_batch_of_observations_gets_a_batch_of_actions(cartpole, pendulum):
    discrete = Reinforce.for_population(cartpole, hidden_dim=8)
    actions = discrete.act(observations("CartPole-v1", 5))
    assert actions.dtype == np.int64 and actions.shape == (5,)
    continuous = Reinforce.for_population(pendulum, hidden_dim=8)
    actions = continuous.act(observations("Pendulum-v1", 5))
    assert actions.dtype == np.float32 and actions.shape == (5, 1)
    assert ((-2 <= actions) & (actions <= 2)).all()

    envs = gym.make_vec("CartPole-v1", num_envs=3)
    obs, _ = envs.reset(seed=0)
    for _ in range(5):
        action = discrete.act(obs)
        assert envs.action_space.contains(action)
        obs, *_ = envs.step(action)
    envs.close()


def test_observations_of_the_wrong_shape_are_refused(cartpole):
    module = Reinforce.for_population(cartpole, hidden_dim=8)
    for bad in (np.zeros(3), np.zeros((2, 5)), np.zeros((1, 2, 4)), np.float32(0.0)):
        with pytest.raises(ValueError, match=r"observations must have shape \[4\]"):
            module.act(bad)


def test_deterministic_is_the_argmax_or_the_clipped_mean(cartpole, pendulum):
    torch.manual_seed(1)
    discrete = Reinforce.for_population(cartpole, hidden_dim=8)
    obs = observations("CartPole-v1", 50)
    logits = discrete.policy.logits(torch.from_numpy(obs)).detach().numpy()
    assert np.array_equal(discrete.act(obs, deterministic=True), logits.argmax(axis=1))
    assert [discrete.act(o, deterministic=True) for o in obs[:5]] == list(logits[:5].argmax(1))

    continuous = Reinforce.for_population(pendulum, hidden_dim=8)
    with torch.no_grad():
        continuous.policy.head.weight.mul_(50)  # means beyond the bounds for some observations
    obs = observations("Pendulum-v1", 50)
    means = continuous.policy.outputs(torch.from_numpy(obs)).detach().numpy()
    assert (np.abs(means) > 2).any() and (np.abs(means) < 2).any()
    assert np.array_equal(continuous.act(obs, deterministic=True), np.clip(means, -2, 2))


def test_sampled_actions_follow_the_policy(cartpole, pendulum):
    torch.manual_seed(2)
    discrete = Reinforce.for_population(cartpole, hidden_dim=8)
    with torch.no_grad():
        discrete.policy.head.weight.zero_()
        discrete.policy.head.bias.copy_(torch.log(torch.tensor([0.3, 0.7])))
    obs = np.repeat(observations("CartPole-v1", 1), 4000, axis=0)
    assert discrete.act(obs).mean() == pytest.approx(0.7, abs=0.03)

    continuous = Reinforce.for_population(pendulum, hidden_dim=8, log_std_init=np.log(0.1))
    obs = np.repeat(observations("Pendulum-v1", 1), 4000, axis=0)
    mean = float(continuous.act(obs[:1], deterministic=True)[0, 0])
    samples = continuous.act(obs)[:, 0]
    assert samples.mean() == pytest.approx(mean, abs=0.01)
    assert samples.std() == pytest.approx(0.1, rel=0.05)

    torch.manual_seed(3)
    first = continuous.act(obs[:10])
    torch.manual_seed(3)
    assert np.array_equal(continuous.act(obs[:10]), first)


def test_act_runs_in_eval_mode_without_gradients_and_restores_the_modes(pendulum):
    module = Reinforce.for_population(pendulum, hidden_dim=8)
    seen = []
    module.policy.head.register_forward_hook(
        lambda layer, inputs, output: seen.append((layer.training, torch.is_grad_enabled()))
    )
    obs = observations("Pendulum-v1", 1)[0]

    module.train()
    module.act(obs)
    assert all(m.training for m in module.modules())
    module.eval()
    module.act(obs, deterministic=True)
    assert not any(m.training for m in module.modules())
    module.train()
    module.policy.hidden.eval()  # a mixed state comes back as it was
    module.act(obs)
    assert module.training and module.policy.head.training and not module.policy.hidden.training

    assert seen == [(False, False)] * 3
    assert all(p.grad is None for p in module.parameters())
    assert torch.is_grad_enabled()


def test_round_checkpoints_load_in_eval_mode(tiny_run):
    cwd, _ = tiny_run
    for name in ("last.ckpt", "best.ckpt", "round-0001.ckpt"):
        module = Reinforce.load_from_checkpoint(cwd / "lightning_logs/version_0/checkpoints" / name)
        assert not any(m.training for m in module.modules())


def test_agent_checkpoints_load_in_eval_mode_also_as_a_subclass(tmp_path):
    class Subclass(Reinforce):
        pass

    torch.manual_seed(0)
    path = fit_one_agent(tmp_path, Reinforce(hidden_dim=8).state_dict())
    for cls in (Reinforce, Subclass):
        module = cls.load_from_checkpoint(path)
        assert type(module) is cls
        assert not any(m.training for m in module.modules())
    with pytest.raises(TypeError, match="cannot be called on an instance"):
        module.load_from_checkpoint(path)


def test_the_docs_snippet_runs_as_written(tiny_run, monkeypatch, capsys):
    block = marked_block(DOCS_MARKER, "python")
    assert "load_module(" in block.text and "module.act(obs)" in block.text
    cwd, _ = tiny_run
    monkeypatch.chdir(cwd)
    exec(compile(block.text, block.where, "exec"), {"__name__": "__main__"})
    (line,) = capsys.readouterr().out.splitlines()
    episode_return = float(line.removeprefix("return "))
    assert 0 <= episode_return <= 100  # fedrl/Simple-v0 pays at most 1 a step for 100 steps
