"""REINFORCE: the policy gradient with normalised Monte-Carlo returns."""

from __future__ import annotations

from typing import Literal

import torch
from typing_extensions import override

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.exploration import CuriosityOptions, transitions
from fedrl_lightning.learners.base import Learner
from fedrl_lightning.rollouts.dataset import EpisodeBatch
from fedrl_lightning.rollouts.returns import (
    episode_returns_to_go,
    normalize_over_batch,
    normalize_per_episode,
    normalize_per_step,
)

__all__ = ["Reinforce", "reinforce_loss"]

NORMALIZERS = {
    "episode": normalize_per_episode,
    "batch": normalize_over_batch,
    "step": normalize_per_step,
}


def reinforce_loss(
    log_probs: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """``-sum_t log pi(a_t|s_t) * G_hat_t``, summed over each episode and averaged over episodes.

    Args:
        log_probs: ``[episodes, steps]`` log-probabilities of the actions taken.
        weights: ``[episodes, steps]`` normalised returns ``G_hat``.
        mask: ``[episodes, steps]``, true on real steps.

    Returns:
        The scalar loss.
    """
    return -(log_probs * weights * mask).sum() / log_probs.shape[0]


class Reinforce(Learner):
    """REINFORCE with normalised returns, one optimizer step per batch of episodes.

    Episodes replayed from other agents (trajectory sharing) weight each step's term by its
    truncated per-decision importance weight, ``min(rho_max, pi(a_t|s_t) / mu(a_t|s_t))``
    (:meth:`~fedrl_lightning.learners.base.Learner.replay_weights`).

    Discrete action spaces get a categorical policy; continuous ones a Gaussian policy with a
    learned log-std whose actions are clipped to the bounds. ``for_population`` sizes the
    module for a population's environment, and a trained module acts with ``act(obs)``.

    Args:
        observation_dim: Size of a flat observation (linked from the environment by the CLI).
        num_actions: Number of discrete actions, or the size of a continuous action (linked
            from the environment by the CLI).
        continuous: Whether actions are continuous (linked from the environment by the CLI).
        action_low: Lower bound of each continuous action dimension (linked by the CLI).
        action_high: Upper bound of each continuous action dimension (linked by the CLI).
        hidden_dim: Width of the policy's hidden layer.
        lr: Adam learning rate of each agent's local optimizer.
        gamma: Discount factor, in (0, 1].
        normalize_returns: ``episode`` standardises each episode's returns on its own (the
            tutorial's choice); ``batch`` standardises over every step of the batch, which
            keeps longer episodes' larger returns and so acts as a baseline; ``step``
            subtracts, at each step, the batch's mean return from that step (a per-step
            baseline) and leaves a batch of equally good episodes unchanged.
        log_std_init: Initial log standard deviation of a Gaussian policy.
        num_layers: Number of hidden layers of width ``hidden_dim``, in the policy and in a
            separate critic.
        normalize_observations: Standardise observations with running statistics (count,
            mean and M2 per feature) before the policy and the critic see them; a federation
            pools every agent's statistics, it does not average them.
        curiosity: Curiosity-driven exploration, off when ``None``: ``{kind: rnd}`` or
            ``{kind: icm}``, with ``coef``, ``intrinsic_gamma``, ``hidden_dim``, and RND's
            ``output_dim`` or ICM's ``feature_dim`` and ``beta``
            (:class:`~fedrl_lightning.exploration.CuriosityOptions`, or a plain dict of its
            fields); the intrinsic rewards, normalised and times ``coef``, are discounted
            with ``intrinsic_gamma`` and added to the returns before they are normalised.
    """

    def __init__(
        self,
        observation_dim: int = 4,
        num_actions: int = 2,
        continuous: bool = False,
        action_low: list[float] | None = None,
        action_high: list[float] | None = None,
        hidden_dim: int = 64,
        lr: float = 1e-3,
        gamma: float = 0.99,
        normalize_returns: Literal["episode", "batch", "step"] = "episode",
        log_std_init: float = 0.0,
        num_layers: int = 1,
        normalize_observations: bool = False,
        curiosity: CuriosityOptions | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._check_hparams()
        if normalize_returns not in NORMALIZERS:
            raise ConfigError(
                f"model.normalize_returns must be one of {sorted(NORMALIZERS)}, "
                f"got {normalize_returns!r}"
            )
        self.policy = self._make_policy()
        self._normalize = NORMALIZERS[normalize_returns]
        self._make_curiosity()

    @override
    def training_step(self, batch: EpisodeBatch, batch_idx: int) -> torch.Tensor:
        """One REINFORCE update on a batch of whole episodes.

        The loss is ``-sum(weight_t * log pi(a_t | s_t))`` over the real steps, the weights
        being the normalised returns (plus ``coef`` times the intrinsic returns, with
        curiosity), times the truncated importance weights on replayed episodes.

        Args:
            batch: Episodes the agent's dataset just rolled out with the live weights.
            batch_idx: The batch's index in the local fit.

        Returns:
            The loss, detached: the step is taken here, by manual optimization.
        """
        log_probs, entropy = self.policy.log_prob_and_entropy(batch.observations, batch.actions)
        returns = batch.returns
        intrinsic = self.intrinsic_rewards(batch)  # None unless curiosity
        if intrinsic is not None:
            assert self.curiosity is not None  # intrinsic rewards come from it
            gamma = self.curiosity.intrinsic_gamma
            intrinsic_returns = episode_returns_to_go(intrinsic, batch.mask, gamma)
            returns = returns + self.curiosity.coef * intrinsic_returns.to(returns.dtype)
        weights = self._normalize(returns, batch.mask)
        if batch.replayed is not None and bool(batch.replayed.any()):  # shared episodes
            weights = weights * self.replay_weights(log_probs, batch)
        loss = reinforce_loss(log_probs, weights, batch.mask)
        if intrinsic is not None:
            assert self.curiosity is not None
            loss = loss + self.curiosity.loss(transitions(batch))
        loss = self._with_federated_terms(loss)  # FedProx's and distillation's, if set

        self._optimize(loss)

        with torch.no_grad():
            mean_entropy = (entropy * batch.mask).sum() / batch.mask.sum()
        loss = loss.detach()
        self._record("entropy", mean_entropy)
        self._record("loss", loss)
        self._record_batch(batch)
        return loss
