import pytest
import torch

from fedrl_lightning.rollouts.returns import gae

REWARDS = [1.0, 0.0, 2.0, -1.0]
VALUES = [0.5, 1.5, -0.25, 2.0]
NEXT_VALUE = 3.0
GAMMA = 0.9
LAM = 0.8


def run_one(rewards, values, *, terminated, next_value=NEXT_VALUE, gamma=GAMMA, lam=LAM):
    n = len(rewards)
    return gae(
        torch.tensor([rewards]),
        torch.tensor([values]),
        torch.tensor([next_value]),
        torch.tensor([terminated]),
        torch.tensor([not terminated]),
        torch.ones(1, n, dtype=torch.bool),
        gamma,
        lam,
    )


def by_hand(rewards, values, bootstrap, gamma, lam):
    """Step by step, in plain Python floats."""
    n = len(rewards)
    deltas = []
    for t in range(n):
        following = values[t + 1] if t + 1 < n else bootstrap
        deltas.append(rewards[t] + gamma * following - values[t])
    advantages = [0.0] * n
    running = 0.0
    for t in reversed(range(n)):
        running = deltas[t] + gamma * lam * running
        advantages[t] = running
    return advantages, [a + v for a, v in zip(advantages, values, strict=True)]


def test_terminated_episode_by_hand():
    # delta_3 = -1 + 0.9 * 0 - 2 = -3 (terminal: no bootstrap)
    # delta_2 = 2 + 0.9 * 2 + 0.25 = 4.05; A_2 = 4.05 + 0.72 * -3 = 1.89
    # delta_1 = 0 + 0.9 * -0.25 - 1.5 = -1.725; A_1 = -1.725 + 0.72 * 1.89 = -0.3642
    # delta_0 = 1 + 0.9 * 1.5 - 0.5 = 1.85; A_0 = 1.85 + 0.72 * -0.3642 = 1.587776
    advantages, returns = run_one(REWARDS, VALUES, terminated=True)
    expected = [1.587776, -0.3642, 1.89, -3.0]
    assert advantages[0].tolist() == pytest.approx(expected, abs=1e-5)
    assert by_hand(REWARDS, VALUES, 0.0, GAMMA, LAM)[0] == pytest.approx(expected, abs=1e-12)
    assert returns[0].tolist() == pytest.approx(
        [a + v for a, v in zip(expected, VALUES, strict=True)], abs=1e-5
    )


def test_truncated_episode_bootstraps_with_next_value():
    # delta_3 = -1 + 0.9 * 3 - 2 = -0.3; the rest follows as above with A_3 = -0.3
    advantages, returns = run_one(REWARDS, VALUES, terminated=False)
    expected_adv, expected_ret = by_hand(REWARDS, VALUES, NEXT_VALUE, GAMMA, LAM)
    assert expected_adv[3] == pytest.approx(-0.3, abs=1e-12)
    assert expected_adv[2] == pytest.approx(4.05 + 0.72 * -0.3, abs=1e-12)
    assert advantages[0].tolist() == pytest.approx(expected_adv, abs=1e-5)
    assert returns[0].tolist() == pytest.approx(expected_ret, abs=1e-5)
    terminated_adv, _ = run_one(REWARDS, VALUES, terminated=True)
    # the bootstrap reaches step t discounted by (gamma * lam) ** (3 - t), times gamma
    for t in range(4):
        gap = advantages[0, t] - terminated_adv[0, t]
        assert gap.item() == pytest.approx(GAMMA * NEXT_VALUE * (GAMMA * LAM) ** (3 - t), abs=1e-5)


def test_terminated_ignores_next_value_even_if_truncated_too():
    both = gae(
        torch.tensor([REWARDS]),
        torch.tensor([VALUES]),
        torch.tensor([100.0]),
        torch.tensor([True]),
        torch.tensor([True]),
        torch.ones(1, 4, dtype=torch.bool),
        GAMMA,
        LAM,
    )
    terminated = run_one(REWARDS, VALUES, terminated=True)
    assert torch.equal(both[0], terminated[0]) and torch.equal(both[1], terminated[1])


def test_gamma_one_lam_one_is_monte_carlo_return_minus_value():
    advantages, returns = run_one(REWARDS, VALUES, terminated=True, gamma=1.0, lam=1.0)
    monte_carlo = [2.0, 1.0, 1.0, -1.0]  # reverse cumulative sums of the rewards
    assert advantages[0].tolist() == pytest.approx(
        [g - v for g, v in zip(monte_carlo, VALUES, strict=True)], abs=1e-6
    )
    assert returns[0].tolist() == pytest.approx(monte_carlo, abs=1e-6)


def test_lam_zero_is_one_step_td_error():
    advantages, returns = run_one(REWARDS, VALUES, terminated=False, lam=0.0)
    following = VALUES[1:] + [NEXT_VALUE]
    td = [r + GAMMA * f - v for r, f, v in zip(REWARDS, following, VALUES, strict=True)]
    assert advantages[0].tolist() == pytest.approx(td, abs=1e-6)
    assert returns[0].tolist() == pytest.approx(
        [r + GAMMA * f for r, f in zip(REWARDS, following, strict=True)], abs=1e-6
    )


def test_padded_batch_equals_each_episode_alone():
    short_r, short_v = [0.5, -2.0], [1.0, 0.25]
    long_r, long_v = REWARDS + [0.75], VALUES + [-1.0]
    pad = float("nan")  # padding must not leak into real steps or outputs
    rewards = torch.tensor([short_r + [pad] * 3, long_r])
    values = torch.tensor([short_v + [pad] * 3, long_v])
    mask = torch.tensor([[True, True, False, False, False], [True] * 5])
    advantages, returns = gae(
        rewards,
        values,
        torch.tensor([7.0, -4.0]),
        torch.tensor([False, True]),
        torch.tensor([True, False]),
        mask,
        GAMMA,
        LAM,
    )
    short = run_one(short_r, short_v, terminated=False, next_value=7.0)
    long = run_one(long_r, long_v, terminated=True, next_value=-4.0)
    assert torch.allclose(advantages[0, :2], short[0][0], atol=1e-6)
    assert torch.allclose(returns[0, :2], short[1][0], atol=1e-6)
    assert torch.allclose(advantages[1], long[0][0], atol=1e-6)
    assert torch.allclose(returns[1], long[1][0], atol=1e-6)
    assert advantages[0, 2:].tolist() == [0.0] * 3
    assert returns[0, 2:].tolist() == [0.0] * 3
    assert advantages.dtype == returns.dtype == torch.float32


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="next_values"):
        gae(
            torch.zeros(2, 3),
            torch.zeros(2, 3),
            torch.zeros(3),
            torch.zeros(2, dtype=torch.bool),
            torch.zeros(2, dtype=torch.bool),
            torch.ones(2, 3, dtype=torch.bool),
            GAMMA,
            LAM,
        )
