"""SAC: twin critics, the tanh-squashed Gaussian actor and automatic entropy tuning."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torchmetrics import MeanMetric
from typing_extensions import override

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.learners.off_policy import default_target_entropy, sac_entropy_loss, sac_target
from fedrl_lightning.learners.off_policy_actions import SquashedSample, squashed_gaussian_sample
from fedrl_lightning.learners.twin_critic import ACTOR, TwinCriticLearner
from fedrl_lightning.policy.bounded_actors import NumpySquashedGaussianActor
from fedrl_lightning.policy.bounded_policies import SquashedGaussianPolicy
from fedrl_lightning.rollouts.transitions import StepsBatch

__all__ = ["SAC"]

TEMPERATURE = 2  # the temperature's optimizer, after the critics' and the actor's


class SAC(TwinCriticLearner):
    """Soft actor-critic (Haarnoja et al. 2018) from the agent's replay buffer.

    Each local fit takes ``steps_per_round`` env steps (uniformly random ones for the agent's
    first ``learning_starts``, then the actor's samples); after each ``train_freq``-th step it
    takes ``gradient_steps`` updates, each on ``batch_size`` transitions: the critics towards
    ``r + γ (1 − terminated) (min Q'(s', a') − α log π(a'|s'))``, ``a' ~ π(s')``; the actor
    down ``α log π(a|s) − min Q(s, a)``, ``a ~ π(s)`` reparameterised; the temperature's
    ``log α`` down ``−log α (log π(a|s) + H̄)``, ``H̄ = −dim(A)`` by default; and, every
    ``target_update_interval`` of the agent's gradient updates, the target critics a Polyak
    step of ``tau``. The actor and critics are what the federation aggregates; the target
    critics, ``log α`` and the counts of steps and updates stay with the agent (its memory).

    Both CleanRL's ``sac_continuous_action.py`` and SB3's ``SAC`` have two critics of two
    layers of 256, ``batch_size`` 256, ``tau`` 0.005, ``gamma`` 0.99, one update per env step,
    Polyak target updates every update, and α learnt from 1.0 towards the target entropy
    ``−dim(A)``. Where they differ, this takes SB3's: ``lr`` 3e-4 for the critics too (CleanRL's
    ``q_lr`` is 1e-3: set ``q_lr``), ``learning_starts`` 100 (CleanRL 5,000), the actor updated
    at every update (CleanRL updates it twice every second one), ``log σ`` clamped to
    ``[-20, 2]`` (CleanRL squashes it into ``[-5, 2]``), and the temperature loss in
    ``log α`` (CleanRL's in ``α``). It takes CleanRL's critic loss, the sum of the two mean
    squared errors (SB3 halves it; Adam hardly minds) and the temperature update after the
    actor's, on the log-probabilities of the actor's own update (CleanRL draws fresh ones;
    SB3 updates α first). ``target_update_interval`` counts the agent's gradient updates
    (CleanRL's ``target_network_frequency``; SB3 counts within one ``train`` call).
    ``buffer_size`` is 100,000 (both 1,000,000), since every agent keeps one.

    Args:
        observation_dim: Size of a flat observation (linked from the environment by the CLI).
        num_actions: Size of an action (linked from the environment).
        continuous: Must be true: SAC needs a ``Box`` action space.
        action_low: The action's lower bounds (linked); ``None``: -1 each.
        action_high: The action's upper bounds (linked); ``None``: 1 each.
        hidden_dim: Width of the actor's and each critic's hidden layers.
        num_layers: Number of hidden layers of each network.
        lr: Adam learning rate of the actor and the temperature (and the critics by default).
        q_lr: Adam learning rate of the critics; ``None``: ``lr``.
        gamma: Discount factor, in (0, 1].
        log_std_init: Unused (the actor's ``log σ`` is an output of its network).
        buffer_size: Transitions each agent's replay buffer holds.
        batch_size: Transitions per update.
        learning_starts: Agent steps of random actions before its first update.
        train_freq: Updates come after every ``train_freq``-th agent step.
        gradient_steps: Updates at each of those.
        steps_per_round: Env steps of each local fit.
        target_update_interval: The agent's gradient updates between target updates.
        tau: Weight of the online critics in a target update, in (0, 1].
        autotune: Learn ``log α`` (from α = 1); off, α stays ``alpha``.
        alpha: The fixed temperature when ``autotune`` is off (CleanRL's 0.2).
        target_entropy: The entropy ``H̄`` the temperature aims at; ``None``: ``−dim(A)``.
        n_step: Steps each target's return spans before it bootstraps (its entropy terms are
            the last state's only).
        persist_replay: Keep each agent's buffer from one of its rounds to the next.
        sync_targets: Start each round's target critics from the weights the agent receives.
    """

    policy: SquashedGaussianPolicy

    def __init__(
        self,
        observation_dim: int = 3,
        num_actions: int = 1,
        continuous: bool = True,
        action_low: list[float] | None = None,
        action_high: list[float] | None = None,
        hidden_dim: int = 256,
        num_layers: int = 2,
        lr: float = 3e-4,
        q_lr: float | None = None,
        gamma: float = 0.99,
        log_std_init: float = 0.0,
        buffer_size: int = 100_000,
        batch_size: int = 256,
        learning_starts: int = 100,
        train_freq: int = 1,
        gradient_steps: int = 1,
        steps_per_round: int = 1000,
        target_update_interval: int = 1,
        tau: float = 0.005,
        autotune: bool = True,
        alpha: float = 0.2,
        target_entropy: float | None = None,
        n_step: int = 1,
        persist_replay: bool = True,
        sync_targets: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._check_hparams()
        self._check_replay_hparams()
        self._check_continuous()
        if not autotune and alpha <= 0:
            raise ConfigError(f"model.alpha must be positive, got {alpha}")
        low, high = self._bounds()
        policy = SquashedGaussianPolicy(
            observation_dim, num_actions, hidden_dim, low, high, num_layers
        )
        self._make_networks(policy, "critic")
        self.target_entropy = (
            target_entropy if target_entropy is not None else default_target_entropy(num_actions)
        )
        self.log_alpha = self._initial_log_alpha()
        """``log α``: the agent's own, outside the ``state_dict``; learnt with ``autotune``."""
        self.temperature = MeanMetric(nan_strategy="disable")

    def _initial_log_alpha(self) -> torch.Tensor:
        """``log 1`` to learn from, or the fixed ``log alpha``."""
        hp = self.hparams
        value = 0.0 if hp.autotune else math.log(hp.alpha)
        return torch.tensor(value, requires_grad=hp.autotune)

    @override
    def _apply(self, fn: Callable[..., Any], recurse: bool = True) -> SAC:
        # .to(device) and .double() move log α as they move the targets
        super()._apply(fn, recurse)
        if hasattr(self, "log_alpha"):
            with torch.no_grad():
                moved = fn(self.log_alpha)
            if moved is not self.log_alpha:
                self.log_alpha = moved.detach().requires_grad_(self.hparams.autotune)
        return self

    @override
    def _metrics(self) -> dict[str, MeanMetric]:
        return {**super()._metrics(), "alpha": self.temperature}

    @override
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:  # type: ignore[override]
        """The critics' and actor's Adam, and the temperature's at ``lr`` with ``autotune``."""
        optimizers = super().configure_optimizers()
        if self.hparams.autotune:
            optimizers.append(self._adam([self.log_alpha], self.hparams.lr * self.lr_scale))
        return optimizers

    @override
    def _exploration_actor(self) -> NumpySquashedGaussianActor:
        return self.policy.actor()

    def _sample(self, observations: torch.Tensor) -> SquashedSample:
        """A reparameterised action of the live actor, drawn with the updates' generator."""
        mean, log_std = self.policy.mean_and_log_std(observations)
        return squashed_gaussian_sample(mean, log_std, self.noise, *self.policy.bounds())

    @override
    def training_step(self, batch: StepsBatch, batch_idx: int) -> torch.Tensor | None:
        """One SAC update: the critics, the actor, the temperature, then the targets if due.

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
        alpha = self.log_alpha.detach().exp()
        with torch.no_grad():
            next_action = self._sample(data.next_observations)
            next_q1, next_q2 = self.target_critic(data.next_observations, next_action.action)
            target = sac_target(
                data.rewards, data.dones, data.discounts, next_q1, next_q2,
                next_action.log_prob, alpha,
            )  # fmt: skip
        critic_loss = self._critic_step(data, target)

        with self._critics_frozen():
            action = self._sample(data.observations)
            q1_pi, q2_pi = self.critic(data.observations, action.action)
            actor_loss = (alpha * action.log_prob - torch.minimum(q1_pi, q2_pi)).mean()
            self._step(ACTOR, actor_loss)

        if hp.autotune:
            alpha_loss = sac_entropy_loss(self.log_alpha, action.log_prob, self.target_entropy)
            self._step(TEMPERATURE, alpha_loss, federated=False)

        self.num_updates += 1
        if self.num_updates % hp.target_update_interval == 0:
            self._update_targets()
        self._record("loss", critic_loss)
        self._record("actor_loss", actor_loss)
        self._record("entropy", -action.log_prob.detach().mean())
        self._record("alpha", alpha)
        self._record_steps(batch)
        return critic_loss.detach()

    @override
    def agent_memory(self) -> dict[str, Any]:
        """:meth:`TwinCriticLearner.agent_memory` and ``log_alpha``."""
        return {**super().agent_memory(), "log_alpha": self.log_alpha.detach().cpu().clone()}

    @override
    def load_agent_memory(self, memory: Mapping[str, Any] | None) -> None:
        """:meth:`TwinCriticLearner.load_agent_memory`, and ``log α`` (its start on a first fit)."""
        super().load_agent_memory(memory)
        log_alpha = None if memory is None else memory.get("log_alpha")
        if log_alpha is None:
            log_alpha = self._initial_log_alpha()
        elif not isinstance(log_alpha, torch.Tensor) or log_alpha.shape != ():
            raise ValueError(f"agent memory has log_alpha {log_alpha!r}")
        with torch.no_grad():
            self.log_alpha.copy_(log_alpha)
