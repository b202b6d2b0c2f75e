"""How off-policy learners draw actions: ε-greedy, SAC's squashed Gaussian, TD3's smoothing.

Every random draw comes from a ``torch.Generator`` the caller passes, so that a resumed run
draws the same numbers. The targets and losses these actions feed are in
:mod:`fedrl_lightning.learners.off_policy`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = [
    "Bound",
    "LinearSchedule",
    "SquashedSample",
    "epsilon_greedy",
    "smoothed_target_action",
    "squashed_gaussian_sample",
]

Bound = torch.Tensor | float
"""An action bound: one number for every dimension, or a ``[action_dim]`` tensor."""
_LOG_TWO = math.log(2.0)
_HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)


@dataclass(frozen=True)
class LinearSchedule:
    """ε for ε-greedy exploration, as a pure function of the agent's own env steps.

    ``ε(t) = start + (end − start) · min(t / (fraction · total_steps), 1)``: a line from
    ``start`` to ``end`` over the first ``fraction`` of ``total_steps``, then ``end``.
    It is CleanRL's ``linear_schedule`` and SB3's ``get_linear_fn``. ``start`` 1.0 and ``end``
    0.05 are both libraries' defaults; ``fraction`` 0.1 is SB3's ``exploration_fraction``
    (CleanRL's is 0.5). The schedule holds no state: the step is the agent's counter, saved
    with the agent, so there is nothing here to save.

    Args:
        total_steps: The env steps the agent will take in the whole run (CleanRL's
            ``total_timesteps``), positive.
        start: ε at step 0 (SB3's ``exploration_initial_eps``, CleanRL's ``start_e``).
        end: ε from the end of the line on (``exploration_final_eps``, ``end_e``).
        fraction: The share of ``total_steps`` the line spans, in ``[0, 1]``; 0 gives ``end``
            from the first step.
    """

    total_steps: int
    start: float = 1.0
    end: float = 0.05
    fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.total_steps <= 0:
            raise ValueError(f"total_steps must be positive, got {self.total_steps}")
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1], got {self.fraction}")
        for name in ("start", "end"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    def __call__(self, step: int) -> float:
        """ε for the agent's env step ``step``.

        Args:
            step: How many env steps the agent has taken in the whole run (not this round).

        Returns:
            ε, in ``[0, 1]``; exactly ``end`` from the end of the line on.
        """
        duration = self.fraction * self.total_steps
        if step >= duration:
            return self.end
        return self.start + (self.end - self.start) * max(step, 0) / duration


def epsilon_greedy(
    q_values: torch.Tensor, epsilon: float, generator: torch.Generator
) -> torch.Tensor:
    """Greedy actions, each replaced by a uniform random action with probability ``epsilon``.

    ``a_i = U{0..A−1}`` if ``u_i < ε`` else ``argmax_a Q(s_i, a)`` (the first of tied maxima),
    with one coin ``u_i`` for each row. CleanRL and SB3 toss one coin for the whole batch of
    envs; a coin per row keeps each env's exploration independent of how many envs step
    together. Every call draws the same numbers from ``generator`` whatever ``epsilon`` is, so
    the generator's state depends only on how many calls were made.

    Args:
        q_values: ``[batch, num_actions]`` action values.
        epsilon: The probability of a random action, in ``[0, 1]``.
        generator: The source of the coins and random actions, on ``q_values``' device.

    Returns:
        ``[batch]`` int64 actions.
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    batch, num_actions = q_values.shape
    device = q_values.device
    coins = torch.rand(batch, generator=generator, device=device)
    random_actions = torch.randint(num_actions, (batch,), generator=generator, device=device)
    return torch.where(coins < epsilon, random_actions, q_values.argmax(dim=1))


class SquashedSample(NamedTuple):
    """A draw from the tanh-squashed Gaussian policy."""

    action: torch.Tensor
    """``[batch, action_dim]`` the sampled action, within the bounds (with gradients)."""
    log_prob: torch.Tensor
    """``[batch]`` its log-density, the tanh and scaling corrections included."""
    mean_action: torch.Tensor
    """``[batch, action_dim]`` the deterministic action ``tanh(mean)``, scaled to the bounds."""


def _scale_and_bias(
    reference: torch.Tensor, low: Bound | None, high: Bound | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(high − low) / 2`` and ``(high + low) / 2`` on ``reference``'s device and dtype."""
    low_t = torch.as_tensor(-1.0 if low is None else low, dtype=reference.dtype)
    high_t = torch.as_tensor(1.0 if high is None else high, dtype=reference.dtype)
    low_t, high_t = low_t.to(reference.device), high_t.to(reference.device)
    return (high_t - low_t) / 2, (high_t + low_t) / 2


def squashed_gaussian_sample(
    mean: torch.Tensor,
    log_std: torch.Tensor,
    generator: torch.Generator,
    low: Bound | None = None,
    high: Bound | None = None,
) -> SquashedSample:
    """Samples SAC's action ``a = c + s · tanh(u)``, ``u = μ + σ ε``, and its log-density.

    With ``s = (high − low) / 2`` and ``c = (high + low) / 2``, the change of variables gives
    ``log π(a) = Σ_i [log N(u_i; μ_i, σ_i) − log(1 − tanh²(u_i)) − log s_i]``, where
    ``log(1 − tanh²(u)) = 2 (log 2 − u − softplus(−2u))`` is computed in that stable form
    (exact for large ``|u|``, where ``1 − tanh²`` rounds to 0). With bounds this is CleanRL's
    convention (the density of the scaled action); without them ``s = 1``: SB3's convention,
    an action in ``[-1, 1]`` that the caller rescales. The sample is reparameterised: gradients
    flow to ``mean`` and ``log_std``. Bounding ``log_std`` is the actor's job (SB3 clamps it to
    ``[-20, 2]``, CleanRL squashes it into ``[-5, 2]``).

    Args:
        mean: ``[batch, action_dim]`` the Gaussian's mean ``μ``.
        log_std: ``[batch, action_dim]`` its log standard deviation ``log σ``.
        generator: The source of ``ε ~ N(0, I)``, on ``mean``'s device.
        low: The action's lower bounds (``[action_dim]`` or one number); ``None``: -1.
        high: The action's upper bounds; ``None``: 1.

    Returns:
        The action, its log-probability and the deterministic action.
    """
    noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    std = log_std.exp()
    pre_tanh = mean + std * noise
    # (u - μ) / σ is ε exactly, so log N(u; μ, σ) needs no division.
    gaussian_log_prob = -0.5 * noise.square() - log_std - _HALF_LOG_TWO_PI
    log_tanh_derivative = 2.0 * (_LOG_TWO - pre_tanh - F.softplus(-2.0 * pre_tanh))
    scale, bias = _scale_and_bias(mean, low, high)
    log_prob = (gaussian_log_prob - log_tanh_derivative - scale.log()).sum(dim=-1)
    action = bias + scale * torch.tanh(pre_tanh)
    return SquashedSample(action, log_prob, bias + scale * torch.tanh(mean))


def smoothed_target_action(
    target_action: torch.Tensor,
    noise_std: float,
    noise_clip: float,
    low: Bound,
    high: Bound,
    generator: torch.Generator,
) -> torch.Tensor:
    """TD3's target policy smoothing: ``a' = clip(μ'(s') + s · clip(σ ε, −c, c), low, high)``.

    ``ε ~ N(0, I)`` and ``s = (high − low) / 2``: the noise's ``noise_std`` (σ) and
    ``noise_clip`` (c) are in units of the half-range, as both libraries have them (SB3 adds
    them to actions in ``[-1, 1]``; CleanRL multiplies by the action scale). Their defaults
    are 0.2 and 0.5 in both (``target_policy_noise`` / ``policy_noise``, ``target_noise_clip``
    / ``noise_clip``).

    Args:
        target_action: ``[batch, action_dim]`` the target actor's actions for ``s'``.
        noise_std: σ, non-negative.
        noise_clip: c, non-negative.
        low: The action's lower bounds (``[action_dim]`` or one number).
        high: The action's upper bounds.
        generator: The source of ``ε``, on ``target_action``'s device.

    Returns:
        ``[batch, action_dim]`` the smoothed actions, without gradient.
    """
    with torch.no_grad():
        scale, bias = _scale_and_bias(target_action, low, high)
        noise = torch.randn(
            target_action.shape,
            generator=generator,
            device=target_action.device,
            dtype=target_action.dtype,
        )
        noise = (noise * noise_std).clamp(-noise_clip, noise_clip) * scale
        return torch.clamp(target_action + noise, bias - scale, bias + scale)
