"""Per-FedAvg's local updates: the inner and outer steps by hand, and in every shipped learner."""

import math

import pytest
import torch
from conftest import TRAINER_KWARGS
from torch import nn

from fedrl_lightning import A2C, PPO, AgentPopulation, PerFedAvg, Reinforce
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.local_fit import LocalFit, fit_agent
from fedrl_lightning.federation.strategies.local_terms import STRATEGY_KEY, LocalTerms
from fedrl_lightning.learners.meta_step import MetaStep, MetaUpdates
from fedrl_lightning.learners.reinforce import reinforce_loss
from fedrl_lightning.rollouts.dataset import EpisodeDataset
from fedrl_lightning.run.checkpoints import load_checkpoint
from fedrl_lightning.run.console import quiet_lightning
from fedrl_lightning.seeding import Stream, derive_seed

# A linear policy score w . x, with squared-error losses on two "batches":
#   L1(w) = (w . x1 - y1)^2,  L2(w) = (w . x2 - y2)^2
W, X1, Y1, X2, Y2 = [1.0, -2.0], [1.0, 2.0], 0.5, [1.0, 1.0], 1.0
ALPHA, BETA = 0.1, 0.5


def loss(layer, x, y):
    return (layer(torch.tensor(x)).squeeze() - y) ** 2


def linear():
    layer = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([W]))
    return layer


def meta_pair(first_order, max_grad_norm=None):
    """One inner and one outer step on the linear policy, with SGD as the outer optimizer."""
    layer = linear()
    original = layer.weight
    optimizer = torch.optim.SGD(layer.parameters(), lr=BETA)
    updates = MetaUpdates(MetaStep(ALPHA, first_order))
    updates.update(layer, optimizer, loss(layer, X1, Y1), max_grad_norm)
    adapted = layer.weight.detach().clone()
    assert updates.adapted and layer.weight is not original
    updates.update(layer, optimizer, loss(layer, X2, Y2), max_grad_norm)
    assert not updates.adapted
    assert layer.weight is original  # the optimizer's parameter, stepped in place
    return adapted.squeeze().tolist(), layer.weight.detach().squeeze().tolist()


def test_first_order_per_fedavg_step_by_hand():
    # inner: w.x1 = 1 - 4 = -3, grad L1 = 2 * (-3 - 0.5) * x1 = [-7, -14]
    #        w' = w - 0.1 * [-7, -14] = [1.7, -0.6]
    # outer: w'.x2 = 1.1, grad L2(w') = 2 * (1.1 - 1) * x2 = [0.2, 0.2]
    #        first order: w <- w - 0.5 * [0.2, 0.2] = [0.9, -2.1]
    adapted, updated = meta_pair(first_order=True)
    assert adapted == pytest.approx([1.7, -0.6])
    assert updated == pytest.approx([0.9, -2.1])


def test_second_order_per_fedavg_step_by_hand():
    # H1 = 2 x1 x1^T, so H1 g = 2 * x1 * (x1 . g) = 2 * [1, 2] * 0.6 = [1.2, 2.4]
    # (I - 0.1 H1) g = [0.2 - 0.12, 0.2 - 0.24] = [0.08, -0.04]
    # w <- w - 0.5 * [0.08, -0.04] = [0.96, -1.98]
    adapted, updated = meta_pair(first_order=False)
    assert adapted == pytest.approx([1.7, -0.6])
    assert updated == pytest.approx([0.96, -1.98])


def test_each_step_is_clipped_as_the_learner_clips():
    # |grad L1| = sqrt(49 + 196) = 15.65 > 1: the inner step moves 0.1 along the unit gradient
    adapted, _ = meta_pair(first_order=True, max_grad_norm=1.0)
    norm = math.sqrt(7**2 + 14**2)
    assert adapted == pytest.approx([1 + 0.1 * 7 / norm, -2 + 0.1 * 14 / norm], rel=1e-5)


def test_a_pending_inner_step_is_discarded():
    layer = linear()
    original = layer.weight
    updates = MetaUpdates(MetaStep(ALPHA))
    updates.update(layer, torch.optim.SGD(layer.parameters(), lr=BETA), loss(layer, X1, Y1))
    updates.discard(layer)
    assert layer.weight is original and layer.weight.squeeze().tolist() == W


