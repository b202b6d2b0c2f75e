"""Gradient sharing: the agent's gradient by hand, the server's step by hand, and end to end."""

import io

import numpy as np
import pytest
import torch
from conftest import TINY_GRADIENT_CONFIG, TRAINER_KWARGS, run_cli

from fedrl_lightning import AgentPopulation, FederatedTrainer, Reinforce, load_module
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.local_fit import LocalFit, fit_agent
from fedrl_lightning.federation.server.choice import Gradient
from fedrl_lightning.federation.server.gradient import GradientModel, SendGradient
from fedrl_lightning.federation.strategies import AgentUpdate, FedAvg
from fedrl_lightning.federation.strategies.robust import FedMedian
from fedrl_lightning.federation.strategies.server_optimizers import server_optimizer_spec
from fedrl_lightning.federation.updates import InvalidUpdate, read_update
from fedrl_lightning.learners import A2C, PPO
from fedrl_lightning.rollouts.dataset import EpisodeDataset
from fedrl_lightning.rollouts.returns import normalize_per_episode
from fedrl_lightning.run.console import quiet_lightning
from fedrl_lightning.seeding import Stream, derive_seed

RUN_SEED, ROUND, AGENT = 5, 4, 1


class SGDReinforce(Reinforce):
    """REINFORCE whose local optimizer is plain SGD at ``lr``."""

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def population(**options):
    return AgentPopulation(num_agents=2, max_episode_steps=12, **options)


def initial_state(hidden_dim=3):
    torch.manual_seed(0)
    return Reinforce.for_population(population(), hidden_dim=hidden_dim).state_dict()


def fit(tmp_path, state, name="agent", send_gradient=True, num_episodes=2, **population_options):
    task = LocalFit(
        agent_id=AGENT,
        round_idx=ROUND,
        run_seed=RUN_SEED,
        module_class=Reinforce,
        model_hparams={"hidden_dim": 3, "lr": 0.05},
        global_state=state,
        num_episodes=num_episodes,
        checkpoint_path=tmp_path / f"{name}.ckpt",
        trainer_kwargs=TRAINER_KWARGS,
        extras={"shared": SendGradient()} if send_gradient else {},
    )
    with quiet_lightning(verbose=False):
        path = fit_agent(task, population(**population_options))
    return path, torch.load(path, weights_only=True)


def hand_gradient(state, episodes):
    """REINFORCE's gradient of a one-hidden-layer softmax policy, backpropagated by hand."""
    w1, b1 = (state[f"policy.hidden.{n}"].double().numpy() for n in ("weight", "bias"))
    w2, b2 = (state[f"policy.head.{n}"].double().numpy() for n in ("weight", "bias"))
    grads = {"w1": 0 * w1, "b1": 0 * b1, "w2": 0 * w2, "b2": 0 * b2}
    for batch in episodes:
        weights = normalize_per_episode(batch.returns, batch.mask).double().numpy()
        for e in range(batch.mask.shape[0]):
            for t in np.flatnonzero(batch.mask[e].numpy()):
                x = batch.observations[e, t].double().numpy()
                pre = w1 @ x + b1
                h = np.maximum(pre, 0)
                logits = w2 @ h + b2
                pi = np.exp(logits - logits.max())
                pi /= pi.sum()
                score = -pi
                score[int(batch.actions[e, t])] += 1  # d log pi(a) / d logits
                d_logits = -weights[e, t] * score / len(episodes) / batch.mask.shape[0]
                d_pre = (w2.T @ d_logits) * (pre > 0)
                grads["w2"] += np.outer(d_logits, h)
                grads["b2"] += d_logits
                grads["w1"] += np.outer(d_pre, x)
                grads["b1"] += d_pre
    return {
        "policy.hidden.weight": grads["w1"],
        "policy.hidden.bias": grads["b1"],
        "policy.head.weight": grads["w2"],
        "policy.head.bias": grads["b2"],
    }


def test_the_agent_sends_the_textbook_reinforce_gradient_at_the_global_weights(tmp_path):
    """Two one-episode batches: the mean of their score-function gradients, all at w."""
    state = initial_state()
    _, checkpoint = fit(tmp_path, state)
    assert checkpoint["sends"] == "gradient"
    sent = checkpoint["state_dict"]
    assert sent.keys() == state.keys()

    agents = population()
    module = Reinforce.for_population(agents, hidden_dim=3)
    module.load_state_dict(state)

    def seed(stream):
        return derive_seed(RUN_SEED, ROUND, AGENT, stream)

    env = agents.make_rollout_env(AGENT)
    dataset = EpisodeDataset(
        env=env,
        policy=module.policy,
        num_episodes=2,
        episodes_per_update=1,
        gamma=0.99,
        env_seed=seed(Stream.ENV),
        action_seed=seed(Stream.ACTIONS),
    )
    episodes = list(dataset)
    env.close()
    assert len(episodes) == 2  # every batch rolled out with the same, global, weights
    expected = hand_gradient(state, episodes)
    for name, value in expected.items():
        assert np.abs(value).max() > 1e-3, name  # a gradient that could be wrong
        np.testing.assert_allclose(sent[name].double().numpy(), value, atol=1e-6, err_msg=name)


