import numpy as np
import pytest
import torch

from fedrl_lightning import A2C, PPO, Reinforce
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.policy.networks import CategoricalMLPPolicy, GaussianMLPPolicy


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


def gaussian_policy():
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(3, 2, 16, action_low=[-1.0, -2.0], action_high=[1.0, 2.0])
    with torch.no_grad():
        policy.log_std.copy_(torch.tensor([-0.5, 0.3]))
    return policy


def test_gaussian_log_probs_and_entropy_match_torch_distributions():
    policy = gaussian_policy()
    observations = torch.randn(5, 7, 3)
    actions = torch.randn(5, 7, 2) * 2
    log_probs, entropy = policy.log_prob_and_entropy(observations, actions)
    distribution = policy(observations)
    assert isinstance(distribution, torch.distributions.Independent)
    assert torch.allclose(log_probs, distribution.log_prob(actions), atol=1e-5)
    assert torch.allclose(entropy, distribution.entropy(), atol=1e-6)


def test_gaussian_actor_samples_around_the_torch_mean_and_clips_for_the_env():
    policy = gaussian_policy()
    actor = policy.actor()
    observation = np.ones(3, np.float32)
    mean = policy.outputs(torch.ones(3)).detach().numpy()
    assert np.allclose(actor.outputs(observation), mean, atol=1e-6)
    rng = np.random.default_rng(0)
    n = 40_000
    samples = actor.sample(np.tile(observation, (n, 1)), actor.noise(rng, n))
    assert np.allclose(samples.mean(0), mean, atol=0.02)
    assert np.allclose(samples.std(0), np.exp([-0.5, 0.3]), atol=0.02)
    clipped = actor.env_action(np.array([[5.0, -5.0]], np.float32))
    assert clipped.tolist() == [[1.0, -2.0]]


@pytest.mark.parametrize("normalize", [False, True])
def test_deeper_policies_act_alike_in_torch_and_numpy(normalize):
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(3, 2, 16, [-1.0, -1.0], [1.0, 1.0], 0.0, 3, normalize)
    assert len(policy.deeper) == 2 and "deeper.1.weight" in policy.state_dict()
    observations = np.random.default_rng(0).normal(1.0, 4.0, size=(50, 3)).astype(np.float32)
    if normalize:
        policy.normalizer.observe(torch.from_numpy(observations[:20]))
    with torch.no_grad():
        means = policy.outputs(torch.from_numpy(observations)).numpy()
    np.testing.assert_allclose(policy.actor().outputs(observations), means, atol=1e-5)


@pytest.mark.parametrize("learner", [Reinforce, A2C, PPO])
def test_a_policy_needs_a_hidden_layer(learner):
    with pytest.raises(ConfigError, match="model.num_layers must be at least 1, got 0"):
        learner(num_layers=0)
