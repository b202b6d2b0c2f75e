"""Reward scaling by the running spread of the discounted return, as SB3's VecNormalize does."""

from __future__ import annotations

import numpy as np
import torch

from fedrl_lightning.policy.statistics import RunningStatistics

__all__ = ["RewardNormalizer", "running_returns"]


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


class RewardNormalizer(RunningStatistics):
    """Scales rewards by ``1 / sqrt(var(R) + eps)``, clipped to ``[-clip, clip]``.

    ``R`` is the discounted return so far (:func:`running_returns`), and its statistics are
    one feature's count, mean and M2 in the float64 buffers of :class:`~fedrl_lightning.
    statistics_module.RunningStatistics`: they are in every checkpoint, and a federation pools
    every agent's as statistics (Chan et al.'s formula), as it pools observation statistics.
    The mean is not subtracted from the rewards, so their sign, and what ending an episode
    early is worth, are kept. This is Stable-Baselines3's ``VecNormalize(norm_reward=True)``,
    with whole episodes instead of vectorised steps: :meth:`observe_episodes` folds a batch's
    returns in, then :meth:`forward` scales the same batch's rewards with the statistics
    that include them, as VecNormalize updates its statistics before it scales each step's
    reward.

    Args:
        gamma: The discount factor of ``R``; the learner's own.
        clip: Bound on the scaled reward's absolute value.
        eps: Added to the variance before its square root.
    """

    def __init__(self, gamma: float, clip: float = 10.0, eps: float = 1e-8) -> None:
        super().__init__(1)
        self.gamma = gamma
        self.clip = clip
        self.eps = eps

    def observe_episodes(self, rewards: torch.Tensor, mask: torch.Tensor) -> None:
        """Fold the discounted return of every real step of ``[episodes, steps]`` rewards in."""
        returns = running_returns(rewards, mask, self.gamma)
        self.observe(returns[mask.to(torch.bool)].unsqueeze(-1))

    def forward(self, rewards: torch.Tensor) -> torch.Tensor:
        """``clip(rewards / sqrt(var(R) + eps), -clip, clip)``, in ``rewards``' dtype.

        Zero rewards (padding) stay zero. Before any return is observed the variance is 1,
        and rewards are only clipped.
        """
        scale = torch.sqrt(self.variance()[0] + self.eps).to(rewards.device)
        return (rewards.double() / scale).clamp(-self.clip, self.clip).to(rewards.dtype)