def test_one_agent_one_batch_and_sgd_equals_one_local_sgd_step(tmp_path):
    agents = AgentPopulation(num_agents=1, max_episode_steps=12)
    torch.manual_seed(0)
    model = Reinforce.for_population(agents, hidden_dim=8, lr=0.05)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = FederatedTrainer(
        num_rounds=1,
        agents_per_round=1,
        episodes_per_round=1,
        strategy=FedAvg(),
        server=Gradient(optimizer="sgd", lr=0.05),
        eval_episodes=1,
        default_root_dir=str(tmp_path / "gradient"),
        enable_progress_bar=False,
        seed=RUN_SEED,
    )
    with quiet_lightning(verbose=False):
        trainer.fit(model, agents)

    local = LocalFit(
        agent_id=0,
        round_idx=1,
        run_seed=RUN_SEED,
        module_class=SGDReinforce,
        model_hparams=dict(model.hparams),
        global_state=start,
        num_episodes=1,
        checkpoint_path=tmp_path / "local.ckpt",
        trainer_kwargs=TRAINER_KWARGS,
    )
    with quiet_lightning(verbose=False):
        stepped = torch.load(fit_agent(local, agents), weights_only=True)["state_dict"]
    for name, value in stepped.items():
        assert not torch.equal(value, start[name]), name
        assert torch.equal(model.state_dict()[name], value), name


def update(agent, gradient, episodes=1):
    return AgentUpdate(agent, gradient, num_episodes=episodes, num_steps=10, mean_return=1.0)


def server(spec, strategy=None):
    torch.manual_seed(0)
    model = Reinforce.for_population(population(), hidden_dim=2)
    spec = server_optimizer_spec(spec)
    return GradientModel.for_gradients(model, population(), strategy or FedAvg(), 0, spec)


