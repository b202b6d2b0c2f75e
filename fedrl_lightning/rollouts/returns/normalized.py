"""Normalisations: REINFORCE's three of its discounted returns, and an actor-critic's advantages."""

from __future__ import annotations

import torch

__all__ = [
    "NORMALIZE_EPS",
    "normalize_advantages",
    "normalize_over_batch",
    "normalize_per_episode",
    "normalize_per_step",
]

NORMALIZE_EPS = 1e-8
"""Added to the standard deviation before dividing by it."""


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


def normalize_advantages(advantages: torch.Tensor, eps: float = NORMALIZE_EPS) -> torch.Tensor:
    """Advantages minus their mean, over their standard deviation; one advantage becomes 0."""
    if advantages.numel() < 2:
        return advantages - advantages.mean()
    return (advantages - advantages.mean()) / (advantages.std() + eps)
