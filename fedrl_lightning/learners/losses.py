"""The actor-critic losses, as pure functions of tensors so that tests can check them by hand."""

from __future__ import annotations

import torch

__all__ = ["ppo_policy_loss", "value_loss"]


def ppo_policy_loss(
    new_log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    clip_coef: float,
) -> torch.Tensor:
    """PPO's clipped surrogate, as a loss to minimise.

    With ``ratio = exp(new_log_probs - old_log_probs)``, the loss is the mean over steps of
    ``max(-A * ratio, -A * clip(ratio, 1 - clip_coef, 1 + clip_coef))``: the pessimistic
    bound, which stops rewarding a ratio moved past the clip range in the advantage's
    direction.

    Args:
        new_log_probs: ``[steps]`` log-probabilities of the actions under the policy being
            trained (with gradients).
        old_log_probs: ``[steps]`` log-probabilities under the behaviour policy.
        advantages: ``[steps]`` advantage estimates.
        clip_coef: The clip range's half-width, such as 0.2.

    Returns:
        The scalar loss.
    """
    ratio = torch.exp(new_log_probs - old_log_probs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
    return torch.max(unclipped, clipped).mean()


def value_loss(
    new_values: torch.Tensor,
    returns: torch.Tensor,
    old_values: torch.Tensor | None = None,
    clip_coef: float | None = None,
) -> torch.Tensor:
    """Half the mean squared error of the critic, optionally clipped as PPO's value clipping.

    Unclipped: ``0.5 * mean((V - R)^2)``. With ``old_values`` and ``clip_coef``, the value is
    also clipped to within ``clip_coef`` of ``old_values``, and each step takes the larger of
    the two squared errors: ``0.5 * mean(max((V - R)^2, (V_old + clip(V - V_old) - R)^2))``.

    Args:
        new_values: ``[steps]`` the critic's values (with gradients).
        returns: ``[steps]`` the critic's targets.
        old_values: ``[steps]`` the values before this batch's updates; needed to clip.
        clip_coef: Half-width of the clip range around ``old_values``; ``None``: no clipping.

    Returns:
        The scalar loss.
    """
    unclipped = (new_values - returns).square()
    if clip_coef is None or old_values is None:
        return 0.5 * unclipped.mean()
    clipped_values = old_values + torch.clamp(new_values - old_values, -clip_coef, clip_coef)
    clipped = (clipped_values - returns).square()
    return 0.5 * torch.max(unclipped, clipped).mean()
