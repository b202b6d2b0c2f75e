import numpy as np
import torch

from fedrl_lightning.policy import CategoricalMLPPolicy


def test_numpy_actor_computes_the_torch_logits():
    torch.manual_seed(0)
    policy = CategoricalMLPPolicy(observation_dim=4, num_actions=3, hidden_dim=16)
    observations = np.random.default_rng(0).standard_normal((32, 4)).astype(np.float32)
    expected = policy.logits(torch.from_numpy(observations)).detach().numpy()
    assert np.allclose(policy.actor().logits(observations), expected, atol=1e-6)


def test_numpy_actor_follows_in_place_weight_updates():
    policy = CategoricalMLPPolicy(4, 2, 8)
    actor = policy.actor()
    with torch.no_grad():
        policy.head.bias.add_(torch.tensor([5.0, -5.0]))
    observation = np.zeros(4, np.float32)
    expected = policy.logits(torch.zeros(4)).detach().numpy()
    assert np.allclose(actor.logits(observation), expected, atol=1e-6)


def test_gumbel_max_sampling_matches_softmax_probabilities():
    policy = CategoricalMLPPolicy(4, 3, 8)
    with torch.no_grad():
        policy.head.weight.zero_()
        policy.head.bias.copy_(torch.log(torch.tensor([0.2, 0.3, 0.5])))
    rng = np.random.default_rng(1)
    n = 60_000
    observations = np.zeros((n, 4), np.float32)
    actions = policy.actor().sample(observations, rng.gumbel(size=(n, 3)).astype(np.float32))
    frequencies = np.bincount(actions, minlength=3) / n
    # Standard error of each frequency is below 0.0021; allow 3 of them.
    assert np.allclose(frequencies, [0.2, 0.3, 0.5], atol=0.0065)


def test_forward_returns_a_distribution():
    policy = CategoricalMLPPolicy(4, 2, 8)
    distribution = policy(torch.zeros(5, 4))
    assert isinstance(distribution, torch.distributions.Categorical)
    assert torch.allclose(distribution.probs.sum(-1), torch.ones(5))
