"""The base of actor-critic learners: a critic beside the policy, and GAE over episode batches."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.learners.base import Learner
from fedrl_lightning.policy.normalization import RewardNormalizer
from fedrl_lightning.rollouts.dataset import EpisodeBatch
from fedrl_lightning.rollouts.returns import gae, vtrace

__all__ = ["CRITICS", "ActorCritic", "CriticLayout"]

CriticLayout = Literal["separate", "shared"]
"""The ``critic`` hyperparameter's values."""

CRITICS = ("separate", "shared")
"""Critic layouts: an MLP of its own, or a value head on the policy's hidden layer."""


class ActorCritic(Learner):
    """A :class:`Learner` with a value network ``critic``, federated with the policy.

    Subclasses call ``super().__init__()`` and ``save_hyperparameters()`` (with ``critic``,
    ``gae_lambda``, ``ent_coef``, ``vf_coef`` and ``max_grad_norm`` among their arguments),
    then :meth:`_build_networks`. The critic is a submodule, so its weights are in the
    ``state_dict``: every strategy, attack, FedProx term and traffic count covers them.

    With ``normalize_rewards`` among the hyperparameters, a :class:`RewardNormalizer`
    (``reward_normalizer``) scales each batch's rewards before GAE and the critic's targets
    (:meth:`scale_rewards`); its statistics are pooled across agents as the observation
    normalizer's are. Without it there is no such module, and the ``state_dict`` is as before.
    """

    critic: nn.Module
    reward_normalizer: RewardNormalizer | None
    rho_weighted_advantages = True  # replayed episodes' advantages carry V-trace's rho

    def _build_networks(self) -> None:
        """Check the shared hyperparameters, then build the policy and, after it, the critic."""
        self._check_hparams()
        hp = self.hparams
        if hp.critic not in CRITICS:
            raise ConfigError(f"model.critic must be one of {list(CRITICS)}, got {hp.critic!r}")
        if not 0 <= hp.gae_lambda <= 1:
            raise ConfigError(f"model.gae_lambda must be in [0, 1], got {hp.gae_lambda}")
        for name in ("ent_coef", "vf_coef"):
            if hp[name] < 0:
                raise ConfigError(f"model.{name} must not be negative, got {hp[name]}")
        if hp.max_grad_norm <= 0:
            raise ConfigError(f"model.max_grad_norm must be positive, got {hp.max_grad_norm}")
        self.policy = self._make_policy()
        self.critic = self._make_critic()
        normalize = hp.get("normalize_rewards", False)
        self.reward_normalizer = RewardNormalizer(hp.gamma) if normalize else None
        if hp.get("curiosity") is not None:  # a second value head, for intrinsic returns
            self.intrinsic_critic = self._make_critic()
        self._make_curiosity()

    def _make_critic(self) -> nn.Module:
        """A value network of the ``critic`` layout: a head on the policy's trunk, or an MLP."""
        hp = self.hparams
        if hp.critic == "shared":
            return nn.Linear(hp.hidden_dim, 1)
        layers: list[nn.Module] = [nn.Linear(hp.observation_dim, hp.hidden_dim), nn.ReLU()]
        for _ in range(hp.num_layers - 1):
            layers += [nn.Linear(hp.hidden_dim, hp.hidden_dim), nn.ReLU()]
        return nn.Sequential(*layers, nn.Linear(hp.hidden_dim, 1))

    def scale_rewards(self, batch: EpisodeBatch) -> EpisodeBatch:
        """The batch with its rewards scaled by the reward normalizer; as it is without one.

        The batch's discounted returns are folded into the statistics first, and its rewards
        are then scaled with them (see :class:`RewardNormalizer`). Only ``rewards`` change:
        ``episode_returns``, which the fit reports, stay the environment's.
        """
        if self.reward_normalizer is None:
            return batch
        self.reward_normalizer.observe_episodes(batch.rewards, batch.own_mask())
        return batch._replace(rewards=self.reward_normalizer(batch.rewards))

    def value(self, observations: torch.Tensor, critic: nn.Module | None = None) -> torch.Tensor:
        """The critic's ``V(s)`` for ``[..., observation]`` observations, shape ``[...]``.

        A separate critic sees the observations as the policy's first layer does, normalised
        with the policy's statistics when it normalises them. ``critic``: another value
        head of the same layout, such as ``intrinsic_critic``.
        """
        critic = self.critic if critic is None else critic
        if self.hparams.critic == "shared":
            return critic(self.policy.features(observations)).squeeze(-1)
        return critic(self.policy.normalize(observations)).squeeze(-1)

    def intrinsic_value(self, observations: torch.Tensor) -> torch.Tensor:
        """The intrinsic critic's ``V_int(s)``, shape ``[...]`` (curiosity only)."""
        return self.value(observations, self.intrinsic_critic)

    @torch.no_grad()
    def intrinsic_advantages_and_returns(
        self, batch: EpisodeBatch, rewards: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """GAE advantages and targets of the intrinsic return, which is non-episodic.

        As in Burda et al., an episode's end is not the end of the intrinsic return: every
        episode, terminated or truncated, bootstraps from ``V_int(final_observation)``, and
        the discount is ``curiosity.intrinsic_gamma``. Replayed episodes get V-trace's, as in
        :meth:`advantages_and_returns`.
        """
        never_terminal = torch.zeros_like(batch.terminated)
        final_values = self.intrinsic_value(batch.final_observations)
        assert self.curiosity is not None  # intrinsic rewards come from it
        gamma = self.curiosity.intrinsic_gamma
        return self._corrected_gae(batch, rewards, values, final_values, never_terminal, gamma)

    @torch.no_grad()
    def advantages_and_returns(
        self, batch: EpisodeBatch, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """GAE(gamma, lambda) advantages and the critic's targets for a batch, without gradients.

        A truncated episode bootstraps from ``V(final_observation)``, since a time limit is
        not a terminal state; a terminated one from zero (see
        :func:`~fedrl_lightning.rollouts.returns.gae`).

        Episodes replayed from other agents get V-trace's targets and advantages instead
        (:func:`~fedrl_lightning.rollouts.returns.vtrace`, truncated at ``rho_max``), the
        advantages multiplied by the truncated importance weight unless
        ``rho_weighted_advantages`` is false (PPO, whose ratio is the weight).

        Args:
            batch: Whole episodes, padded.
            values: ``[episodes, steps]`` the critic's values of the batch's observations.

        Returns:
            ``(advantages, returns)``, both ``[episodes, steps]`` and zero on padding.
        """
        final_values = self.value(batch.final_observations)
        return self._corrected_gae(
            batch, batch.rewards, values, final_values, batch.terminated, self.hparams.gamma
        )

    def _corrected_gae(
        self,
        batch: EpisodeBatch,
        rewards: torch.Tensor,
        values: torch.Tensor,
        final_values: torch.Tensor,
        terminated: torch.Tensor,
        gamma: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """GAE on own episodes and V-trace on replayed ones, for one reward stream and critic."""
        advantages, returns = gae(
            rewards,
            values.detach(),
            final_values,
            terminated,
            batch.truncated,
            batch.mask,
            gamma,
            self.hparams.gae_lambda,
        )
        replayed = batch.replayed_episodes()
        if not bool(replayed.any()):
            return advantages, returns
        log_probs, _ = self.policy.log_prob_and_entropy(batch.observations, batch.actions)
        traced = vtrace(
            rewards,
            values.detach(),
            final_values,
            terminated,
            batch.mask,
            log_probs - batch.log_probs,
            gamma,
            self.hparams.gae_lambda,
            self.rho_max,
        )
        off_policy = traced.advantages
        if self.rho_weighted_advantages:
            off_policy = off_policy * traced.rhos
        replayed = replayed.unsqueeze(1)
        return torch.where(replayed, off_policy, advantages), torch.where(
            replayed, traced.returns, returns
        )

    def _update(self, loss: torch.Tensor) -> None:
        """One optimizer step on ``loss`` (plus FedProx's and distillation's terms), clipped."""
        self._optimize(self._with_federated_terms(loss), self.hparams.max_grad_norm)
