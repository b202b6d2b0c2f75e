"""What a local fit reports: its episodes, steps, mean metrics, statistics and visited cells."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torchmetrics import MeanMetric
from typing_extensions import override

from fedrl_lightning.exploration import Curiosity
from fedrl_lightning.exploration.coverage import CoverageGrid
from fedrl_lightning.policy.networks import MLPPolicy
from fedrl_lightning.policy.normalization import RunningStatistics
from fedrl_lightning.rollouts.dataset import EpisodeBatch

__all__ = ["FitRecord"]


class FitRecord(L.LightningModule):
    """The part of a :class:`~fedrl_lightning.learners.Learner` that records its local fit.

    A ``training_step`` feeds it through :meth:`_record_batch` (the batch's own episodes and
    steps, and their returns) and :meth:`_record` (any other metric, such as the loss); at the
    fit's end :meth:`agent_stats` is what the client sends the server, and
    :meth:`fit_statistics` what the running statistics observed. The step values are kept as
    tensors and fed to each torchmetrics ``MeanMetric`` once per fit. The learner provides
    ``policy`` and ``curiosity``.

    Attributes:
        coverage_grid: The grid whose cells the fit's observations fall in are reported
            (the ``Coverage`` component); ``None``: none.
    """

    policy: MLPPolicy
    curiosity: Curiosity | None
    intrinsic_reward: MeanMetric  # made with the curiosity, by the learner

    def __init__(self) -> None:
        super().__init__()
        self.episode_return = MeanMetric(nan_strategy="disable")
        self.loss = MeanMetric(nan_strategy="disable")
        self.entropy = MeanMetric(nan_strategy="disable")
        self.num_episodes = 0
        self.num_steps = 0
        self._step_values: dict[str, list[torch.Tensor]] = {}
        self.coverage_grid: CoverageGrid | None = None
        self._visited: set[int] = set()

    def _metrics(self) -> dict[str, MeanMetric]:
        metrics = {
            "episode_return": self.episode_return,
            "loss": self.loss,
            "entropy": self.entropy,
        }
        if self.curiosity is not None:
            metrics["intrinsic_reward"] = self.intrinsic_reward
        return metrics

    def metric_names(self) -> list[str]:
        """The training metrics a local fit reports besides its return, such as ``loss``.

        A round's row has each as ``train_<name>``, averaged over the round's agents.
        """
        return [name for name in self._metrics() if name != "episode_return"]

    @override
    def on_train_epoch_start(self) -> None:
        for metric in self._metrics().values():
            metric.reset()
        self._step_values = {name: [] for name in self._metrics()}
        self.num_episodes = 0
        self.num_steps = 0
        self._visited = set()
        for statistics in self.statistics_modules().values():
            statistics.start_fit()

    @override
    def on_train_batch_end(self, outputs: Any, batch: EpisodeBatch, batch_idx: int) -> None:
        # After the batch's update: the batch was rolled out and trained with the same
        # statistics, and the next one will be both with these observations folded in.
        if self.policy.normalizer is not None:
            self.policy.normalizer.observe(batch.observations[batch.own_mask()])
        if self.coverage_grid is not None:  # the cells of the agent's own steps
            observations = batch.observations[batch.own_mask()].detach().cpu().numpy()
            self._visited.update(self.coverage_grid.cells(observations).tolist())

    def statistics_modules(self) -> dict[str, RunningStatistics]:
        """The running statistics in the module, by name: a federation pools them as statistics.

        These are the :class:`~fedrl_lightning.policy.normalization.RunningStatistics` among the
        submodules: the policy's observation normalizer, an actor-critic's reward normalizer.
        Their buffers are in the ``state_dict``, but a strategy never aggregates them; the
        server pools what each agent observed (:meth:`fit_statistics`) into them instead.
        """
        return {
            name: module
            for name, module in self.named_modules()
            if isinstance(module, RunningStatistics)
        }

    def fit_statistics(self) -> dict[str, dict[str, Any]]:
        """What each of :meth:`statistics_modules` observed in this local fit, by name."""
        return {name: module.fit_statistics() for name, module in self.statistics_modules().items()}

    @override
    def on_train_epoch_end(self) -> None:
        # Each metric takes the epoch's step values in one update: a torchmetrics update per
        # step would cost more than the step's arithmetic.
        for name, metric in self._metrics().items():
            if self._step_values[name]:
                metric.update(torch.cat(self._step_values[name]))
            self._step_values[name] = []

    def _record(self, name: str, value: torch.Tensor) -> None:
        """Add a detached scalar or vector to the epoch's values of metric ``name``."""
        self._step_values[name].append(value.detach().reshape(-1))

    def _record_batch(self, batch: EpisodeBatch) -> None:
        """Count a batch's own episodes and steps, and record their returns (not replayed ones)."""
        own = ~batch.replayed_episodes()
        self._step_values["episode_return"].append(batch.episode_returns[own])
        self.num_episodes += int(own.sum())
        self.num_steps += int(batch.own_mask().sum())

    def agent_stats(self) -> dict[str, Any]:
        """What the last local fit did: episodes, environment steps and mean episode return.

        ``metrics`` holds the mean of each other recorded metric (the loss and the entropy,
        and whatever a learner adds, such as PPO's ``approx_kl``); the server reports each
        as a ``train_<name>`` column, averaged over the round's agents. With a
        :attr:`coverage_grid`, ``visited_cells`` holds the ids of the cells the fit's
        observations fell in.
        """
        visited = {}
        if self.coverage_grid is not None:
            visited = {"visited_cells": torch.tensor(sorted(self._visited), dtype=torch.int64)}
        return visited | {
            "num_episodes": self.num_episodes,
            "num_steps": self.num_steps,
            "mean_return": float(self.episode_return.compute()),
            "metrics": {
                name: float(metric.compute())
                for name, metric in self._metrics().items()
                if name != "episode_return" and metric.update_called
            },
        }
