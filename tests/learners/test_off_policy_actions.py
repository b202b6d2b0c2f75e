"""How off-policy learners draw actions, against hand computations and torch.distributions."""

import math

import pytest
import torch
from torch.distributions import AffineTransform, Normal, TanhTransform, TransformedDistribution

from fedrl_lightning.learners.off_policy_actions import (
    LinearSchedule,
    epsilon_greedy,
    smoothed_target_action,
    squashed_gaussian_sample,
)


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def test_the_schedule_at_its_ends_and_midpoint():
    schedule = LinearSchedule(total_steps=1000, start=1.0, end=0.05, fraction=0.1)
    assert schedule(0) == 1.0
    assert schedule(50) == pytest.approx(0.525)  # CleanRL: 1 + (0.05 - 1) / 100 * 50
    assert schedule(100) == schedule(999) == schedule(5000) == 0.05  # exactly the end
    assert schedule(50) == pytest.approx(0.525)  # a pure function: order does not matter
    defaults = LinearSchedule(total_steps=100)
    assert (defaults.start, defaults.end, defaults.fraction) == (1.0, 0.05, 0.1)
    assert LinearSchedule(total_steps=10, fraction=0.0)(0) == 0.05
    rising = LinearSchedule(total_steps=10, start=0.0, end=1.0, fraction=1.0)
    assert [rising(step) for step in (0, 5, 10, 20)] == [0.0, 0.5, 1.0, 1.0]


@pytest.mark.parametrize(
    "kwargs", [{"total_steps": 0}, {"fraction": 1.5}, {"start": -0.1}, {"end": 2.0}]
)
def test_the_schedule_refuses_bad_settings(kwargs):
    with pytest.raises(ValueError, match="must be"):
        LinearSchedule(**{"total_steps": 10, **kwargs})


Q = torch.tensor([[1.0, 3.0, 2.0], [5.0, 0.0, 5.0]])


def test_epsilon_zero_is_greedy_with_the_first_of_tied_maxima():
    assert epsilon_greedy(Q, 0.0, seeded()).tolist() == [1, 0]


def test_epsilon_one_is_uniform_and_ignores_the_values():
    q = torch.tensor([[0.0, 100.0, 0.0]]).repeat(3000, 1)
    actions = epsilon_greedy(q, 1.0, seeded())
    counts = torch.bincount(actions, minlength=3)
    assert counts.sum() == 3000
    assert all(900 < count < 1100 for count in counts.tolist())  # about 1000 each
    half = epsilon_greedy(q, 0.5, seeded())
    # Greedy half the time, plus a third of the random half: about 2000 of action 1.
    assert 1850 < (half == 1).sum().item() < 2150
    with pytest.raises(ValueError, match="epsilon"):
        epsilon_greedy(Q, 1.5, seeded())


def test_epsilon_greedy_is_reproducible_and_draws_the_same_numbers_whatever_epsilon():
    q = torch.randn(50, 4, generator=seeded(1))
    first, second = seeded(7), seeded(7)
    assert torch.equal(epsilon_greedy(q, 0.3, first), epsilon_greedy(q, 0.3, second))
    assert torch.equal(epsilon_greedy(q, 0.3, first), epsilon_greedy(q, 0.3, second))
    # Whatever epsilon was, the generators end in the same state.
    epsilon_greedy(q, 0.0, first)
    epsilon_greedy(q, 1.0, second)
    assert torch.equal(first.get_state(), second.get_state())


MEAN = torch.tensor([[0.0, 0.5], [-1.0, 2.0], [0.3, -0.7]])
LOG_STD = torch.tensor([[0.0, -1.0], [0.5, -2.0], [-0.5, 0.2]])
LOW, HIGH = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0])


def brute_force_log_prob(mean, log_std, noise, low, high):
    """log π(a) by torch.distributions' change of variables, in float64."""
    mean, std, noise = mean.double(), log_std.double().exp(), noise.double()
    scale, bias = (high - low).double() / 2, (high + low).double() / 2
    policy = TransformedDistribution(
        Normal(mean, std), [TanhTransform(), AffineTransform(bias, scale)]
    )
    action = bias + scale * torch.tanh(mean + std * noise)
    return policy.log_prob(action).sum(dim=-1), action


