import math

import gymnasium as gym
import pytest
import torch

import fedrl_lightning  # noqa: F401
from fedrl_lightning import A2C, EpisodeDataset, Reinforce
from fedrl_lightning.rollouts.dataset import StoredEpisode, with_replay
from fedrl_lightning.rollouts.returns import gae, truncated_importance_weights, vtrace

# A 3-step episode: pi's and mu's probabilities of the actions taken, ratios 2, 0.5, 3.
PI = torch.tensor([[0.5, 0.2, 0.9]])
MU = torch.tensor([[0.25, 0.4, 0.3]])


def test_importance_weights_are_the_ratios_truncated_at_rho_max():
    weights = truncated_importance_weights(PI.log(), MU.log(), rho_max=1.5)
    assert torch.allclose(weights, torch.tensor([[1.5, 0.5, 1.5]]))
    untruncated = truncated_importance_weights(PI.log(), MU.log(), rho_max=10.0)
    assert torch.allclose(untruncated, torch.tensor([[2.0, 0.5, 3.0]]))


def test_importance_weights_carry_no_gradient():
    log_pi = PI.log().requires_grad_()
    assert not truncated_importance_weights(log_pi, MU.log(), 1.0).requires_grad


def test_vtrace_on_a_terminated_three_step_episode_by_hand():
    # gamma 0.9, lambda 1, rho_max 1.5: rho = [1.5, 0.5, 1.5], c = [1, 0.5, 1].
    # delta = rho * (r + 0.9 V_next - V) = [1.5 * 1.4, 0.5 * -1, 1.5 * 2] = [2.1, -0.5, 3]
    # v - V: 3; -0.5 + 0.9 * 0.5 * 3 = 0.85; 2.1 + 0.9 * 1 * 0.85 = 2.865
    traced = vtrace(
        rewards=torch.tensor([[1.0, 0.0, 2.0]]),
        values=torch.tensor([[0.5, 1.0, 0.0]]),
        next_values=torch.tensor([7.0]),  # ignored: the episode terminated
        terminated=torch.tensor([True]),
        mask=torch.ones(1, 3, dtype=torch.bool),
        log_rhos=PI.log() - MU.log(),
        gamma=0.9,
        lam=1.0,
        rho_max=1.5,
    )
    assert torch.allclose(traced.returns, torch.tensor([[3.365, 1.85, 3.0]]))
    # r + 0.9 * v_next - V: 1 + 0.9 * 1.85 - 0.5, 0 + 0.9 * 3 - 1, 2 + 0 - 0
    assert torch.allclose(traced.advantages, torch.tensor([[2.165, 1.7, 2.0]]))
    assert torch.allclose(traced.rhos, torch.tensor([[1.5, 0.5, 1.5]]))


def test_vtrace_bootstraps_a_truncated_episode_and_zeroes_padding():
    traced = vtrace(
        rewards=torch.tensor([[1.0, 5.0]]),
        values=torch.tensor([[2.0, 9.0]]),
        next_values=torch.tensor([10.0]),
        terminated=torch.tensor([False]),
        mask=torch.tensor([[True, False]]),
        log_rhos=torch.zeros(1, 2),
        gamma=0.5,
        lam=1.0,
        rho_max=1.0,
    )
    # One real step: v = V + (1 + 0.5 * 10 - 2) = 6; the padding stays 0.
    assert traced.returns.tolist() == [[6.0, 0.0]]
    assert traced.advantages.tolist() == [[4.0, 0.0]]


def test_vtrace_on_policy_is_gae():
    torch.manual_seed(0)
    rewards, values = torch.randn(3, 6), torch.randn(3, 6)
    mask = torch.arange(6) < torch.tensor([[6], [4], [1]])
    next_values = torch.randn(3)
    terminated = torch.tensor([True, False, False])
    _, returns = gae(rewards, values, next_values, terminated, ~terminated, mask, 0.9, 0.8)
    traced = vtrace(
        rewards, values, next_values, terminated, mask, torch.zeros(3, 6), 0.9, 0.8, 1.0
    )
    assert torch.allclose(traced.returns, returns, atol=1e-6)


