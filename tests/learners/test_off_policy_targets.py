"""The off-policy targets and losses against hand computations."""

import math

import pytest
import torch
from torch import nn

from fedrl_lightning.learners.off_policy import (
    default_target_entropy,
    dqn_target,
    dueling_q,
    polyak_update,
    sac_entropy_loss,
    sac_target,
    td3_target,
    td_loss,
)


def linear(weight, bias):
    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([weight]))
        layer.bias.copy_(torch.tensor([bias]))
    return layer


def test_polyak_with_tau_half_averages_and_tau_one_copies():
    target, online = linear([0.0, 2.0], 4.0), linear([2.0, 4.0], 0.0)
    polyak_update(target, online, tau=0.5)
    assert target.weight.tolist() == [[1.0, 3.0]]
    assert target.bias.tolist() == [2.0]
    polyak_update(target, online, tau=0.25)  # 0.25 * online + 0.75 * target
    assert target.weight.tolist() == [[1.25, 3.25]]
    assert target.bias.tolist() == [1.5]
    polyak_update(target, online, tau=1.0)
    assert target.weight.tolist() == [[2.0, 4.0]] and target.bias.tolist() == [0.0]
    assert online.weight.tolist() == [[2.0, 4.0]]  # the online network is untouched
    assert target.weight.requires_grad and target.weight.grad is None


def test_polyak_copies_buffers_outright_and_refuses_bad_inputs():
    target, online = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    online(torch.tensor([[1.0, 3.0], [3.0, 5.0]]))  # running_mean 0.1 * [2, 4]
    with torch.no_grad():
        online.weight.fill_(3.0)
    polyak_update(target, online, tau=0.5)
    assert target.weight.tolist() == [2.0, 2.0]  # parameters averaged: (1 + 3) / 2
    assert torch.equal(target.running_mean, online.running_mean)  # buffers copied
    assert torch.allclose(target.running_mean, torch.tensor([0.2, 0.4]))
    assert target.num_batches_tracked.item() == 1
    for tau in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="tau must be in"):
            polyak_update(target, online, tau)
    with pytest.raises(ValueError, match="parameters differ"):
        polyak_update(nn.Linear(2, 1), nn.Linear(2, 2), 0.5)


# Two next states: the online network prefers action 0 then 1, the target network 1 then 0.
NEXT_Q_TARGET = torch.tensor([[1.0, 5.0], [3.0, 2.0]])
NEXT_Q_ONLINE = torch.tensor([[2.0, 1.0], [0.0, 4.0]])
REWARDS = torch.tensor([1.0, 0.5])
DISCOUNTS = torch.tensor([0.9, 0.81])  # one step, then two steps of gamma 0.9


def test_double_dqn_values_the_online_argmax_with_the_target_network():
    not_done = torch.tensor([False, False])
    target = dqn_target(REWARDS, not_done, DISCOUNTS, NEXT_Q_TARGET, NEXT_Q_ONLINE)
    # argmax online = [0, 1]; target's values there [1, 2]: 1 + 0.9 * 1, 0.5 + 0.81 * 2
    assert torch.allclose(target, torch.tensor([1.9, 2.12]))
    vanilla = dqn_target(REWARDS, not_done, DISCOUNTS, NEXT_Q_TARGET)
    # max target = [5, 3]: 1 + 0.9 * 5, 0.5 + 0.81 * 3
    assert torch.allclose(vanilla, torch.tensor([5.5, 2.93]))


def test_dones_zero_the_bootstrap_as_bools_or_floats():
    for dones in (torch.tensor([True, False]), torch.tensor([1.0, 0.0])):
        target = dqn_target(REWARDS, dones, DISCOUNTS, NEXT_Q_TARGET, NEXT_Q_ONLINE)
        assert torch.allclose(target, torch.tensor([1.0, 2.12]))
    # One discount for the whole batch.
    target = dqn_target(REWARDS, torch.tensor([False, True]), 0.5, NEXT_Q_TARGET)
    assert torch.allclose(target, torch.tensor([3.5, 0.5]))


def test_targets_carry_no_gradient():
    next_q = NEXT_Q_TARGET.clone().requires_grad_()
    assert not dqn_target(REWARDS, torch.zeros(2), 0.9, next_q, next_q).requires_grad
    log_prob = torch.zeros(2, requires_grad=True)
    q = torch.ones(2, requires_grad=True)
    assert not sac_target(REWARDS, torch.zeros(2), 0.9, q, q, log_prob, 0.2).requires_grad
    assert not td3_target(REWARDS, torch.zeros(2), 0.9, q, q).requires_grad


