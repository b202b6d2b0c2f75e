"""Off-policy corrections for replayed episodes: truncated importance weights and V-trace."""

from __future__ import annotations

from typing import NamedTuple

import torch

from fedrl_lightning.rollouts.returns.advantages import successors
from fedrl_lightning.rollouts.returns.discounted import backward_sums

__all__ = ["VTrace", "truncated_importance_weights", "vtrace"]


def truncated_importance_weights(
    log_probs: torch.Tensor, behaviour_log_probs: torch.Tensor, rho_max: float
) -> torch.Tensor:
    """Per-decision importance weights ``min(rho_max, pi(a_t|s_t) / mu(a_t|s_t))``.

    Each step's weight is its own action's probability ratio between the policy being
    trained (``pi``) and the behaviour policy that took it (``mu``), truncated at
    ``rho_max`` as in IMPALA's V-trace, so that one unlikely action cannot dominate.

    Args:
        log_probs: ``[...]`` log-probabilities of the actions under the trained policy.
        behaviour_log_probs: ``[...]`` their log-probabilities under the behaviour policy.
        rho_max: The truncation level, positive.

    Returns:
        The weights, ``[...]``, without gradients.
    """
    ratios = (log_probs.detach() - behaviour_log_probs).exp()
    return ratios.clamp(max=rho_max)


class VTrace(NamedTuple):
    """V-trace's outputs over padded episodes, each ``[episodes, steps]``, zero on padding.

    Attributes:
        returns: The critic's targets ``v_t``.
        advantages: ``r_t + gamma * v_{t+1} - V(s_t)`` (``v`` past the last step being the
            bootstrap value), before the importance weight.
        rhos: The truncated importance weights ``min(rho_max, pi / mu)``.
    """

    returns: torch.Tensor
    advantages: torch.Tensor
    rhos: torch.Tensor


def vtrace(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    mask: torch.Tensor,
    log_rhos: torch.Tensor,
    gamma: float,
    lam: float,
    rho_max: float,
) -> VTrace:
    """V-trace targets (Espeholt et al., 2018) for whole episodes taken by another policy.

    For every real step ``t``, with ``rho_t = min(rho_max, exp(log_rhos_t))`` and
    ``c_t = lam * min(1, exp(log_rhos_t))``::

        delta_t = rho_t * (r_t + gamma * V_next_t - V(s_t))
        v_t     = V(s_t) + delta_t + gamma * c_t * (v_{t+1} - V(s_{t+1}))

    the last term being 0 at an episode's last step, whose ``V_next`` is ``next_values``
    (the value after it) unless it terminated, and 0 then, as in
    :func:`~fedrl_lightning.rollouts.returns.gae`. On-policy (``log_rhos = 0``), ``v_t`` is
    GAE(lambda)'s return.

    Args:
        rewards: ``[episodes, steps]`` rewards.
        values: ``[episodes, steps]`` critic values ``V(s_t)``.
        next_values: ``[episodes]`` value of each episode's final observation.
        terminated: ``[episodes]`` bool.
        mask: ``[episodes, steps]`` bool, true on real steps, which come first in each row.
        log_rhos: ``[episodes, steps]`` ``log pi(a_t|s_t) - log mu(a_t|s_t)``.
        gamma: The discount factor.
        lam: The trace's lambda.
        rho_max: The truncation level of the weights.

    Returns:
        The targets, the advantages and the weights.
    """
    episodes = rewards.shape[0]
    mask = mask.to(torch.bool)
    zero = rewards.new_zeros(())
    rewards = torch.where(mask, rewards, zero)
    values = torch.where(mask, values.to(rewards.dtype), zero)
    ratios = torch.where(mask, log_rhos, zero).exp()
    rhos = torch.where(mask, ratios.clamp(max=rho_max), zero)
    cs = lam * ratios.clamp(max=1.0)
    after = successors(values, next_values, terminated, mask)
    deltas = torch.where(mask, rhos * (rewards + gamma * after.values - values), zero)
    # v_t - V(s_t)
    corrections = backward_sums(deltas, gamma * cs * after.continues.to(rewards.dtype))
    returns = torch.where(mask, values + corrections, zero)
    next_returns = torch.cat([returns[:, 1:], returns.new_zeros(episodes, 1)], dim=1)
    next_returns = torch.where(after.last, after.bootstrap.unsqueeze(1), next_returns)
    advantages = torch.where(mask, rewards + gamma * next_returns - values, zero)
    return VTrace(returns, advantages, rhos)
