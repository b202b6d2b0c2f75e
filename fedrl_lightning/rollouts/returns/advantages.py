"""Generalised advantage estimation over padded episodes, telling termination from truncation."""

from __future__ import annotations

from typing import NamedTuple

import torch

from fedrl_lightning.rollouts.returns.discounted import backward_sums

__all__ = ["Successors", "gae", "successors"]


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
    episodes = rewards.shape[0]
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
    after = successors(values, next_values, terminated, mask)
    deltas = torch.where(mask, rewards + gamma * after.values - values, zero)
    advantages = backward_sums(deltas, gamma * lam * after.continues.to(rewards.dtype))
    returns = torch.where(mask, advantages + values, zero)
    return advantages, returns


class Successors(NamedTuple):
    """What follows each step of padded episodes, ``[episodes, steps]`` each.

    Attributes:
        values: ``V_next_t``: ``V(s_{t+1})`` within an episode; at its last real step the
            bootstrap value, and zero on padding.
        continues: Step ``t + 1`` is a real step of the same episode.
        last: Step ``t`` is its episode's last real step.
        bootstrap: ``[episodes]``, the value after each episode's last step: its next value,
            or zero if it terminated.
    """

    values: torch.Tensor
    continues: torch.Tensor
    last: torch.Tensor
    bootstrap: torch.Tensor


def successors(
    values: torch.Tensor, next_values: torch.Tensor, terminated: torch.Tensor, mask: torch.Tensor
) -> Successors:
    """The value after each step, bootstrapping only where an episode did not terminate.

    Args:
        values: ``[episodes, steps]`` ``V(s_t)``, zero on padding.
        next_values: ``[episodes]`` the value of each episode's final observation.
        terminated: ``[episodes]`` bool.
        mask: ``[episodes, steps]`` bool, true on real steps, which come first in each row.

    Returns:
        The next values and where episodes continue and end, in ``values``' dtype.
    """
    episodes = values.shape[0]
    zero = values.new_zeros(())
    continues = torch.cat([mask[:, 1:], mask.new_zeros(episodes, 1)], dim=1)
    last = mask & ~continues
    bootstrap = torch.where(terminated.to(torch.bool), zero, next_values.to(values.dtype))
    following = torch.cat([values[:, 1:], values.new_zeros(episodes, 1)], dim=1)
    following = torch.where(last, bootstrap.unsqueeze(1), following)
    return Successors(following, continues, last, bootstrap)
