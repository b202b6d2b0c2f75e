"""TD3: twin critics, target policy smoothing and delayed actor and target updates."""

from __future__ import annotations

from typing import cast

import torch
from typing_extensions import override

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.learners.off_policy import td3_target
from fedrl_lightning.learners.off_policy_actions import smoothed_target_action
from fedrl_lightning.learners.twin_critic import ACTOR, TwinCriticLearner
from fedrl_lightning.policy.bounded_actors import NumpyTanhActor
from fedrl_lightning.policy.bounded_policies import DeterministicPolicy
from fedrl_lightning.rollouts.transitions import StepsBatch

__all__ = ["TD3"]


class TD3(TwinCriticLearner):
    """Twin delayed DDPG (Fujimoto et al. 2018) from the agent's replay buffer.

    Each local fit takes ``steps_per_round`` env steps (uniformly random ones for the agent's
    first ``learning_starts``, then the actor's action plus Gaussian noise of
    ``exploration_noise`` half-ranges, clipped to the bounds); after each ``train_freq``-th
    step it takes ``gradient_steps`` updates, each on ``batch_size`` transitions: the critics
    towards ``r + γ (1 − terminated) min Q'(s', a')``, ``a'`` the target actor's action
    smoothed by noise of ``target_policy_noise`` clipped to ``target_noise_clip`` (both in
    half-ranges); and, every ``policy_delay``-th update of the agent, the actor up
    ``Q1(s, μ(s))`` and the target actor and critics a Polyak step of ``tau``. The actor and
    critics are what the federation aggregates; the targets and the counts of steps and
    updates stay with the agent (its memory).

    CleanRL's ``td3_continuous_action.py`` and SB3's ``TD3`` agree on ``tau`` 0.005, ``gamma``
    0.99, ``batch_size`` 256, one update per env step, the delay 2 (CleanRL's
    ``policy_frequency``, SB3's ``policy_delay``) and the smoothing noise 0.2 clipped to 0.5
    (``policy_noise`` / ``target_policy_noise``, ``noise_clip`` / ``target_noise_clip``: SB3's
    names here). Where they differ, this takes SB3's ``lr`` 1e-3 (CleanRL 3e-4) and
    ``learning_starts`` 100 (CleanRL 25,000), and counts the delay in the agent's gradient
    updates as SB3 does (CleanRL in env steps, the same at one update a step); it takes
    CleanRL's networks of two layers of 256 (SB3's are 400 and 300), its Gaussian
    exploration noise of 0.1 (SB3 has none by default) and its critic loss, the sum of the two
    mean squared errors (SB3 halves it). ``buffer_size`` is 100,000 (both 1,000,000), since
    every agent keeps one.

    Args:
        observation_dim: Size of a flat observation (linked from the environment by the CLI).
        num_actions: Size of an action (linked from the environment).
        continuous: Must be true: TD3 needs a ``Box`` action space.
        action_low: The action's lower bounds (linked); ``None``: -1 each.
        action_high: The action's upper bounds (linked); ``None``: 1 each.
        hidden_dim: Width of the actor's and each critic's hidden layers.
        num_layers: Number of hidden layers of each network.
        lr: Adam learning rate of the actor (and the critics by default).
        q_lr: Adam learning rate of the critics; ``None``: ``lr``.
        gamma: Discount factor, in (0, 1].
        log_std_init: Unused (the actor is deterministic).
        buffer_size: Transitions each agent's replay buffer holds.
        batch_size: Transitions per update.
        learning_starts: Agent steps of random actions before its first update.
        train_freq: Updates come after every ``train_freq``-th agent step.
        gradient_steps: Updates at each of those.
        steps_per_round: Env steps of each local fit.
        tau: Weight of the online networks in a target update, in (0, 1].
        policy_delay: The agent's critic updates per actor and target update.
        target_policy_noise: Standard deviation of the target action's noise, in half-ranges.
        target_noise_clip: Its bound, in half-ranges.
        exploration_noise: Standard deviation of the acting noise, in half-ranges.
        n_step: Steps each target's return spans before it bootstraps.
        persist_replay: Keep each agent's buffer from one of its rounds to the next.
        sync_targets: Start each round's target actor and critics from the weights the agent
            receives.
    """

    policy: DeterministicPolicy

    def __init__(
        self,
        observation_dim: int = 3,
        num_actions: int = 1,
        continuous: bool = True,
        action_low: list[float] | None = None,
        action_high: list[float] | None = None,
        hidden_dim: int = 256,
        num_layers: int = 2,
        lr: float = 1e-3,
        q_lr: float | None = None,
        gamma: float = 0.99,
        log_std_init: float = 0.0,
        buffer_size: int = 100_000,
        batch_size: int = 256,
        learning_starts: int = 100,
        train_freq: int = 1,
        gradient_steps: int = 1,
        steps_per_round: int = 1000,
        tau: float = 0.005,
        policy_delay: int = 2,
        target_policy_noise: float = 0.2,
        target_noise_clip: float = 0.5,
        exploration_noise: float = 0.1,
        n_step: int = 1,
        persist_replay: bool = True,
        sync_targets: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._check_hparams()
        self._check_replay_hparams()
        self._check_continuous()
        if policy_delay < 1:
            raise ConfigError(f"model.policy_delay must be at least 1, got {policy_delay}")
        for name in ("target_policy_noise", "target_noise_clip", "exploration_noise"):
            if self.hparams[name] < 0:
                raise ConfigError(f"model.{name} must not be negative, got {self.hparams[name]}")
        low, high = self._bounds()
        actor = DeterministicPolicy(observation_dim, num_actions, hidden_dim, low, high, num_layers)
        self._make_networks(actor, "policy", "critic")

    @property
    def target_policy(self) -> DeterministicPolicy:
        """The target actor, the agent's own."""
        return cast(DeterministicPolicy, self.targets["policy"])

    @override
    def _exploration_actor(self) -> NumpyTanhActor:
        return self.policy.actor(self.hparams.exploration_noise)

    @override
    def training_step(self, batch: StepsBatch, batch_idx: int) -> torch.Tensor | None:
        """One TD3 update: the critics, then, every ``policy_delay``-th, the actor and targets.

        Args:
            batch: The env steps since the last item, and transitions drawn from the buffer
                (none on the fit's last item, which only reports its steps).
            batch_idx: The item's index in the local fit.

        Returns:
            The critics' loss, detached; ``None`` on the last item.
        """
        data = batch.transitions
        if data is None:
            self._record_steps(batch)
            return None
        hp = self.hparams
        with torch.no_grad():
            next_action = smoothed_target_action(
                self.target_policy.action(data.next_observations),
                hp.target_policy_noise, hp.target_noise_clip, *self.policy.bounds(), self.noise,
            )  # fmt: skip
            next_q1, next_q2 = self.target_critic(data.next_observations, next_action)
            target = td3_target(data.rewards, data.dones, data.discounts, next_q1, next_q2)
        critic_loss = self._critic_step(data, target)

        self.num_updates += 1
        if self.num_updates % hp.policy_delay == 0:
            with self._critics_frozen():
                actions = self.policy.action(data.observations)
                actor_loss = -self.critic.first(data.observations, actions).mean()
                self._step(ACTOR, actor_loss)
            self._update_targets()
            self._record("actor_loss", actor_loss)
        self._record("loss", critic_loss)
        self._record_steps(batch)
        return critic_loss.detach()
