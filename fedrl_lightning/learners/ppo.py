"""PPO: the clipped surrogate, several epochs of shuffled minibatches over each batch."""

from __future__ import annotations

import torch
from torchmetrics import MeanMetric
from typing_extensions import override

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.exploration import CuriosityOptions, transitions
from fedrl_lightning.learners.actor_critic import ActorCritic, CriticLayout
from fedrl_lightning.learners.losses import ppo_policy_loss, value_loss
from fedrl_lightning.rollouts.dataset import EpisodeBatch
from fedrl_lightning.rollouts.returns import normalize_advantages

__all__ = ["PPO", "minibatch_indices"]


def minibatch_indices(
    num_samples: int, num_minibatches: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """One shuffled pass over ``num_samples`` steps, split into ``num_minibatches`` minibatches.

    Args:
        num_samples: Steps in the batch.
        num_minibatches: Minibatches per pass; the last is smaller when they do not divide
            ``num_samples``, and there are fewer when there are fewer steps than minibatches.
        generator: The CPU generator the permutation is drawn from.

    Returns:
        Index tensors that together hold every step once.
    """
    size = -(-num_samples // num_minibatches)
    return list(torch.randperm(num_samples, generator=generator).split(size))


class PPO(ActorCritic):
    """Proximal policy optimisation on the steps of each batch of whole episodes.

    Episodes replayed from other agents (trajectory sharing) keep their behaviour policy's
    log-probabilities, so their ratio is taken against the policy that acted; their
    advantages and value targets are V-trace's, truncated at ``rho_max``, without the
    importance weight that the clipped ratio already applies.

    The ratio is taken against the behaviour policy's log-probabilities, which the rollout
    recorded in the batch (``batch.log_probs``). The dataset rolls each batch out with exactly
    the module's current weights (it has a length, so Lightning does not prefetch), so the
    values and GAE advantages computed before the first update are the behaviour policy's
    critic's. The padded
    ``[episodes, steps]`` batch is flattened to its real steps, and ``update_epochs`` passes
    go over them in ``num_minibatches`` shuffled minibatches, each one clipped Adam step.

    The shuffling draws from a ``torch.Generator`` whose seed is drawn with ``torch.randint``
    at the start of each ``training_step``; a local fit seeds torch from (run seed, round,
    agent) before it builds the module, so the minibatches derive from those three.

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
            policy's hidden layer.
        gae_lambda: GAE's lambda, in [0, 1].
        ent_coef: Weight of the entropy bonus.
        vf_coef: Weight of the value loss.
        max_grad_norm: The gradient's norm is clipped to this before each step.
        clip_coef: Half-width of the policy ratio's clip range.
        update_epochs: Passes over each batch.
        num_minibatches: Minibatches per pass.
        norm_adv: Standardise the advantages within each minibatch.
        clip_vloss: Clip the value's change to ``clip_coef`` in the value loss.
        target_kl: Stop the batch's passes after one whose approximate KL divergence from
            the behaviour policy exceeds this; ``None``: never.
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

    rho_weighted_advantages = False  # the clipped ratio against mu is the importance weight

    def __init__(
        self,
        observation_dim: int = 4,
        num_actions: int = 2,
        continuous: bool = False,
        action_low: list[float] | None = None,
        action_high: list[float] | None = None,
        hidden_dim: int = 64,
        lr: float = 3e-4,
        gamma: float = 0.99,
        log_std_init: float = 0.0,
        critic: CriticLayout = "separate",
        gae_lambda: float = 0.95,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        clip_coef: float = 0.2,
        update_epochs: int = 4,
        num_minibatches: int = 4,
        norm_adv: bool = True,
        clip_vloss: bool = True,
        target_kl: float | None = None,
        num_layers: int = 1,
        normalize_observations: bool = False,
        normalize_rewards: bool = False,
        curiosity: CuriosityOptions | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        for name in ("update_epochs", "num_minibatches"):
            if self.hparams[name] < 1:
                raise ConfigError(f"model.{name} must be at least 1, got {self.hparams[name]}")
        if clip_coef <= 0:
            raise ConfigError(f"model.clip_coef must be positive, got {clip_coef}")
        if target_kl is not None and target_kl <= 0:
            raise ConfigError(f"model.target_kl must be positive or null, got {target_kl}")
        self._build_networks()
        self.approx_kl = MeanMetric(nan_strategy="disable")
        self.clip_fraction = MeanMetric(nan_strategy="disable")

    @override
    def _metrics(self) -> dict[str, MeanMetric]:
        return {
            **super()._metrics(),
            "approx_kl": self.approx_kl,
            "clip_fraction": self.clip_fraction,
        }

    @override
    def check_gradient_mode(self) -> None:
        """One pass only: at weights that never change, more passes repeat the same gradients."""
        if self.hparams.update_epochs != 1:
            raise ConfigError(
                f"model.update_epochs ({self.hparams.update_epochs}) must be 1 with "
                "trainer.server Gradient: the agents compute one gradient at the global "
                "weights, so further passes over the batch would repeat it"
            )

    def minibatch_generator(self) -> torch.Generator:
        """A CPU generator for this batch's shuffles, seeded from torch's global generator."""
        seed = int(torch.randint(0, 2**62, ()))
        return torch.Generator().manual_seed(seed)

    @override
    def training_step(self, batch: EpisodeBatch, batch_idx: int) -> torch.Tensor:
        """PPO's updates on a batch: ``update_epochs`` passes of shuffled minibatches.

        Advantages and value targets are computed once, before the first pass; each minibatch
        takes one step of the clipped surrogate, the (optionally clipped) value loss and the
        entropy bonus. A pass whose approximate KL exceeds ``target_kl`` is the last.

        Args:
            batch: Episodes the agent's dataset just rolled out with the live weights.
            batch_idx: The batch's index in the local fit.

        Returns:
            The last minibatch's loss, detached.
        """
        batch = self.scale_rewards(batch)  # unchanged unless normalize_rewards
        intrinsic = self.intrinsic_rewards(batch)  # None unless curiosity
        hp, mask = self.hparams, batch.mask
        generator = self.minibatch_generator()
        observations, actions = batch.observations[mask], batch.actions[mask]
        old_log_probs = batch.log_probs[mask]  # the behaviour policy's, from the rollout
        with torch.no_grad():
            values = self.value(batch.observations)
            advantages, returns = self.advantages_and_returns(batch, values)
        old_values, advantages, returns = values[mask], advantages[mask], returns[mask]
        if intrinsic is not None:  # a second value head for the non-episodic intrinsic return
            assert self.curiosity is not None  # intrinsic rewards come from it
            steps = transitions(batch)
            with torch.no_grad():
                int_values = self.intrinsic_value(batch.observations)
                int_advantages, int_returns = self.intrinsic_advantages_and_returns(
                    batch, intrinsic, int_values
                )
            old_int_values, int_returns = int_values[mask], int_returns[mask]
            advantages = advantages + self.curiosity.coef * int_advantages[mask]
        clip_v = hp.clip_coef if hp.clip_vloss else None

        for _ in range(hp.update_epochs):
            for idx in minibatch_indices(len(observations), hp.num_minibatches, generator):
                idx = idx.to(observations.device)
                new_log_probs, entropy = self.policy.log_prob_and_entropy(
                    observations[idx], actions[idx]
                )
                mb_advantages = advantages[idx]
                if hp.norm_adv:
                    mb_advantages = normalize_advantages(mb_advantages)
                pg_loss = ppo_policy_loss(
                    new_log_probs, old_log_probs[idx], mb_advantages, hp.clip_coef
                )
                v_loss = value_loss(
                    self.value(observations[idx]), returns[idx], old_values[idx], clip_v
                )
                entropy_bonus = entropy.mean()
                loss = pg_loss - hp.ent_coef * entropy_bonus + hp.vf_coef * v_loss
                if intrinsic is not None:
                    assert self.curiosity is not None
                    int_v = self.intrinsic_value(observations[idx])
                    v_int_loss = value_loss(int_v, int_returns[idx], old_int_values[idx], clip_v)
                    loss = loss + hp.vf_coef * v_int_loss + self.curiosity.loss(steps.take(idx))
                self._update(loss)
                approx_kl = self._record_minibatch(
                    loss, entropy_bonus, new_log_probs - old_log_probs[idx]
                )
            if hp.target_kl is not None and approx_kl > hp.target_kl:
                break

        self._record_batch(batch)
        return loss.detach()

    @torch.no_grad()
    def _record_minibatch(
        self, loss: torch.Tensor, entropy: torch.Tensor, log_ratio: torch.Tensor
    ) -> torch.Tensor:
        """Record a minibatch's loss, entropy, approximate KL and clip fraction; return the KL.

        The KL estimate is ``mean((r - 1) - log r)`` (Schulman's k3), the ratio ``r`` being
        the new policy's probability over the behaviour policy's.
        """
        ratio = log_ratio.exp()
        approx_kl = ((ratio - 1) - log_ratio).mean()
        self._record("loss", loss)
        self._record("entropy", entropy)
        self._record("approx_kl", approx_kl)
        self._record("clip_fraction", ((ratio - 1).abs() > self.hparams.clip_coef).float().mean())
        return approx_kl
