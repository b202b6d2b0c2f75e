import copy
import math

import pytest
import torch
from conftest import fit_locally
from torch.utils.data import DataLoader

from fedrl_lightning import EpisodeBatch, Reinforce
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.learners.reinforce import reinforce_loss
from fedrl_lightning.rollouts.returns import discounted_returns


def three_step_batch(gamma):
    rewards = [1.0, 0.0, 1.0]
    observations = torch.tensor(
        [[[0.5, -1.0, 0.3, 0.0], [1.0, 0.2, -0.4, 2.0], [0.0, 0.1, 0.9, -1.5]]]
    )
    return EpisodeBatch(
        observations=observations,
        actions=torch.tensor([[0, 1, 1]]),
        returns=torch.tensor([discounted_returns(rewards, gamma)]),
        mask=torch.ones(1, 3, dtype=torch.bool),
        episode_returns=torch.tensor([sum(rewards)]),
        rewards=torch.tensor([rewards]),
        terminated=torch.tensor([True]),
        truncated=torch.tensor([False]),
        final_observations=torch.tensor([[0.2, 0.0, 1.1, -1.0]]),
        log_probs=torch.zeros(1, 3),
    )


def test_reinforce_loss_by_hand():
    log_probs = torch.tensor([[-0.1, -0.2, -0.3]])
    weights = torch.tensor([[1.0, -1.0, 0.5]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    assert reinforce_loss(log_probs, weights, mask).item() == pytest.approx(0.1 - 0.2 + 0.15)


def test_training_step_loss_on_a_three_step_episode_by_hand():
    module = Reinforce(hidden_dim=8, lr=0.0, gamma=0.5)
    with torch.no_grad():  # a policy that ignores the state: pi = [0.25, 0.75]
        module.policy.hidden.weight.zero_()
        module.policy.head.weight.zero_()
        module.policy.head.bias.copy_(torch.log(torch.tensor([0.25, 0.75])))
    fit_locally(module, DataLoader([three_step_batch(gamma=0.5)], batch_size=None))
    # returns [1.25, 0.5, 1.0] normalise to [0.872872, -1.091089, 0.218218]
    g = [0.8728716, -1.0910895, 0.2182179]
    expected = -(math.log(0.25) * g[0] + math.log(0.75) * g[1] + math.log(0.75) * g[2])
    assert module.loss.compute().item() == pytest.approx(expected, abs=1e-5)
    assert expected == pytest.approx(0.958955, abs=1e-5)


def test_one_update_equals_the_textbook_update():
    torch.manual_seed(0)
    module = Reinforce(hidden_dim=16, lr=0.01, gamma=0.9)
    reference = copy.deepcopy(module.policy)
    initial = copy.deepcopy(module.policy)
    batch = three_step_batch(gamma=0.9)

    # The tutorial's update, step by step: sum of -log pi(a|s) * normalised return.
    returns = batch.returns[0]
    weights = (returns - returns.mean()) / (returns.std() + 1e-8)
    optimizer = torch.optim.Adam(reference.parameters(), lr=0.01)
    loss = 0.0
    for t in range(3):
        probs = torch.softmax(reference.logits(batch.observations[0, t]), dim=-1)
        log_prob = torch.distributions.Categorical(probs).log_prob(batch.actions[0, t])
        loss = loss - log_prob * weights[t]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

    fit_locally(module, DataLoader([batch], batch_size=None))
    assert module.loss.compute().item() == pytest.approx(loss.item(), abs=1e-6)
    for ours, theirs in zip(module.policy.parameters(), reference.parameters(), strict=True):
        assert torch.allclose(ours, theirs, atol=1e-6)
    assert not torch.equal(module.policy.head.weight, initial.head.weight)


def test_forward_is_the_deployable_policy():
    module = Reinforce()
    distribution = module(torch.zeros(3, 4))
    assert isinstance(distribution, torch.distributions.Categorical)
    assert distribution.sample().shape == (3,)


def test_hyperparameters_are_saved():
    module = Reinforce(observation_dim=6, num_actions=3, hidden_dim=32, lr=0.02, gamma=0.9)
    assert dict(module.hparams) == {
        "observation_dim": 6,
        "num_actions": 3,
        "continuous": False,
        "action_low": None,
        "action_high": None,
        "hidden_dim": 32,
        "lr": 0.02,
        "gamma": 0.9,
        "normalize_returns": "episode",
        "log_std_init": 0.0,
        "num_layers": 1,
        "normalize_observations": False,
        "curiosity": None,
    }
    assert module.automatic_optimization is False


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"gamma": 0.0}, "model.gamma"),
        ({"gamma": 1.5}, "model.gamma"),
        ({"lr": -1e-3}, "model.lr"),
        ({"hidden_dim": 0}, "model.hidden_dim"),
    ],
)
def test_bad_hyperparameters_name_the_option(kwargs, option):
    with pytest.raises(ConfigError, match=option):
        Reinforce(**kwargs)


