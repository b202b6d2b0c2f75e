"""The targets and losses DQN, SAC and TD3 share, as pure functions that tests check by hand.

Targets carry no gradient (they are computed under ``torch.no_grad``). Batch tensors are
``[batch]`` unless said otherwise; the targets refuse a critic output of another shape (such as
``[batch, 1]``), which would otherwise broadcast to ``[batch, batch]``.

``dones`` means *terminated*: a time-limit truncation is not an end of the task, so its
transition bootstraps like any other and must come here with ``dones`` false.
``discounts`` is ``gamma`` for one-step transitions and ``gamma ** k`` for a ``k``-step one.
How actions are drawn (ε-greedy, the squashed Gaussian, TD3's smoothing) is in
:mod:`fedrl_lightning.learners.off_policy_actions`.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from fedrl_lightning.learners.off_policy_actions import Bound
from fedrl_lightning.policy.networks import dueling_q

__all__ = [
    "default_target_entropy",
    "dqn_target",
    "dueling_q",
    "polyak_update",
    "sac_entropy_loss",
    "sac_target",
    "td3_target",
    "td_loss",
]


@torch.no_grad()
def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """Moves ``target``'s parameters towards ``online``'s in place: ``θ' ← τ θ + (1 − τ) θ'``.

    ``tau = 1`` is the hard copy of DQN's periodic target update (SB3's and CleanRL's default
    for DQN); SAC and TD3 use ``tau = 0.005``. Buffers (batch-norm or observation-normaliser
    statistics) are copied outright whatever ``tau`` is, as SB3 does for batch-norm statistics:
    the target normalises its inputs as the online network does. CleanRL's networks have no
    buffers.

    Args:
        target: The target network, changed in place.
        online: The network being trained, of the same architecture.
        tau: The weight of the online parameters, in ``(0, 1]``.

    Raises:
        ValueError: If ``tau`` is outside ``(0, 1]`` or the two networks' parameters or
            buffers do not pair up by name and shape.
    """
    if not 0.0 < tau <= 1.0:
        raise ValueError(f"tau must be in (0, 1], got {tau}")
    pairs = []
    for kind, targets, onlines in (
        ("parameters", target.named_parameters(), online.named_parameters()),
        ("buffers", target.named_buffers(), online.named_buffers()),
    ):
        target_items, online_items = dict(targets), dict(onlines)
        shapes = {name: tuple(t.shape) for name, t in target_items.items()}
        if shapes != {name: tuple(t.shape) for name, t in online_items.items()}:
            raise ValueError(f"the target's and the online network's {kind} differ")
        pairs.append([(target_items[name], online_items[name]) for name in target_items])
    parameters, buffers = pairs
    if tau == 1.0:
        for target_tensor, online_tensor in parameters:
            target_tensor.copy_(online_tensor)
    elif parameters:  # one fused kernel for all tensors: SAC and TD3 call this every update
        torch._foreach_lerp_([t for t, _ in parameters], [o for _, o in parameters], tau)
    for target_tensor, online_tensor in buffers:
        target_tensor.copy_(online_tensor)


def _bootstrap(
    rewards: torch.Tensor, dones: torch.Tensor, discounts: Bound, next_value: torch.Tensor
) -> torch.Tensor:
    """``r + discount · (1 − done) · next_value``, refusing a shape that would broadcast."""
    if next_value.shape != rewards.shape or dones.shape != rewards.shape:
        raise ValueError(
            f"rewards, dones and the next values must have one shape, got "
            f"{tuple(rewards.shape)}, {tuple(dones.shape)} and {tuple(next_value.shape)}"
        )
    not_done = 1.0 - dones.to(rewards.dtype)
    return rewards + discounts * not_done * next_value


@torch.no_grad()
def dqn_target(
    rewards: torch.Tensor,
    dones: torch.Tensor,
    discounts: Bound,
    next_q_target: torch.Tensor,
    next_q_online: torch.Tensor | None = None,
) -> torch.Tensor:
    """The DQN target ``y = r + γ_i (1 − d) Q'(s', a*)``, double DQN when given the online Q.

    Double DQN (van Hasselt et al. 2016): ``a* = argmax_a Q(s', a)`` by the online network,
    valued by the target network ``Q'``. Vanilla DQN: ``max_a Q'(s', a)``.

    Args:
        rewards: ``[batch]`` rewards (the discounted sum of ``k`` rewards for ``k``-step returns).
        dones: ``[batch]`` terminations (bool or 0/1); truncations are not terminations.
        discounts: ``[batch]`` (or one) discount: ``gamma``, or ``gamma ** k`` for ``k`` steps.
        next_q_target: ``[batch, num_actions]`` the target network's values of the next state.
        next_q_online: ``[batch, num_actions]`` the online network's values of the next state;
            ``None`` for vanilla DQN.

    Returns:
        ``[batch]`` targets, without gradient.
    """
    if next_q_online is None:
        next_value = next_q_target.max(dim=1).values
    else:
        best = next_q_online.argmax(dim=1, keepdim=True)
        next_value = next_q_target.gather(1, best).squeeze(1)
    return _bootstrap(rewards, dones, discounts, next_value)


def td_loss(
    q: torch.Tensor, target: torch.Tensor, kind: Literal["huber", "mse"] = "huber"
) -> torch.Tensor:
    """The mean TD loss between the values taken and their targets.

    ``huber``: ``mean(0.5 δ²  if |δ| < 1 else |δ| − 0.5)`` with ``δ = q − y`` (smooth L1 with
    δ 1), SB3's DQN loss and the default here. ``mse``: ``mean(δ²)``, CleanRL's DQN loss and
    both libraries' critic loss for SAC and TD3.

    Args:
        q: ``[batch]`` values of the actions taken (with gradients).
        target: ``[batch]`` targets.
        kind: ``"huber"`` or ``"mse"``.

    Returns:
        The scalar loss.
    """
    if q.shape != target.shape:
        raise ValueError(
            f"q and target must have one shape, got {tuple(q.shape)} and {tuple(target.shape)}"
        )
    if kind == "huber":
        return F.smooth_l1_loss(q, target, beta=1.0)
    if kind == "mse":
        return F.mse_loss(q, target)
    raise ValueError(f"kind must be 'huber' or 'mse', got {kind!r}")


@torch.no_grad()
def sac_target(
    rewards: torch.Tensor,
    dones: torch.Tensor,
    discounts: Bound,
    next_q1: torch.Tensor,
    next_q2: torch.Tensor,
    next_log_prob: torch.Tensor,
    alpha: Bound,
) -> torch.Tensor:
    """SAC's soft target ``y = r + γ_i (1 − d) (min(Q1'(s', a'), Q2'(s', a')) − α log π(a'|s'))``.

    Args:
        rewards: ``[batch]`` rewards.
        dones: ``[batch]`` terminations; truncations are not terminations.
        discounts: ``[batch]`` (or one) discount.
        next_q1: ``[batch]`` the first target critic's value of ``(s', a')``, ``a' ~ π(s')``.
        next_q2: ``[batch]`` the second target critic's value.
        next_log_prob: ``[batch]`` ``log π(a'|s')``.
        alpha: The entropy temperature ``α`` (a number or a scalar tensor).

    Returns:
        ``[batch]`` targets, without gradient.
    """
    return _bootstrap(
        rewards, dones, discounts, torch.minimum(next_q1, next_q2) - alpha * next_log_prob
    )


def default_target_entropy(action_dim: int) -> float:
    """SAC's target entropy ``−dim(A)``, the default of SB3 (``"auto"``) and CleanRL."""
    return -float(action_dim)


def sac_entropy_loss(
    log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float
) -> torch.Tensor:
    """The temperature loss of automatic entropy tuning: ``−mean(log α · (log π(a|s) + H̄))``.

    Minimising it raises ``α`` while the policy's entropy ``−E[log π]`` is below the target
    ``H̄`` and lowers it above. This is SB3's form (as the authors' softlearning), its gradient
    in ``log α`` independent of ``α``; CleanRL multiplies by ``α = exp(log α)`` instead. Both
    stop where ``E[log π] = −H̄``. ``log_prob`` is detached here.

    Args:
        log_alpha: The scalar ``log α`` being learnt (with gradients).
        log_prob: ``[batch]`` log-probabilities of fresh actions from the current policy.
        target_entropy: ``H̄``, usually :func:`default_target_entropy`.

    Returns:
        The scalar loss.
    """
    return -(log_alpha * (log_prob.detach() + target_entropy)).mean()


@torch.no_grad()
def td3_target(
    rewards: torch.Tensor,
    dones: torch.Tensor,
    discounts: Bound,
    next_q1: torch.Tensor,
    next_q2: torch.Tensor,
) -> torch.Tensor:
    """TD3's clipped double-Q target ``y = r + γ_i (1 − d) min(Q1'(s', a'), Q2'(s', a'))``.

    Args:
        rewards: ``[batch]`` rewards.
        dones: ``[batch]`` terminations; truncations are not terminations.
        discounts: ``[batch]`` (or one) discount.
        next_q1: ``[batch]`` the first target critic's value of the smoothed ``(s', a')``.
        next_q2: ``[batch]`` the second target critic's value.

    Returns:
        ``[batch]`` targets, without gradient.
    """
    return _bootstrap(rewards, dones, discounts, torch.minimum(next_q1, next_q2))