def test_replay_weights_are_one_on_own_episodes_and_truncated_on_replayed():
    module = Reinforce(hidden_dim=8)
    module.rho_max = 1.5
    batch = _batch_of_own_and_replayed(module)
    log_probs, _ = module.policy.log_prob_and_entropy(batch.observations, batch.actions)
    weights = module.replay_weights(log_probs, batch)
    own, replayed = weights[0], weights[1]
    assert torch.equal(own, torch.ones_like(own))
    ratios = (log_probs[1] - batch.log_probs[1]).exp().clamp(max=1.5)
    length = int(batch.mask[1].sum())
    assert torch.allclose(replayed[:length], ratios[:length].detach())
    assert bool((replayed[length:] == 1).all())  # padding: masked out of the loss anyway


def _batch_of_own_and_replayed(module):
    """One own Simple-v0 episode and one replayed 3-step episode of a likelier policy."""
    dataset = EpisodeDataset(gym.make("fedrl/Simple-v0"), module.policy, 1, 1, 0.9, 1, 2)
    (batch,) = list(dataset)
    shared = StoredEpisode(
        observations=torch.randn(3, 4),
        actions=torch.tensor([0, 1, 1]),
        rewards=torch.tensor([1.0, 0.0, 2.0]),
        log_probs=torch.tensor([math.log(0.25), math.log(0.9), math.log(0.1)]),
        terminated=True,
        truncated=False,
        final_observation=torch.zeros(4),
    )
    return with_replay(batch, [shared], gamma=0.9)


def test_with_replay_pads_marks_and_discounts_the_replayed_episodes():
    module = Reinforce(hidden_dim=8)
    batch = _batch_of_own_and_replayed(module)
    assert batch.replayed.tolist() == [False, True]
    assert batch.mask[1].tolist()[:4] == [True, True, True, False]
    assert torch.allclose(batch.returns[1, :3], torch.tensor([1 + 0.9**2 * 2, 0.9 * 2, 2.0]))
    assert batch.episode_returns[1] == 3.0
    assert batch.own_mask()[1].sum() == 0 and batch.own_mask()[0].equal(batch.mask[0])


@pytest.mark.parametrize(
    ("replayed", "per_batch"), [(3, [1, 1, 1]), (5, [1, 2, 2]), (1, [0, 0, 1])]
)
def test_the_dataset_spreads_replayed_episodes_over_its_batches(replayed, per_batch):
    module = Reinforce(hidden_dim=8)
    episode = StoredEpisode(
        torch.zeros(2, 4), torch.zeros(2, dtype=torch.int64), torch.ones(2), torch.zeros(2),
        True, False, torch.zeros(4),
    )  # fmt: skip
    dataset = EpisodeDataset(
        gym.make("fedrl/Simple-v0"), module.policy, 5, 2, 0.9, 1, 2, replay=[episode] * replayed,
        keep_episodes=True,
    )  # fmt: skip
    batches = list(dataset)
    assert [int(b.replayed.sum()) for b in batches] == per_batch
    assert [int((~b.replayed).sum()) for b in batches] == [2, 2, 1]
    assert len(dataset.kept) == 5  # own episodes only


def test_replayed_episodes_get_v_trace_on_the_intrinsic_return_too():
    """Curiosity with sharing: the intrinsic critic's targets are corrected like the extrinsic."""
    torch.manual_seed(0)
    module = A2C(hidden_dim=8, curiosity={"kind": "rnd", "coef": 1.0})
    module.rho_max = 1.5
    batch = _batch_of_own_and_replayed(module)
    rewards = torch.rand(batch.mask.shape) * batch.mask
    values = module.intrinsic_value(batch.observations) * batch.mask
    advantages, returns = module.intrinsic_advantages_and_returns(batch, rewards, values)
    never_terminal = torch.zeros(2, dtype=torch.bool)
    final = module.intrinsic_value(batch.final_observations).detach()
    gamma, lam = module.curiosity.intrinsic_gamma, module.hparams.gae_lambda
    own_adv, own_ret = gae(rewards, values.detach(), final, never_terminal, batch.truncated,
                           batch.mask, gamma, lam)  # fmt: skip
    log_probs, _ = module.policy.log_prob_and_entropy(batch.observations, batch.actions)
    traced = vtrace(rewards, values.detach(), final, never_terminal, batch.mask,
                    log_probs - batch.log_probs, gamma, lam, 1.5)  # fmt: skip
    assert torch.allclose(advantages[0], own_adv[0]) and torch.allclose(returns[0], own_ret[0])
    assert torch.allclose(returns[1], traced.returns[1])
    assert torch.allclose(advantages[1], (traced.advantages * traced.rhos)[1])
    assert not torch.allclose(returns[1], own_ret[1])  # the correction changed something
