"""DQN: double DQN by default, with optional dueling heads and n-step returns."""

from __future__ import annotations

from typing import Literal, cast

import gymnasium as gym
import numpy as np
import torch
from typing_extensions import override

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.learners.off_policy import dqn_target, td_loss
from fedrl_lightning.learners.off_policy_actions import LinearSchedule
from fedrl_lightning.learners.replay_learner import ReplayLearner
from fedrl_lightning.policy.networks import QPolicy
from fedrl_lightning.rollouts.transitions import Act, StepsBatch

__all__ = ["DQN"]


class DQN(ReplayLearner):
    """Deep Q-learning from the agent's replay buffer, ε-greedy over the agent's own steps.

    Each local fit takes ``steps_per_round`` env steps, acting ε-greedily with the live
    Q-network; after each ``train_freq``-th step of the agent (once past ``learning_starts``)
    it takes ``gradient_steps`` Adam steps, each on ``batch_size`` transitions drawn from the
    agent's buffer, with the TD target ``r + γ^k (1 − terminated) Q'(s', a*)``: ``a*`` is
    the online network's argmax (double DQN) or the target's own (``double_q`` off). Every
    ``target_update_interval`` agent steps the target network ``Q'`` moves to the online one
    (a copy with ``tau`` 1). The online Q-network is what the federation aggregates; the
    target, the buffer and the step count stay with the agent (its memory) between its rounds.

    The names and defaults follow SB3's ``DQN`` where SB3 and CleanRL's ``dqn.py`` differ:
    ``learning_starts`` 100 (CleanRL 10,000), ``batch_size`` 32 (128), ``train_freq`` 4 (10),
    ``target_update_interval`` 10,000 (500), Huber loss (MSE), ``max_grad_norm`` 10 (none),
    ``exploration_final_eps`` 0.05 (both). Where neither fits a federation: ``lr`` is
    ``1e-4`` as SB3's; ``buffer_size`` is 100,000 (SB3 1,000,000, CleanRL 10,000), since every
    agent keeps one; ε decays over ``exploration_steps`` of the agent's own steps, since an
    agent's share of a run's steps (SB3's ``exploration_fraction`` of ``total_timesteps``) is
    not known in advance.

    Args:
        observation_dim: Size of a flat observation (linked from the environment by the CLI).
        num_actions: Number of discrete actions (linked from the environment).
        continuous: Must be false: DQN needs discrete actions.
        action_low: Unused (continuous actions only).
        action_high: Unused (continuous actions only).
        hidden_dim: Width of the Q-network's hidden layers.
        num_layers: Number of hidden layers (SB3's default network has two of 64).
        lr: Adam learning rate.
        gamma: Discount factor, in (0, 1].
        log_std_init: Unused (a Gaussian policy's).
        buffer_size: Transitions each agent's replay buffer holds.
        batch_size: Transitions per gradient step.
        learning_starts: Agent steps before its first gradient step.
        train_freq: Gradient steps come after every ``train_freq``-th agent step.
        gradient_steps: Gradient steps at each of those.
        steps_per_round: Env steps of each local fit.
        target_update_interval: Agent steps between target updates.
        tau: Weight of the online network in a target update, in (0, 1]; 1 copies it.
        exploration_initial_eps: ε at the agent's first step.
        exploration_final_eps: ε after ``exploration_steps`` agent steps.
        exploration_steps: Agent steps over which ε falls linearly.
        double_q: Double DQN's target (van Hasselt et al. 2016); off: ``max_a Q'(s', a)``.
        dueling: Dueling value and advantage heads (Wang et al. 2016).
        n_step: Steps each target's return spans before it bootstraps.
        loss: ``huber`` (SB3) or ``mse`` (CleanRL).
        max_grad_norm: The gradient's norm is clipped to this; ``None``: no clipping.
        persist_replay: Keep each agent's buffer from one of its rounds to the next; off, each
            round starts from an empty buffer.
        sync_targets: Start each round's target network from the weights the agent
            receives, instead of the agent's own target.
        normalize_observations: Not supported by DQN yet; must be false.
    """

    policy: QPolicy

    def __init__(
        self,
        observation_dim: int = 4,
        num_actions: int = 2,
        continuous: bool = False,
        action_low: list[float] | None = None,
        action_high: list[float] | None = None,
        hidden_dim: int = 64,
        num_layers: int = 2,
        lr: float = 1e-4,
        gamma: float = 0.99,
        log_std_init: float = 0.0,
        buffer_size: int = 100_000,
        batch_size: int = 32,
        learning_starts: int = 100,
        train_freq: int = 4,
        gradient_steps: int = 1,
        steps_per_round: int = 1000,
        target_update_interval: int = 10_000,
        tau: float = 1.0,
        exploration_initial_eps: float = 1.0,
        exploration_final_eps: float = 0.05,
        exploration_steps: int = 10_000,
        double_q: bool = True,
        dueling: bool = False,
        n_step: int = 1,
        loss: Literal["huber", "mse"] = "huber",
        max_grad_norm: float | None = 10.0,
        persist_replay: bool = True,
        sync_targets: bool = False,
        normalize_observations: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        hp = self.hparams
        self._check_hparams()
        self._check_replay_hparams()
        if continuous:
            raise ConfigError(
                "model DQN needs a discrete action space; use SAC or TD3 for continuous actions"
            )
        if normalize_observations:
            raise ConfigError("model.normalize_observations is not supported by DQN")
        if exploration_steps < 1:
            raise ConfigError(
                f"model.exploration_steps must be at least 1, got {exploration_steps}"
            )
        for name in ("exploration_initial_eps", "exploration_final_eps"):
            if not 0 <= hp[name] <= 1:
                raise ConfigError(f"model.{name} must be in [0, 1], got {hp[name]}")
        self.policy = QPolicy(observation_dim, num_actions, hidden_dim, num_layers, dueling)
        self._make_target("policy")
        self.epsilon = LinearSchedule(
            exploration_steps, exploration_initial_eps, exploration_final_eps, fraction=1.0
        )

    @property
    def target_policy(self) -> QPolicy:
        """The target Q-network, the agent's own."""
        return cast(QPolicy, self.targets["policy"])

    @override
    def behaviour(self, env: gym.Env, seed: int) -> Act:
        """ε-greedy with the live Q-network (numpy, over its live weights); ε by the step."""
        actor = self.policy.actor()
        rng = np.random.default_rng(seed)
        num_actions = self.hparams.num_actions

        def act(observation: np.ndarray, step: int) -> int:
            coin, random_action = rng.random(), int(rng.integers(num_actions))
            if coin < self.epsilon(step):
                return random_action
            return int(actor.outputs(np.asarray(observation, np.float32)).argmax())

        return act

    @override
    def training_step(self, batch: StepsBatch, batch_idx: int) -> torch.Tensor | None:
        """One DQN update on the drawn transitions, then the target's, when one is due.

        Args:
            batch: The env steps since the last item, and transitions drawn from the buffer
                (none on the fit's last item, which only reports its steps).
            batch_idx: The item's index in the local fit.

        Returns:
            The TD loss, detached; ``None`` on the last item.
        """
        data = batch.transitions
        if data is None:
            self._record_steps_and_update_targets(batch)
            return None
        hp = self.hparams
        with torch.no_grad():
            next_q_target = self.target_policy.q_values(data.next_observations)
            next_q_online = self.policy.q_values(data.next_observations) if hp.double_q else None
            target = dqn_target(
                data.rewards, data.dones, data.discounts, next_q_target, next_q_online
            )
        q_taken = self.policy.q_values(data.observations).gather(1, data.actions[:, None])
        loss = td_loss(q_taken.squeeze(1), target, hp.loss)
        self._optimize(self._with_federated_terms(loss), hp.max_grad_norm)

        self._record("loss", loss)
        self._record_steps_and_update_targets(batch)
        return loss.detach()
