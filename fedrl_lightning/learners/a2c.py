"""A2C: advantage actor-critic with GAE(lambda), one update per batch of whole episodes."""

from __future__ import annotations

import torch
from typing_extensions import override

from fedrl_lightning.exploration import CuriosityOptions, transitions
from fedrl_lightning.learners.actor_critic import ActorCritic, CriticLayout
from fedrl_lightning.learners.losses import value_loss
from fedrl_lightning.rollouts.dataset import EpisodeBatch
from fedrl_lightning.rollouts.returns import normalize_advantages

__all__ = ["A2C"]


class A2C(ActorCritic):
    """Synchronous advantage actor-critic on the episodes of each batch.

    Each batch of whole episodes gives one update: GAE(lambda) advantages from the critic's
    values (bootstrapped from ``V(final_observation)`` after a truncation, from zero after a
    termination), the policy gradient weighted by them, the critic's squared error against
    the GAE returns, and an entropy bonus; one Adam step with the gradient's norm clipped.
    Episodes replayed from other agents (trajectory sharing) take V-trace's targets and
    importance-weighted advantages instead, truncated at ``rho_max``.

    Args:
        observation_dim: Size of a flat observation (linked from the environment by the CLI).
        num_actions: Number of discrete actions, or the size of a continuous action.
        continuous: Whether actions are continuous (a Gaussian policy).
        action_low: Lower bound of each continuous action dimension.
        action_high: Upper bound of each continuous action dimension.
        hidden_dim: Width of the policy's (and a separate critic's) hidden layer.
        lr: Adam learning rate of each agent's local optimizer.
        gamma: Discount factor, in (0, 1].
        log_std_init: Initial log standard deviation of a Gaussian policy.
        critic: ``separate``: the critic is an MLP of its own; ``shared``: a value head on the
            policy's hidden layer, which the value loss then trains too.
        gae_lambda: GAE's lambda, in [0, 1]: 0 is the one-step TD error, 1 the Monte-Carlo
            return minus the value.
        ent_coef: Weight of the entropy bonus.
        vf_coef: Weight of the value loss.
        max_grad_norm: The gradient's norm is clipped to this before each step.
        norm_adv: Standardise the advantages over the batch's steps.
        num_layers: Number of hidden layers of width ``hidden_dim``, in the policy and in a
            separate critic.
        normalize_observations: Standardise observations with running statistics (count,
            mean and M2 per feature) before the policy and the critic see them; a federation
            pools every agent's statistics, it does not average them.
        normalize_rewards: Scale rewards by ``1 / sqrt(var(R) + 1e-8)``, clipped to ±10,
            before GAE and the value targets, ``R`` being the discounted return so far
            (reset at each episode's start), as SB3's ``VecNormalize(norm_reward=True)``;
            the mean is not subtracted. A federation pools every agent's statistics of ``R``,
            as it does observation statistics.
        curiosity: Curiosity-driven exploration, off when ``None``: ``{kind: rnd}`` (random
            network distillation) or ``{kind: icm}`` (the intrinsic curiosity module), with
            ``coef`` (weight of the intrinsic advantage), ``intrinsic_gamma``, ``hidden_dim``,
            and RND's ``output_dim`` or ICM's ``feature_dim`` and ``beta``
            (:class:`~fedrl_lightning.exploration.CuriosityOptions`, or a plain dict of its
            fields). A second value head, ``intrinsic_critic``, learns the non-episodic
            intrinsic return.
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
        log_std_init: float = 0.0,
        critic: CriticLayout = "separate",
        gae_lambda: float = 0.95,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        norm_adv: bool = False,
        num_layers: int = 1,
        normalize_observations: bool = False,
        normalize_rewards: bool = False,
        curiosity: CuriosityOptions | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._build_networks()

    @override
    def training_step(self, batch: EpisodeBatch, batch_idx: int) -> torch.Tensor:
        """One A2C update: policy gradient on GAE advantages, value loss and entropy bonus.

        Args:
            batch: Episodes the agent's dataset just rolled out with the live weights.
            batch_idx: The batch's index in the local fit.

        Returns:
            The loss, detached: the one gradient-clipped step is taken here.
        """
        batch = self.scale_rewards(batch)  # unchanged unless normalize_rewards
        intrinsic = self.intrinsic_rewards(batch)  # None unless curiosity
        hp, mask = self.hparams, batch.mask
        log_probs, entropy = self.policy.log_prob_and_entropy(batch.observations, batch.actions)
        values = self.value(batch.observations)
        advantages, returns = self.advantages_and_returns(batch, values)
        advantages = advantages[mask]
        if hp.norm_adv:
            advantages = normalize_advantages(advantages)

        pg_loss = -(advantages * log_probs[mask]).mean()
        v_loss = value_loss(values[mask], returns[mask])
        entropy_bonus = entropy[mask].mean()
        loss = pg_loss - hp.ent_coef * entropy_bonus + hp.vf_coef * v_loss
        if intrinsic is not None:
            loss = loss + self._curiosity_loss(batch, intrinsic, log_probs)
        self._update(loss)

        self._record("loss", loss)
        self._record("entropy", entropy_bonus)
        self._record_batch(batch)
        return loss.detach()

    def _curiosity_loss(
        self, batch: EpisodeBatch, intrinsic: torch.Tensor, log_probs: torch.Tensor
    ) -> torch.Tensor:
        """The intrinsic terms of the loss: policy gradient, value loss and the model's loss."""
        assert self.curiosity is not None  # intrinsic rewards come from it
        mask = batch.mask
        values = self.intrinsic_value(batch.observations)
        advantages, returns = self.intrinsic_advantages_and_returns(batch, intrinsic, values)
        advantages = advantages[mask]
        if self.hparams.norm_adv:
            advantages = normalize_advantages(advantages)
        pg_loss = -(self.curiosity.coef * advantages * log_probs[mask]).mean()
        v_loss = value_loss(values[mask], returns[mask])
        return pg_loss + self.hparams.vf_coef * v_loss + self.curiosity.loss(transitions(batch))
