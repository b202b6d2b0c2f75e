"""The base of SAC and TD3: a bounded actor, twin critics, their targets and separate optimizers.

The actor and the critics are the online networks, in the ``state_dict`` that the federation
aggregates; their targets, the count of gradient updates (which the target updates and TD3's
delay follow) and anything a subclass adds (SAC's temperature) are the agent's memory.

The critics, the actor (and SAC's temperature) each have an Adam optimizer of their own, as in
CleanRL. A step zeroes its own optimizer's gradients, back-propagates its loss (FedProx's
proximal term included) and steps only that optimizer; the actor's loss is computed with the
critics frozen, so it gives them no gradient at all. Each parameter so gets FedProx's term
exactly once per step of its own optimizer. Per-FedAvg's paired steps and gradient sharing
assume one loss and one optimizer, and are refused.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

import gymnasium as gym
import numpy as np
import torch
from torchmetrics import MeanMetric
from typing_extensions import override

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.learners.meta_step import MetaStep
from fedrl_lightning.learners.off_policy import polyak_update, td_loss
from fedrl_lightning.learners.replay_learner import ReplayLearner
from fedrl_lightning.policy.bounded_actors import NumpyTanhActor
from fedrl_lightning.policy.bounded_policies import BoundedPolicy, TwinCritic
from fedrl_lightning.rollouts.replay import ReplayBatch
from fedrl_lightning.rollouts.transitions import Act

if TYPE_CHECKING:
    from fedrl_lightning.federation.strategies.base import Strategy

__all__ = ["ACTOR", "CRITIC", "TwinCriticLearner"]

CRITIC, ACTOR = 0, 1  # the optimizers, in configure_optimizers' order


class TwinCriticLearner(ReplayLearner):
    """An off-policy actor-critic over a ``Box`` action space: SAC's and TD3's common part.

    Subclasses save their hyperparameters (``hidden_dim``, ``num_layers``, ``lr`` for the
    actor, ``q_lr`` for the critics, those of :class:`ReplayLearner`), call
    :meth:`_make_networks` with their actor, and give :meth:`_exploration_actor`.
    Before ``learning_starts`` of the agent's steps it acts uniformly at random within the
    bounds, as both CleanRL and SB3 do.
    """

    policy: BoundedPolicy
    critic: TwinCritic

    def __init__(self) -> None:
        super().__init__()
        self.num_updates = 0
        """The agent's gradient updates over the whole run: the target updates' clock."""
        self.noise_seed: int | None = None
        """Seeds the updates' sampling noise; ``None``: a draw from torch's generator, which
        each local fit seeds."""
        self._noise: torch.Generator | None = None
        self.actor_loss = MeanMetric(nan_strategy="disable")

    def _check_continuous(self) -> None:
        """Refuse a discrete action space with one line naming the model."""
        if not self.hparams.continuous:
            raise ConfigError(
                f"model {type(self).__name__} needs a continuous action space (a Box); "
                "use DQN for discrete actions"
            )

    def _bounds(self) -> tuple[list[float], list[float]]:
        """The action bounds, ``[-1, 1]`` for each dimension when not given."""
        hp = self.hparams
        low = hp.action_low if hp.action_low is not None else [-1.0] * hp.num_actions
        high = hp.action_high if hp.action_high is not None else [1.0] * hp.num_actions
        if not len(low) == len(high) == hp.num_actions:
            raise ConfigError(
                f"model.action_low and model.action_high need {hp.num_actions} values each"
            )
        if not all(lo < hi for lo, hi in zip(low, high, strict=True)):
            raise ConfigError("model.action_low must be below model.action_high everywhere")
        return list(low), list(high)

    def _make_networks(self, policy: BoundedPolicy, *targets: str) -> None:
        """Take ``policy`` as the actor, build the twin critics and the ``targets`` named."""
        hp = self.hparams
        self.policy = policy
        self.critic = TwinCritic(hp.observation_dim, hp.num_actions, hp.hidden_dim, hp.num_layers)
        for name in targets:
            self._make_target(name)

    @property
    def target_critic(self) -> TwinCritic:
        """The target critics, the agent's own."""
        return cast(TwinCritic, self.targets["critic"])

    @override
    def _metrics(self) -> dict[str, MeanMetric]:
        return {**super()._metrics(), "actor_loss": self.actor_loss}

    @override
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:  # type: ignore[override]
        """Adam for the critics (at ``q_lr``, or ``lr``) and for the actor (at ``lr``).

        Both are scaled by the round's learning-rate scale.
        """
        hp, scale = self.hparams, self.lr_scale
        q_lr = hp.q_lr if hp.q_lr is not None else hp.lr
        return [self._adam(self.critic.parameters(), q_lr * scale), self._adam(
            self.policy.parameters(), hp.lr * scale
        )]  # fmt: skip

    def _adam(self, parameters: Any, lr: float) -> torch.optim.Optimizer:
        """Adam over ``parameters``, fused on CPU and CUDA."""
        return torch.optim.Adam(parameters, lr=lr, fused=self.device.type in ("cpu", "cuda"))

    def _step(self, index: int, loss: torch.Tensor, federated: bool = True) -> None:
        """Descend ``loss`` with optimizer ``index`` alone (and FedProx's term if ``federated``)."""
        optimizer = self.optimizers()[index]  # type: ignore[index]
        optimizer.zero_grad()
        self.manual_backward(self._with_federated_terms(loss) if federated else loss)
        optimizer.step()

    @contextmanager
    def _critics_frozen(self) -> Iterator[None]:
        """Within it, the critics take no gradients: for the actor's loss, which climbs them.

        Their optimizer would not apply such gradients anyway; freezing only skips computing
        them.
        """
        self.critic.requires_grad_(False)
        try:
            yield
        finally:
            self.critic.requires_grad_(True)

    def _critic_step(self, data: ReplayBatch, target: torch.Tensor) -> torch.Tensor:
        """Step both critics towards ``target``: the sum of their mean squared errors.

        Returns:
            The loss, which CleanRL sums (SB3 halves the sum; Adam hardly minds).
        """
        q1, q2 = self.critic(data.observations, data.actions)
        loss = td_loss(q1, target, "mse") + td_loss(q2, target, "mse")
        self._step(CRITIC, loss)
        return loss

    def _update_targets(self) -> None:
        """Move every target network ``tau`` of the way to its online network."""
        for name, target in self.targets.items():
            polyak_update(target, getattr(self, name), self.hparams.tau)

    @property
    def noise(self) -> torch.Generator:
        """The generator of the updates' sampling noise, on the module's device."""
        if self._noise is None or self._noise.device != self.device:
            seed = self.noise_seed
            if seed is None:
                seed = int(torch.randint(2**62, ()))
            self._noise = torch.Generator(self.device).manual_seed(seed)
        return self._noise

    @override
    def on_train_start(self) -> None:
        """Seed the updates' noise afresh for this fit."""
        self._noise = None
        super().on_train_start()

    @override
    def behaviour(self, env: gym.Env, seed: int) -> Act:
        """Uniform random actions before ``learning_starts``, then the exploration actor's.

        On CPU the numpy actor views the live weights; on an accelerator it holds a copy,
        taken again after each update.
        """
        rng = np.random.default_rng(seed)
        low, high = self.policy.action_low, self.policy.action_high
        learning_starts = self.hparams.learning_starts
        live = self.device.type == "cpu"
        actor, updates = self._exploration_actor(), self.num_updates

        def act(observation: np.ndarray, step: int) -> np.ndarray:
            nonlocal actor, updates
            if step < learning_starts:
                return rng.uniform(low, high).astype(np.float32)
            if not live and updates != self.num_updates:
                actor, updates = self._exploration_actor(), self.num_updates
            noise = actor.noise(rng, 1)[0]
            return actor.sample(np.asarray(observation, np.float32), noise)

        return act

    def _exploration_actor(self) -> NumpyTanhActor:
        """The numpy actor the agent explores with, over the live weights."""
        raise NotImplementedError

    @override
    def agent_memory(self) -> dict[str, Any]:
        """:meth:`ReplayLearner.agent_memory` and ``num_updates``."""
        return {**super().agent_memory(), "num_updates": self.num_updates}

    @override
    def load_agent_memory(self, memory: Mapping[str, Any] | None) -> None:
        """:meth:`ReplayLearner.load_agent_memory`, and the count of gradient updates."""
        super().load_agent_memory(memory)
        updates = 0 if memory is None else memory.get("num_updates", 0)
        if not isinstance(updates, int) or updates < 0:
            raise ValueError(f"agent memory has num_updates {updates!r}")
        self.num_updates = updates

    @override
    def check_strategy(self, strategy: Strategy) -> None:
        """Refuse Per-FedAvg's paired steps, which assume one loss and one optimizer.

        Raises:
            ConfigError: Naming the strategy.
        """
        if strategy.meta_step is not None:
            raise ConfigError(
                f"trainer.strategy {type(strategy).__name__} takes paired meta steps of one "
                f"loss, and model {type(self).__name__} steps its critics and actor apart: "
                "choose another strategy (FedAvg, FedProx, ...)"
            )

    @override
    def set_meta_step(self, step: MetaStep | None) -> None:
        """Refuse Per-FedAvg's steps (see :meth:`check_strategy`); ``None`` is plain updates."""
        if step is not None:
            raise ConfigError(f"model {type(self).__name__} cannot take Per-FedAvg's meta steps")
        super().set_meta_step(step)

    @override
    def check_gradient_mode(self) -> None:
        """Refuse gradient sharing: there is no one loss whose gradient an agent could send.

        Raises:
            ConfigError: Always.
        """
        raise ConfigError(
            f"model {type(self).__name__} steps its critics and actor on separate losses, so "
            "an agent has no one gradient to send: trainer.server Gradient is not supported"
        )