def test_reinforce_first_order_local_fit_by_hand(tmp_path):
    """A Per-FedAvg fit of two 1-episode batches: the second rolled out with the adapted policy."""
    population = AgentPopulation(num_agents=2, max_episode_steps=20)
    torch.manual_seed(0)
    start = Reinforce.for_population(population, hidden_dim=4, lr=0.05).state_dict()
    task = LocalFit(
        agent_id=1,
        round_idx=2,
        run_seed=3,
        module_class=Reinforce,
        model_hparams={"hidden_dim": 4, "lr": 0.05},
        global_state=start,
        num_episodes=2,
        checkpoint_path=tmp_path / "agent.ckpt",
        trainer_kwargs=TRAINER_KWARGS,
        extras={STRATEGY_KEY: LocalTerms(meta_step=MetaStep(inner_lr=0.2))},
    )
    with quiet_lightning(verbose=False):
        fitted = load_checkpoint(fit_agent(task, population))["state_dict"]

    def seed(stream):
        return derive_seed(3, 2, 1, stream)

    torch.manual_seed(seed(Stream.TORCH))
    module = Reinforce.for_population(population, hidden_dim=4, lr=0.05)
    module.load_state_dict(start)
    env = population.make_rollout_env(1)
    batches = iter(
        EpisodeDataset(env, module.policy, 2, 1, 0.99, seed(Stream.ENV), seed(Stream.ACTIONS))
    )

    def gradient(batch):
        log_probs, _ = module.policy.log_prob_and_entropy(batch.observations, batch.actions)
        weights = module._normalize(batch.returns, batch.mask)
        return torch.autograd.grad(
            reinforce_loss(log_probs, weights, batch.mask), list(module.parameters())
        )

    params = list(module.parameters())
    original = [p.detach().clone() for p in params]
    inner = gradient(next(batches))  # D rolled out with w
    with torch.no_grad():  # inner step: w' = w - alpha * grad L(w; D), SGD
        for p, g in zip(params, inner, strict=True):
            p -= 0.2 * g
    outer = gradient(next(batches))  # D' rolled out with w', its gradient at w'
    with torch.no_grad():
        for p, w in zip(params, original, strict=True):
            p.copy_(w)
    optimizer = torch.optim.Adam(params, lr=0.05, fused=True)  # the outer step, beta = lr
    for p, g in zip(params, outer, strict=True):
        p.grad = g
    optimizer.step()
    env.close()
    for name, value in module.state_dict().items():
        assert torch.allclose(fitted[name], value, atol=1e-6), name


def local_fit(tmp_path, learner, hparams, meta_step, num_episodes=4, name="a.ckpt"):
    population = AgentPopulation(
        env_id="CartPole-v1", num_agents=2, episodes_per_update=2, max_episode_steps=50
    )
    torch.manual_seed(0)
    start = learner.for_population(population, **hparams).state_dict()
    task = LocalFit(
        agent_id=0,
        round_idx=1,
        run_seed=4,
        module_class=learner,
        model_hparams=dict(learner.for_population(population, **hparams).hparams),
        global_state=start,
        num_episodes=num_episodes,
        checkpoint_path=tmp_path / name,
        trainer_kwargs=TRAINER_KWARGS,
        extras={STRATEGY_KEY: LocalTerms(meta_step=meta_step)},
    )
    with quiet_lightning(verbose=False):
        return start, load_checkpoint(fit_agent(task, population))["state_dict"]


@pytest.mark.parametrize(
    ("learner", "hparams"),
    [
        (Reinforce, {"hidden_dim": 8}),
        (A2C, {"hidden_dim": 8}),
        (A2C, {"hidden_dim": 8, "critic": "shared", "normalize_observations": True}),
        (PPO, {"hidden_dim": 8, "update_epochs": 2, "num_minibatches": 3}),
    ],
    ids=["reinforce", "a2c", "a2c_shared_norm", "ppo"],
)
@pytest.mark.parametrize("first_order", [True, False], ids=["first_order", "second_order"])
def test_every_shipped_learner_takes_per_fedavg_steps(tmp_path, learner, hparams, first_order):
    start, plain = local_fit(tmp_path, learner, hparams, None, name="plain.ckpt")
    _, meta = local_fit(tmp_path, learner, hparams, MetaStep(0.05, first_order))
    _, again = local_fit(tmp_path, learner, hparams, MetaStep(0.05, first_order), name="b.ckpt")
    assert meta.keys() == start.keys()
    for key in start:
        assert torch.isfinite(meta[key]).all(), key
        assert torch.equal(again[key], meta[key]), key  # deterministic
    assert any(not torch.equal(meta[k], start[k]) for k in start)
    assert any(not torch.equal(meta[k], plain[k]) for k in start)


def test_a_fit_of_one_update_sends_the_starting_weights(tmp_path):
    """Its only update is an inner step, which the fit drops: no outer step, no change."""
    start, meta = local_fit(tmp_path, Reinforce, {"hidden_dim": 8}, MetaStep(0.5), num_episodes=2)
    for key, value in start.items():
        assert torch.equal(meta[key], value), key


def test_per_fedavg_averages_like_fedavg_and_asks_for_a_meta_step():
    strategy = PerFedAvg(inner_lr=0.03, first_order=False)
    assert strategy.meta_step == MetaStep(0.03, first_order=False)
    assert strategy.proximal_mu == 0.0
    assert PerFedAvg().meta_step == MetaStep(0.01, first_order=True)
    for inner_lr in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="trainer.strategy.inner_lr"):
            PerFedAvg(inner_lr=inner_lr)