def random_gradients(shared, count, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return [
        {k: torch.randn(v.shape, generator=generator) for k, v in shared.global_state.items()}
        for _ in range(count)
    ]


def test_fedavg_of_gradients_then_sgd_by_hand():
    shared = server({"name": "sgd", "lr": 0.5})
    before = {k: v.double() for k, v in shared.global_state.items()}
    grads = random_gradients(shared, 3)
    updates = [update(0, grads[0]), update(1, grads[1]), update(2, grads[2], episodes=2)]
    shared.aggregate(updates, 1)
    for name, value in before.items():
        mean = (grads[0][name].double() + grads[1][name].double() + 2 * grads[2][name].double()) / 4
        torch.testing.assert_close(shared.global_state[name].double(), value - 0.5 * mean)
    assert shared.round_columns()["gradient_norm"] > 0


def test_median_of_gradients_with_a_sign_flipper_then_adam_by_hand_and_after_a_reload():
    spec = {"name": "adam", "lr": 0.1, "betas": [0.8, 0.9], "eps": 1e-3}
    shared = server(spec, FedMedian())
    w = {k: v.double() for k, v in shared.global_state.items()}
    m = {k: torch.zeros_like(v) for k, v in w.items()}
    v2 = {k: torch.zeros_like(v) for k, v in w.items()}
    rounds = [random_gradients(shared, 2, seed) for seed in (1, 2, 3)]
    for t, (g0, g1) in enumerate(rounds, start=1):
        flipped = {k: -2.5 * value for k, value in g1.items()}  # what sign_flip sends
        updates = [update(0, g0), update(1, g1), update(2, flipped)]
        if t == 2:  # resume: a fresh server, its state loaded as a round checkpoint would be
            saved = torch.load(_saved(shared.state_dict()), weights_only=True)
            state = dict(shared.global_state)
            shared = server(spec, FedMedian())
            shared.load_state_dict(saved)
            shared.global_state = state
        shared.aggregate(updates, 1)
        for k in w:
            stacked = np.stack([u.state_dict[k].double().numpy() for u in updates])
            g = torch.from_numpy(np.median(stacked, axis=0))
            m[k] = 0.8 * m[k] + 0.2 * g
            v2[k] = 0.9 * v2[k] + 0.1 * g.square()
            step = (m[k] / (1 - 0.8**t)) / ((v2[k] / (1 - 0.9**t)).sqrt() + 1e-3)
            w[k] = w[k] - 0.1 * step
            torch.testing.assert_close(shared.global_state[k].double(), w[k], atol=1e-6, rtol=0)


def _saved(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize("attack", ["sign_flip", "random_noise", "zero"])
def test_update_attacks_corrupt_the_gradient_sent(tmp_path, attack):
    state = initial_state()
    _, honest = fit(tmp_path, state, "honest")
    byzantine = {"agents": [AGENT], "attack": attack}
    _, sent = fit(tmp_path, state, "byzantine", byzantine=byzantine)
    for name, gradient in honest["state_dict"].items():
        if attack == "sign_flip":
            assert torch.equal(sent["state_dict"][name], -2.5 * gradient), name
        elif attack == "zero":
            assert not sent["state_dict"][name].any(), name
    if attack == "random_noise":  # noise in place of the gradient, whatever the gradient is
        other_start = {k: v + 1 for k, v in state.items()}
        _, other = fit(tmp_path, other_start, "other", byzantine=byzantine, num_episodes=1)
        noise = torch.cat([t.reshape(-1) for t in sent["state_dict"].values()]).double()
        assert 0.5 < float(noise.std()) < 1.5
        for name, value in other["state_dict"].items():
            assert torch.equal(sent["state_dict"][name], value), name
    assert honest["agent_stats"] == sent["agent_stats"]  # it reports its real episodes


def test_the_server_refuses_weights_for_a_gradient_and_the_reverse(tmp_path):
    state = initial_state()
    gradient_path, _ = fit(tmp_path, state)
    weights_path, _ = fit(tmp_path, state, "weights", send_gradient=False)
    gradient = {"shared": SendGradient()}
    assert read_update(gradient_path, AGENT, state, extras=gradient).num_episodes == 2
    with pytest.raises(InvalidUpdate, match="asked for a gradient"):
        read_update(weights_path, AGENT, state, extras=gradient)
    with pytest.raises(InvalidUpdate, match="asked for weights"):
        read_update(gradient_path, AGENT, state)


def test_a_gradient_run_through_the_command_line(tmp_path):
    result = run_cli(
        "fit", "--config", str(TINY_GRADIENT_CONFIG), "--trainer.keep_agent_checkpoints", "true",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = tmp_path / "lightning_logs/version_0"
    last = torch.load(run / "checkpoints/last.ckpt", weights_only=True)
    adam = last["fedrl"]["shared"]["server_optimizer"]["state"]
    assert adam and all(int(s["step"]) == 3 for s in adam.values())  # one step a round
    assert float(last["state_dict"]["policy.normalizer.count"]) > 0  # statistics still pooled
    for path in (run / "agents").iterdir():  # what every agent sent: a gradient, not weights
        sent = torch.load(path, weights_only=True)
        assert sent["sends"] == "gradient"
        if "agent-0000" not in path.name:  # agent 0 sends noise in every entry
            assert not sent["state_dict"]["policy.normalizer.count"]  # not a parameter: 0


def test_load_module_refuses_an_agents_gradient(tmp_path):
    path, _ = fit(tmp_path, initial_state())
    with pytest.raises(ConfigError, match="an agent's gradient"):
        load_module(path)


@pytest.mark.parametrize(
    "learner, hparams",
    [(A2C, {}), (PPO, {"update_epochs": 1, "num_minibatches": 2, "normalize_rewards": True})],
    ids=["a2c", "ppo"],
)
def test_actor_critics_send_their_clipped_gradient_critic_included(tmp_path, learner, hparams):
    torch.manual_seed(0)
    module = learner.for_population(population(), hidden_dim=8, **hparams)
    task = LocalFit(
        agent_id=AGENT,
        round_idx=ROUND,
        run_seed=RUN_SEED,
        module_class=learner,
        model_hparams=dict(module.hparams),
        global_state=module.state_dict(),
        num_episodes=2,
        checkpoint_path=tmp_path / "agent.ckpt",
        trainer_kwargs=TRAINER_KWARGS,
        extras={"shared": SendGradient()},
    )
    with quiet_lightning(verbose=False):
        sent = torch.load(fit_agent(task, population()), weights_only=True)["state_dict"]
    parameters = [name for name, _ in module.named_parameters()]
    norm = torch.cat([sent[name].reshape(-1) for name in parameters]).norm()
    assert 0 < float(norm) <= 0.5 + 1e-6  # each update's gradient clipped to max_grad_norm
    assert any(sent[name].any() for name in parameters if name.startswith("critic."))
