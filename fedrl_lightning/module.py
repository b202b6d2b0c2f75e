"""REINFORCE as a LightningModule with manual optimization."""

from __future__ import annotations

import lightning as L
import torch
from torch.distributions import Categorical
from torchmetrics import MeanMetric
from typing_extensions import override

from fedrl_lightning.data import EpisodeBatch
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.policy import CategoricalMLPPolicy
from fedrl_lightning.returns import normalize_per_episode

__all__ = ["ReinforceModule", "reinforce_loss"]


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


class ReinforceModule(L.LightningModule):
    """REINFORCE with per-episode normalised returns, one optimizer step per batch of episodes.

    Calling the module on observations returns the policy's action distribution, so a trained
    module deploys as ``module(obs).sample()``.

    Args:
        observation_dim: Size of a flat observation (linked from the environment by the CLI).
        num_actions: Number of discrete actions (linked from the environment by the CLI).
        hidden_dim: Width of the policy's hidden layer.
        lr: Adam learning rate of each agent's local optimizer.
        gamma: Discount factor, in (0, 1].
    """

    def __init__(
        self,
        observation_dim: int = 4,
        num_actions: int = 2,
        hidden_dim: int = 64,
        lr: float = 1e-3,
        gamma: float = 0.99,
    ) -> None:
        super().__init__()
        if hidden_dim <= 0:
            raise ConfigError(f"model.hidden_dim must be positive, got {hidden_dim}")
        if lr < 0:
            raise ConfigError(f"model.lr must not be negative, got {lr}")
        if not 0 < gamma <= 1:
            raise ConfigError(f"model.gamma must be in (0, 1], got {gamma}")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.policy = CategoricalMLPPolicy(observation_dim, num_actions, hidden_dim)
        self.episode_return = MeanMetric(nan_strategy="disable")
        self.loss = MeanMetric(nan_strategy="disable")
        self.entropy = MeanMetric(nan_strategy="disable")
        self.num_episodes = 0
        self.num_steps = 0
        self._step_values: dict[str, list[torch.Tensor]] = {}

    @override
    def forward(self, observations: torch.Tensor) -> Categorical:
        return self.policy(observations)

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
        log_pi = torch.log_softmax(self.policy.logits(batch.observations), dim=-1)
        log_probs = log_pi.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
        weights = normalize_per_episode(batch.returns, batch.mask)
        loss = reinforce_loss(log_probs, weights, batch.mask)

        optimizer = self.optimizers()
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()

        with torch.no_grad():
            entropy = -(log_pi.exp() * log_pi).sum(-1)
            mean_entropy = (entropy * batch.mask).sum() / batch.mask.sum()
        loss = loss.detach()
        self._step_values["entropy"].append(mean_entropy.reshape(1))
        self._step_values["loss"].append(loss.reshape(1))
        self._step_values["episode_return"].append(batch.episode_returns)
        self.num_episodes += batch.actions.shape[0]
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
