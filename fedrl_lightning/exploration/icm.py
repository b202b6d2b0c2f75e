"""The intrinsic curiosity module (Pathak et al., 2017): surprise in a learned feature space."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from typing_extensions import override

from fedrl_lightning.exploration.base import Curiosity, Transitions, mlp

__all__ = ["ICM", "inverse_loss"]


def inverse_loss(predicted: torch.Tensor, actions: torch.Tensor, continuous: bool) -> torch.Tensor:
    """The inverse model's loss: cross-entropy of the action taken, or its squared error.

    Args:
        predicted: ``[n, num_actions]`` logits (discrete) or predicted actions (continuous).
        actions: ``[n]`` int64 actions, or ``[n, action_dim]`` continuous ones.
        continuous: Whether actions are continuous.
    """
    if continuous:
        return 0.5 * (predicted - actions).square().sum(dim=-1).mean()
    return F.cross_entropy(predicted, actions)


class ICM(Curiosity):
    """An encoder ``phi`` with inverse and forward models; the reward is the forward error.

    The inverse model predicts the action from ``(phi(s), phi(s'))``, which trains the
    encoder to keep what the agent's actions affect. The forward model predicts
    ``phi(s')`` from ``(phi(s), a)``; the intrinsic reward is its error,
    ``0.5 * ||f(phi(s), a) - phi(s')||^2``. The loss is
    ``(1 - beta) * L_inverse + beta * L_forward``; the forward loss trains the forward model
    only (the features it sees are detached), so it cannot shrink the features to zero.

    Args:
        observation_dim: Size of a flat observation.
        num_actions: Discrete actions, or the size of a continuous action.
        continuous: Whether actions are continuous.
        coef: Weight of the intrinsic advantage (or reward).
        intrinsic_gamma: Discount of the intrinsic return.
        hidden_dim: Width of the hidden layers.
        feature_dim: Size of ``phi(s)``.
        beta: Weight of the forward loss against the inverse one.
    """

    def __init__(
        self,
        observation_dim: int,
        num_actions: int,
        continuous: bool,
        coef: float,
        intrinsic_gamma: float,
        hidden_dim: int = 64,
        feature_dim: int = 32,
        beta: float = 0.2,
    ) -> None:
        super().__init__(observation_dim, coef, intrinsic_gamma)
        self.num_actions = num_actions
        self.continuous = continuous
        self.beta = beta
        self.encoder = mlp([observation_dim, hidden_dim, feature_dim])
        self.inverse = mlp([2 * feature_dim, hidden_dim, num_actions])
        self.forward_model = mlp([feature_dim + num_actions, hidden_dim, feature_dim])

    def _action_inputs(self, actions: torch.Tensor) -> torch.Tensor:
        if self.continuous:
            return actions.float()
        return F.one_hot(actions.long(), self.num_actions).float()

    def _errors_and_inverse(self, steps: Transitions) -> tuple[torch.Tensor, torch.Tensor]:
        observations, actions, next_obs = steps
        features = self.encoder(self.normalize(observations))
        next_features = self.encoder(self.normalize(next_obs))
        predicted_actions = self.inverse(torch.cat([features, next_features], dim=-1))
        forward_inputs = torch.cat([features.detach(), self._action_inputs(actions)], dim=-1)
        predicted = self.forward_model(forward_inputs)
        errors = 0.5 * (predicted - next_features.detach()).square().sum(dim=-1)
        return errors, inverse_loss(predicted_actions, actions, self.continuous)

    @override
    @torch.no_grad()
    def raw_rewards(self, steps: Transitions) -> torch.Tensor:
        return self._errors_and_inverse(steps)[0]

    @override
    def loss(self, steps: Transitions) -> torch.Tensor:
        errors, inverse = self._errors_and_inverse(steps)
        return (1 - self.beta) * inverse + self.beta * errors.mean()
