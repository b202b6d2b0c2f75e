import math

import pytest
import torch

from fedrl_lightning.rollouts.returns import (
    backward_sums,
    discounted_returns,
    episode_returns_to_go,
    normalize_advantages,
    normalize_over_batch,
    normalize_per_episode,
    normalize_per_step,
    running_returns,
    successors,
)


def test_discounted_returns_by_hand():
    # G_2 = 1, G_1 = 0 + 0.5 * 1, G_0 = 1 + 0.5 * 0.5
    assert discounted_returns([1.0, 0.0, 1.0], gamma=0.5) == [1.25, 0.5, 1.0]


def test_discounted_returns_undiscounted_is_reverse_cumsum():
    assert discounted_returns([1.0, 2.0, 3.0], gamma=1.0) == [6.0, 5.0, 3.0]


def test_normalised_returns_by_hand():
    returns = [1.25, 0.5, 1.0]
    mean = sum(returns) / 3
    std = math.sqrt(sum((g - mean) ** 2 for g in returns) / 2)  # sample std, as torch.std
    expected = [(g - mean) / (std + 1e-8) for g in returns]
    got = normalize_per_episode(torch.tensor([returns]), torch.ones(1, 3, dtype=torch.bool))
    assert got[0].tolist() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx([0.872872, -1.091089, 0.218218], abs=1e-6)


def test_normalisation_ignores_padding_and_is_per_episode():
    short = [3.0, 1.0]
    long = [1.25, 0.5, 1.0]
    returns = torch.tensor([short + [99.0], long])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    got = normalize_per_episode(returns, mask)
    alone_short = normalize_per_episode(torch.tensor([short]), torch.ones(1, 2, dtype=torch.bool))
    alone_long = normalize_per_episode(torch.tensor([long]), torch.ones(1, 3, dtype=torch.bool))
    assert torch.allclose(got[0, :2], alone_short[0])
    assert got[0, 2] == 0
    assert torch.allclose(got[1], alone_long[0])


def test_one_step_episode_normalises_to_zero():
    got = normalize_per_episode(torch.tensor([[5.0]]), torch.ones(1, 1, dtype=torch.bool))
    assert got.tolist() == [[0.0]]


def padded(rows):
    width = max(len(r) for r in rows)
    returns = torch.tensor([r + [0.0] * (width - len(r)) for r in rows])
    mask = torch.tensor([[True] * len(r) + [False] * (width - len(r)) for r in rows])
    return returns, mask


def test_batch_normalisation_by_hand():
    returns, mask = padded([[3.0, 1.0], [2.0, 4.0, 5.0]])
    real = [3.0, 1.0, 2.0, 4.0, 5.0]
    mean = sum(real) / 5
    std = math.sqrt(sum((g - mean) ** 2 for g in real) / 4)
    got = normalize_over_batch(returns, mask)
    assert got[0].tolist() == pytest.approx([(3 - mean) / std, (1 - mean) / std, 0.0], abs=1e-6)
    assert got[1].tolist() == pytest.approx([(g - mean) / std for g in [2.0, 4.0, 5.0]], abs=1e-6)


def test_per_step_baseline_by_hand():
    returns, mask = padded([[3.0, 1.0], [5.0, 4.0, 2.0]])
    # step means over the episodes still running: [4, 2.5, 2]
    advantages = [[-1.0, -1.5], [1.0, 1.5, 0.0]]
    real = [-1.0, -1.5, 1.0, 1.5, 0.0]
    std = math.sqrt(sum(a**2 for a in real) / 4)  # their mean is 0
    got = normalize_per_step(returns, mask)
    assert got[0].tolist() == pytest.approx([a / std for a in advantages[0]] + [0.0], abs=1e-6)
    assert got[1].tolist() == pytest.approx([a / std for a in advantages[1]], abs=1e-6)


def test_per_step_baseline_leaves_equal_episodes_alone():
    returns = torch.tensor([[3.0, 2.0, 1.0]] * 4)
    got = normalize_per_step(returns, torch.ones(4, 3, dtype=torch.bool))
    assert torch.equal(got, torch.zeros(4, 3))


def test_backward_sums_by_hand():
    # x_2 = 3, x_1 = 2 + 0.5 * 3, x_0 = 1 + 0.1 * 3.5; the second row carries nothing
    terms = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]], dtype=torch.float64)
    discounts = torch.tensor([[0.1, 0.5, 0.9], [0.0, 0.0, 0.0]], dtype=torch.float64)
    sums = backward_sums(terms, discounts)
    assert sums.tolist() == [[1.35, 3.5, 3.0], [1.0, 2.0, 3.0]]


def test_returns_to_go_and_returns_so_far_by_hand():
    rewards = torch.tensor([[1.0, 0.0, 1.0], [2.0, 4.0, 9.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    assert episode_returns_to_go(rewards, mask, 0.5).tolist() == [[1.25, 0.5, 1.0], [4.0, 4.0, 0.0]]
    # R_t = 0.5 * R_{t-1} + r_t from each episode's start; zero on padding
    assert running_returns(rewards, mask, 0.5).tolist() == [[1.0, 0.5, 1.25], [2.0, 5.0, 0.0]]


def test_successors_bootstrap_only_where_an_episode_did_not_terminate():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 0.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    after = successors(values, torch.tensor([7.0, 8.0]), torch.tensor([True, False]), mask)
    assert after.values.tolist() == [[2.0, 3.0, 0.0], [5.0, 8.0, 0.0]]
    assert after.continues.tolist() == [[True, True, False], [True, False, False]]
    assert after.last.tolist() == [[False, False, True], [False, True, False]]
    assert after.bootstrap.tolist() == [0.0, 8.0]


def test_normalize_advantages_by_hand():
    # mean 2, sample std 1
    advantages = normalize_advantages(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    assert advantages.tolist() == pytest.approx([-1.0, 0.0, 1.0], abs=1e-7)
    assert normalize_advantages(torch.tensor([5.0])).tolist() == [0.0]
