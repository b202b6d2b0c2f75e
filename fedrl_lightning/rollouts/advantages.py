"""Generalised advantage estimation over padded episodes, telling termination from truncation."""

from __future__ import annotations

import torch

__all__ = ["gae"]


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    mask: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Compute GAE(gamma, lambda) advantages and the critic's targets for whole episodes.

    For every real step ``t`` of an episode::

        delta_t = r_t + gamma * V_next_t - V(s_t)
        A_t     = delta_t + gamma * lam * A_{t+1}      (A past the episode's last step is 0)
        R_t     = A_t + V(s_t)

    Within an episode ``V_next_t = values[:, t + 1]``. At the episode's last real step it is
    the bootstrap value: ``next_values`` (V of the observation after the last step) when the
    episode was truncated, since a time limit is not a terminal state, and zero when it
    terminated. An episode flagged neither (cut off by the data, not the environment) is
    bootstrapped like a truncated one; one flagged both counts as terminated, as in gymnasium.

    With ``gamma = lam = 1`` and a terminated episode, ``A_t`` is the Monte-Carlo return minus
    ``V(s_t)``; with ``lam = 0`` it is the one-step TD error ``delta_t``.

    Args:
        rewards: ``[episodes, steps]`` rewards, padded past each episode's end.
        values: ``[episodes, steps]`` critic values ``V(s_t)``, padded likewise.
        next_values: ``[episodes]`` critic value of the observation after each episode's
            last step; ignored for terminated episodes.
        terminated: ``[episodes]`` bool, the episode reached a terminal state.
        truncated: ``[episodes]`` bool, the episode was cut off by a time limit.
        mask: ``[episodes, steps]`` bool, true on real steps; each row's real steps come
            first, then its padding.
        gamma: The discount factor.
        lam: The GAE lambda, trading bias (0) against variance (1).

    Returns:
        ``(advantages, returns)``, both ``[episodes, steps]`` in ``rewards``' dtype and zero on
        padding (whatever padding ``rewards`` and ``values`` hold).

    Raises:
        ValueError: If the shapes do not match.
    """
    episodes, steps = rewards.shape
    if values.shape != rewards.shape or mask.shape != rewards.shape:
        raise ValueError(
            f"gae: rewards {tuple(rewards.shape)}, values {tuple(values.shape)} and mask "
            f"{tuple(mask.shape)} must have the same [episodes, steps] shape"
        )
    for name, flags in (
        ("next_values", next_values),
        ("terminated", terminated),
        ("truncated", truncated),
    ):
        if flags.shape != (episodes,):
            raise ValueError(f"gae: {name} has shape {tuple(flags.shape)}, expected ({episodes},)")
    del truncated  # not terminated means bootstrapped, truncated or cut off by the data
    mask = mask.to(torch.bool)
    zero = rewards.new_zeros(())
    rewards = torch.where(mask, rewards, zero)
    values = torch.where(mask, values.to(rewards.dtype), zero)
    # continues[:, t]: step t + 1 is a real step of the same episode.
    continues = torch.cat([mask[:, 1:], mask.new_zeros(episodes, 1)], dim=1)
    last = mask & ~continues
    bootstrap = torch.where(terminated.to(torch.bool), zero, next_values.to(rewards.dtype))
    following = torch.cat([values[:, 1:], values.new_zeros(episodes, 1)], dim=1)
    following = torch.where(last, bootstrap.unsqueeze(1), following)
    deltas = torch.where(mask, rewards + gamma * following - values, zero)
    advantages = torch.zeros_like(rewards)
    running = rewards.new_zeros(episodes)
    carry = continues.to(rewards.dtype)
    for t in range(steps - 1, -1, -1):
        running = deltas[:, t] + gamma * lam * carry[:, t] * running
        advantages[:, t] = running
    returns = torch.where(mask, advantages + values, zero)
    return advantages, returns
