"""REINFORCE as a LightningModule with manual optimization."""

from __future__ import annotations

from typing import Literal

import torch
from torchmetrics import MeanMetric
from typing_extensions import override

from fedrl_lightning.data import EpisodeBatch
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.policy import CategoricalMLPPolicy, GaussianMLPPolicy, MLPPolicy
from fedrl_lightning.policy_module import PolicyModule
from fedrl_lightning.returns import (
    normalize_over_batch,
    normalize_per_episode,
    normalize_per_step,
)

__all__ = ["ReinforceModule", "reinforce_loss"]

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


class ReinforceModule(PolicyModule):
    """REINFORCE with normalised returns, one optimizer step per batch of episodes.

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
    ) -> None:
        super().__init__()
        if hidden_dim <= 0:
            raise ConfigError(f"model.hidden_dim must be positive, got {hidden_dim}")
        if lr < 0:
            raise ConfigError(f"model.lr must not be negative, got {lr}")
        if not 0 < gamma <= 1:
            raise ConfigError(f"model.gamma must be in (0, 1], got {gamma}")
        if normalize_returns not in NORMALIZERS:
            raise ConfigError(
                f"model.normalize_returns must be one of {sorted(NORMALIZERS)}, "
                f"got {normalize_returns!r}"
            )
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.policy = self._make_policy()
        self._normalize = NORMALIZERS[normalize_returns]
        self.episode_return = MeanMetric(nan_strategy="disable")
        self.loss = MeanMetric(nan_strategy="disable")
        self.entropy = MeanMetric(nan_strategy="disable")
        self.num_episodes = 0
        self.num_steps = 0
        self._step_values: dict[str, list[torch.Tensor]] = {}
        self._proximal_mu = 0.0
        self._anchor: dict[str, torch.Tensor] = {}

    def set_proximal_term(self, anchor: dict[str, torch.Tensor], mu: float) -> None:
        """Add ``mu / 2 * ||w - anchor||^2`` to the loss, as FedProx's agents do.

        Args:
            anchor: The global weights the local fit started from, by parameter name.
            mu: Weight of the term; 0 removes it.
        """
        self._proximal_mu = mu
        self._anchor = {name: anchor[name].detach().clone() for name, _ in self.named_parameters()}

    def _proximal_term(self) -> torch.Tensor:
        return (
            self._proximal_mu
            / 2
            * sum(
                (parameter - self._anchor[name].to(parameter.device)).square().sum()
                for name, parameter in self.named_parameters()
            )
        )

    def _make_policy(self) -> MLPPolicy:
        hp = self.hparams
        if not hp.continuous:
            return CategoricalMLPPolicy(hp.observation_dim, hp.num_actions, hp.hidden_dim)
        low = hp.action_low if hp.action_low is not None else [-1.0] * hp.num_actions
        high = hp.action_high if hp.action_high is not None else [1.0] * hp.num_actions
        if not len(low) == len(high) == hp.num_actions:
            raise ConfigError(
                f"model.action_low and model.action_high need {hp.num_actions} values each"
            )
        return GaussianMLPPolicy(
            hp.observation_dim, hp.num_actions, hp.hidden_dim, low, high, hp.log_std_init
        )

    @override
    def transfer_batch_to_device(
        self, batch: EpisodeBatch, device: torch.device, dataloader_idx: int
    ) -> EpisodeBatch:
        return EpisodeBatch(*(tensor.to(device) for tensor in batch))

    def _metrics(self) -> dict[str, MeanMetric]:
        return {"episode_return": self.episode_return, "loss": self.loss, "entropy": self.entropy}

    @override
    def on_train_epoch_start(self) -> None:
        for metric in self._metrics().values():
            metric.reset()
        self._step_values = {name: [] for name in self._metrics()}
        self.num_episodes = 0
        self.num_steps = 0

    @override
    def on_train_epoch_end(self) -> None:
        # Each metric takes the epoch's step values in one update: a torchmetrics update per
        # step would cost more than the step's arithmetic.
        for name, metric in self._metrics().items():
            if self._step_values[name]:
                metric.update(torch.cat(self._step_values[name]))
            self._step_values[name] = []

    @override
    def training_step(self, batch: EpisodeBatch, batch_idx: int) -> torch.Tensor:
        log_probs, entropy = self.policy.log_prob_and_entropy(batch.observations, batch.actions)
        weights = self._normalize(batch.returns, batch.mask)
        loss = reinforce_loss(log_probs, weights, batch.mask)
        if self._proximal_mu:
            loss = loss + self._proximal_term()

        optimizer = self.optimizers()
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()

        with torch.no_grad():
            mean_entropy = (entropy * batch.mask).sum() / batch.mask.sum()
        loss = loss.detach()
        self._step_values["entropy"].append(mean_entropy.reshape(1))
        self._step_values["loss"].append(loss.reshape(1))
        self._step_values["episode_return"].append(batch.episode_returns)
        self.num_episodes += batch.mask.shape[0]
        self.num_steps += int(batch.mask.sum())
        return loss

    def agent_stats(self) -> dict[str, float]:
        """What the last local fit did: episodes, environment steps and mean episode return."""
        return {
            "num_episodes": self.num_episodes,
            "num_steps": self.num_steps,
            "mean_return": float(self.episode_return.compute()),
        }

    @override
    def configure_optimizers(self) -> torch.optim.Optimizer:
        fused = self.device.type in ("cpu", "cuda")
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, fused=fused)