def test_gamma_of_one_is_allowed():
    assert Reinforce(gamma=1.0).hparams.gamma == 1.0


def test_fedprox_term_adds_mu_over_two_times_the_squared_distance():
    batch = three_step_batch(gamma=0.5)
    plain = Reinforce(hidden_dim=8, lr=0.0, gamma=0.5)
    proximal = copy.deepcopy(plain)
    anchor = {name: p.detach() + 1.0 for name, p in proximal.named_parameters()}
    proximal.set_proximal_term(anchor, mu=0.2)
    fit_locally(plain, DataLoader([batch], batch_size=None))
    fit_locally(proximal, DataLoader([batch], batch_size=None))
    num_parameters = sum(p.numel() for p in plain.parameters())  # each 1 away from its anchor
    expected = plain.loss.compute().item() + 0.2 / 2 * num_parameters
    assert proximal.loss.compute().item() == pytest.approx(expected, rel=1e-6)


def test_fedprox_term_pulls_towards_the_anchor():
    torch.manual_seed(0)
    free = Reinforce(hidden_dim=8, lr=0.05, gamma=0.5)
    held = copy.deepcopy(free)
    anchor = {name: p.detach().clone() for name, p in held.named_parameters()}
    held.set_proximal_term(anchor, mu=50.0)
    batches = [three_step_batch(gamma=0.5)] * 20
    fit_locally(free, DataLoader(batches, batch_size=None))
    fit_locally(held, DataLoader(batches, batch_size=None))

    def distance(module):
        return sum((p - anchor[n]).square().sum() for n, p in module.named_parameters())

    assert distance(held) < 0.5 * distance(free)


def test_setting_attributes_on_a_learner_registers_as_nn_module_does():
    """Learner's quick path for plain values leaves nn.Module's registration as it was."""
    model = Reinforce(observation_dim=4, num_actions=2, hidden_dim=8)
    keys = set(model.state_dict())
    model._current_fx_name = "training_step"  # Lightning, around every hook
    model.num_steps = 7
    assert model.__dict__["_current_fx_name"] == "training_step" and model.num_steps == 7
    assert set(model.state_dict()) == keys

    model.extra = 1.5
    model.extra = torch.nn.Linear(2, 1)  # a plain attribute becomes a submodule
    assert "extra" not in model.__dict__ and "extra.weight" in model.state_dict()
    model.extra = None
    assert model._modules["extra"] is None and "extra.weight" not in model.state_dict()
    model.scale = None
    model.scale = torch.nn.Parameter(torch.ones(1))
    assert "scale" not in model.__dict__ and "scale" in dict(model.named_parameters())
    model.register_buffer("counts", torch.zeros(2))
    with pytest.raises(TypeError):
        model.counts = 3  # a buffer takes tensors only, as nn.Module says
