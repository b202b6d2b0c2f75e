"""Discounted returns and their per-episode normalisation, the two halves of REINFORCE's weights."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "discounted_returns",
    "episode_returns_to_go",
    "normalize_over_batch",
    "normalize_per_episode",
    "normalize_per_step",
    "running_returns",
]

NORMALIZE_EPS = 1e-8


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
    returns = torch.zeros_like(rewards)
    running = rewards.new_zeros(rewards.shape[0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        running = rewards[:, t] + gamma * running
        returns[:, t] = running
    return returns


def normalize_per_episode(returns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Standardise each episode's returns to zero mean and unit (sample) standard deviation.

    Args:
        returns: ``[episodes, steps]`` discounted returns, padded past each episode's end.
        mask: ``[episodes, steps]``, true on real steps and false on padding.

    Returns:
        ``(G - mean) / (std + 1e-8)`` per episode, computed over real steps only, and zero on
        padding. A one-step episode has no spread and normalises to zero.
    """
    mask = mask.to(returns.dtype)
    count = mask.sum(dim=1, keepdim=True)
    mean = (returns * mask).sum(dim=1, keepdim=True) / count.clamp(min=1)
    centred = (returns - mean) * mask
    variance = centred.square().sum(dim=1, keepdim=True) / (count - 1).clamp(min=1)
    return centred / (variance.sqrt() + NORMALIZE_EPS)


def normalize_over_batch(returns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Standardise returns over every real step of the batch together.

    Subtracting one mean from every episode keeps the difference between long and short
    episodes, so the mean acts as a baseline; each episode's own normalisation would erase it.

    Args:
        returns: ``[episodes, steps]`` discounted returns, padded past each episode's end.
        mask: ``[episodes, steps]``, true on real steps and false on padding.

    Returns:
        ``(G - mean) / (std + 1e-8)`` over all real steps, and zero on padding.
    """
    real = returns[mask]
    std = real.std() if real.numel() > 1 else real.new_zeros(())
    return (returns - real.mean()) * mask / (std + NORMALIZE_EPS)


def normalize_per_step(returns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Subtract a per-step baseline, then scale by the spread over the batch.

    The baseline at step ``t`` is the mean return from ``t`` of the batch's episodes that are
    still running at ``t``. Episodes that all run equally well give no update at all, while
    the other normalisations would still push on them; shorter-than-average episodes are
    pushed away from, longer ones towards.

    Args:
        returns: ``[episodes, steps]`` discounted returns, padded past each episode's end.
        mask: ``[episodes, steps]``, true on real steps and false on padding.

    Returns:
        ``(G_t - mean_t) / (std + 1e-8)``, with the std over all real steps, zero on padding.
    """
    weights = mask.to(returns.dtype)
    running = weights.sum(dim=0, keepdim=True)
    baseline = (returns * weights).sum(dim=0, keepdim=True) / running.clamp(min=1)
    advantages = (returns - baseline) * weights
    real = advantages[mask]
    std = real.std() if real.numel() > 1 else real.new_zeros(())
    return advantages / (std + NORMALIZE_EPS)
