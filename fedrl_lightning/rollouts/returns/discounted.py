"""Discounted sums of rewards: the return-to-go of each step, and the return so far."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["backward_sums", "discounted_returns", "episode_returns_to_go", "running_returns"]


def discounted_returns(rewards: Sequence[float], gamma: float) -> list[float]:
    """Return ``G_t = r_t + gamma * G_{t+1}`` for every step of one episode.

    The episode's last reward is not bootstrapped: whatever ended it, nothing follows.

    Args:
        rewards: The episode's rewards, in order.
        gamma: The discount factor.

    Returns:
        The discounted return from each step, in order.
    """
    returns = [0.0] * len(rewards)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns


def episode_returns_to_go(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """:func:`discounted_returns` of every episode of a padded batch, as one tensor.

    Args:
        rewards: ``[episodes, steps]`` rewards; padding is ignored.
        mask: ``[episodes, steps]``, true on real steps, which come first in each row.
        gamma: The discount factor.

    Returns:
        ``[episodes, steps]`` ``G_t`` in ``rewards``' dtype, zero on padding.
    """
    rewards = torch.where(mask, rewards, rewards.new_zeros(()))
    return backward_sums(rewards, torch.full_like(rewards, gamma))


def running_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """The discounted return so far, ``R_t = gamma * R_{t-1} + r_t``, from each episode's start.

    This is the forward-running return VecNormalize tracks (``R_{-1} = 0`` at every reset),
    not the return-to-go ``G_t`` that REINFORCE weights its steps by.

    Args:
        rewards: ``[episodes, steps]`` rewards, padded past each episode's end.
        mask: ``[episodes, steps]`` bool, true on real steps, which come first in each row.
        gamma: The discount factor.

    Returns:
        ``[episodes, steps]`` float64 on ``rewards``' device, zero on padding.
    """
    r = torch.where(mask, rewards, 0).detach().cpu().double().numpy()
    returns = np.zeros_like(r)
    running = np.zeros(r.shape[0])
    for t in range(r.shape[1]):
        running = gamma * running + r[:, t]
        returns[:, t] = running
    returns *= mask.cpu().numpy()
    return torch.from_numpy(returns).to(rewards.device)


def backward_sums(terms: torch.Tensor, discounts: torch.Tensor) -> torch.Tensor:
    """``x_t = terms_t + discounts_t * x_{t+1}`` along each row, with ``x`` past the end 0.

    The recursion of every return estimator here: the return-to-go (``discounts = gamma``),
    GAE (``gamma * lam`` within an episode) and V-trace (``gamma * c_t``).

    Args:
        terms: ``[rows, steps]``.
        discounts: ``[rows, steps]``, the factor each step carries the next step's sum by.

    Returns:
        ``[rows, steps]`` in ``terms``' dtype.
    """
    sums = torch.zeros_like(terms)
    running = terms.new_zeros(terms.shape[0])
    for t in range(terms.shape[1] - 1, -1, -1):
        running = terms[:, t] + discounts[:, t] * running
        sums[:, t] = running
    return sums