def test_squashed_gaussian_log_prob_is_the_change_of_variables():
    sample = squashed_gaussian_sample(MEAN, LOG_STD, seeded(3), LOW, HIGH)
    noise = torch.randn(MEAN.shape, generator=seeded(3))  # the same draw
    expected, action = brute_force_log_prob(MEAN, LOG_STD, noise, LOW, HIGH)
    assert torch.allclose(sample.action.double(), action, atol=1e-6)
    assert torch.allclose(sample.log_prob.double(), expected, atol=1e-4)
    assert sample.log_prob.shape == (3,)
    assert torch.allclose(
        sample.mean_action, torch.tensor([0.0, 0.5]) + torch.tensor([2.0, 0.5]) * torch.tanh(MEAN)
    )


def test_without_bounds_the_log_prob_is_of_the_action_in_minus_one_one():
    bounded = squashed_gaussian_sample(MEAN, LOG_STD, seeded(3), LOW, HIGH)
    unit = squashed_gaussian_sample(MEAN, LOG_STD, seeded(3))
    expected, _ = brute_force_log_prob(
        MEAN, LOG_STD, torch.randn(3, 2, generator=seeded(3)), -torch.ones(2), torch.ones(2)
    )
    assert torch.allclose(unit.log_prob.double(), expected, atol=1e-4)
    # The scales are 2 and 0.5: their log-determinant log 2 + log 0.5 = 0.
    assert torch.allclose(bounded.log_prob, unit.log_prob, atol=1e-5)
    doubled = squashed_gaussian_sample(MEAN, LOG_STD, seeded(3), -2.0, 2.0)
    assert torch.allclose(doubled.log_prob, unit.log_prob - 2 * math.log(2.0), atol=1e-5)
    assert torch.allclose(doubled.action, 2 * unit.action)


def test_the_log_prob_stays_exact_where_the_tanh_saturates():
    # u = 10: 1 - tanh(u)^2 rounds to 0 in float32, yet log(1 - tanh^2) = 2 (log 2 - 10 - ...)
    mean, log_std = torch.tensor([[10.0]]), torch.tensor([[-30.0]])
    sample = squashed_gaussian_sample(mean, log_std, seeded(5))
    noise = torch.randn(1, generator=seeded(5)).item()
    log_normal = -0.5 * noise**2 + 30.0 - 0.5 * math.log(2 * math.pi)
    expected = log_normal - 2 * (math.log(2.0) - 10.0 - math.log1p(math.exp(-20.0)))
    assert sample.log_prob.item() == pytest.approx(expected, rel=1e-6)  # about 47.69
    assert sample.action.item() == 1.0


def test_the_sample_is_reparameterised_reproducible_and_within_bounds():
    mean = torch.randn(500, 2, generator=seeded(1), requires_grad=True)
    log_std = torch.zeros(500, 2, requires_grad=True)
    sample = squashed_gaussian_sample(mean, log_std, seeded(2), LOW, HIGH)
    again = squashed_gaussian_sample(mean, log_std, seeded(2), LOW, HIGH)
    assert torch.equal(sample.action, again.action)
    assert torch.equal(sample.log_prob, again.log_prob)
    assert ((sample.action >= LOW) & (sample.action <= HIGH)).all()
    (sample.action.sum() + sample.log_prob.sum()).backward()
    assert mean.grad is not None and log_std.grad is not None
    assert torch.isfinite(mean.grad).all() and mean.grad.abs().sum() > 0


def test_smoothing_without_noise_only_clips_to_the_bounds():
    action = torch.tensor([[0.5, 3.0], [-4.0, 0.2]])
    smoothed = smoothed_target_action(action, 0.0, 0.5, -1.0, torch.tensor([1.0, 2.0]), seeded())
    assert smoothed.tolist() == [[0.5, 2.0], [-1.0, pytest.approx(0.2)]]


def test_smoothing_noise_is_clipped_in_units_of_the_half_range():
    # Bounds [0, 4]: half-range 2. Huge noise clipped at 0.25 moves each action by exactly 0.5.
    target = torch.full((200, 1), 2.0, requires_grad=True)
    smoothed = smoothed_target_action(target, 1e6, 0.25, 0.0, 4.0, seeded(4))
    assert torch.allclose((smoothed - 2.0).abs(), torch.full((200, 1), 0.5))
    assert 0 < (smoothed > 2.0).sum() < 200  # both signs occur
    assert not smoothed.requires_grad
    # Small noise: clipped at the bounds, reproducible from the seed.
    near_edge = torch.full((200, 1), 3.9)
    first = smoothed_target_action(near_edge, 0.2, 0.5, 0.0, 4.0, seeded(9))
    assert first.max() == 4.0 and first.min() >= 2.9
    assert torch.equal(first, smoothed_target_action(near_edge, 0.2, 0.5, 0.0, 4.0, seeded(9)))