def test_a_critic_output_of_another_shape_is_refused_not_broadcast():
    column = torch.ones(2, 1)  # [batch, 1] would broadcast to [batch, batch]
    with pytest.raises(ValueError, match="one shape"):
        td3_target(REWARDS, torch.zeros(2), 0.9, column, column)
    with pytest.raises(ValueError, match="one shape"):
        dqn_target(REWARDS, torch.zeros(2, 1), 0.9, NEXT_Q_TARGET)
    with pytest.raises(ValueError, match="one shape"):
        td_loss(torch.zeros(3, 1), torch.zeros(3))


def test_huber_and_mse_td_losses_by_hand():
    q = torch.zeros(3, requires_grad=True)
    target = torch.tensor([0.5, 2.0, -3.0])
    # Huber with delta 1: 0.5 * 0.25, 2 - 0.5, 3 - 0.5
    huber = td_loss(q, target)
    assert huber.item() == pytest.approx((0.125 + 1.5 + 2.5) / 3)
    assert td_loss(q, target, "mse").item() == pytest.approx((0.25 + 4.0 + 9.0) / 3)
    huber.backward()
    # d/dq: clip(q - y, -1, 1) / 3
    assert torch.allclose(q.grad, torch.tensor([-0.5, -1.0, 1.0]) / 3)
    with pytest.raises(ValueError, match="kind"):
        td_loss(q, target, "l1")  # type: ignore[arg-type]


def test_dueling_heads_subtract_the_mean_advantage():
    advantages = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 6.0]])
    expected = torch.tensor([[0.0, 1.0, 2.0], [-2.0, -2.0, 4.0]])
    assert torch.equal(dueling_q(torch.tensor([[1.0], [0.0]]), advantages), expected)
    assert torch.equal(dueling_q(torch.tensor([1.0, 0.0]), advantages), expected)
    # The mean over actions of Q is V, whatever the advantages.
    values, advantages = torch.randn(4), torch.randn(4, 5)
    assert torch.allclose(dueling_q(values, advantages).mean(dim=1), values, atol=1e-6)


def test_sac_target_is_the_soft_min_of_the_twin_critics():
    rewards, dones = torch.tensor([1.0, -1.0]), torch.tensor([False, True])
    q1, q2 = torch.tensor([2.0, 7.0]), torch.tensor([3.0, 1.0])
    log_prob = torch.tensor([-1.0, 4.0])
    # min = [2, 1]; minus 0.2 * log_prob = [2.2, 0.2]; the second terminated
    target = sac_target(rewards, dones, 0.5, q1, q2, log_prob, alpha=0.2)
    assert torch.allclose(target, torch.tensor([2.1, -1.0]))
    tensor_alpha = sac_target(rewards, dones, 0.5, q1, q2, log_prob, torch.tensor(0.2))
    assert torch.allclose(tensor_alpha, target)


def test_td3_target_is_the_min_of_the_twin_critics():
    rewards, q1, q2 = torch.tensor([1.0, -1.0]), torch.tensor([2.0, 7.0]), torch.tensor([3.0, 1.0])
    target = td3_target(rewards, torch.tensor([False, False]), torch.tensor([0.5, 0.25]), q1, q2)
    assert torch.allclose(target, torch.tensor([2.0, -0.75]))  # 1 + 0.5 * 2, -1 + 0.25 * 1
    done = td3_target(rewards, torch.tensor([True, True]), 0.5, q1, q2)
    assert torch.equal(done, rewards)


def test_entropy_loss_by_hand_and_its_gradient_direction():
    assert default_target_entropy(3) == -3.0
    log_alpha = torch.tensor(math.log(0.5), requires_grad=True)
    log_prob = torch.tensor([-1.0, -3.0], requires_grad=True)
    # log_prob + target = [-2, -4], mean -3: loss = -(log 0.5 * -3) = 3 log 0.5
    loss = sac_entropy_loss(log_alpha, log_prob, target_entropy=-1.0)
    assert loss.item() == pytest.approx(3 * math.log(0.5))
    loss.backward()
    # The entropy (2) is above the target (-1): a descent step lowers alpha.
    assert log_alpha.grad.item() == pytest.approx(3.0)
    assert log_prob.grad is None  # the policy gets no gradient from this loss
    # Below the target, alpha rises.
    log_alpha.grad = None
    sac_entropy_loss(log_alpha, torch.tensor([2.0]), target_entropy=-1.0).backward()
    assert log_alpha.grad.item() == pytest.approx(-1.0)
