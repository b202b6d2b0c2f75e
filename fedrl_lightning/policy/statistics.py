"""Running statistics kept as module buffers, which a federation pools and never averages."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from fedrl_lightning.policy.running_stats import RunningMeanStd

__all__ = ["STATISTICS_BUFFERS", "RunningStatistics", "pooled_statistics", "statistics_in"]

STATISTICS_BUFFERS = ("count", "mean", "m2")
"""The buffers, under a statistics module's name in a ``state_dict``, that hold its statistics."""


class RunningStatistics(nn.Module):
    """Count, mean and M2 per feature of what a learner observes, as three float64 buffers.

    The buffers travel in the ``state_dict`` with the weights, so they are part of every
    checkpoint, but a federation never hands them to a strategy. During a local fit,
    :meth:`observe` folds values into the buffers and, apart, into the fit's own statistics
    (:meth:`fit_statistics`): that is what an agent sends, and the server pools every agent's
    into the global buffers with Chan et al.'s parallel formula (:func:`pooled_statistics`),
    so the result equals the statistics of all the values pooled. Averaging the buffers like
    weights would not: means of unequal counts and M2s do not average.

    A :class:`~fedrl_lightning.learners.Learner` finds every instance among its submodules
    (``statistics_modules()``), whatever a subclass uses the statistics for: the observation
    normalizer standardises observations with them, the reward normalizer scales rewards.

    Args:
        num_features: Size of one observed value.
    """

    count: torch.Tensor
    mean: torch.Tensor
    m2: torch.Tensor

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(num_features, dtype=torch.float64))
        self.register_buffer("m2", torch.zeros(num_features, dtype=torch.float64))
        self._fit = RunningMeanStd(num_features)

    def statistics(self) -> RunningMeanStd:
        """The statistics in the buffers, as a :class:`RunningMeanStd`."""
        return statistics_in(self.state_dict(), "")

    def variance(self) -> torch.Tensor:
        """The population variance per feature, ``M2 / count``, float64; ones while empty."""
        count = float(self.count)
        return self.m2 / count if count > 0 else torch.ones_like(self.m2)

    def start_fit(self) -> None:
        """Forget the previous fit's own statistics; the buffers are kept."""
        self._fit = RunningMeanStd(self.mean.shape[0])

    @torch.no_grad()
    def observe(self, values: torch.Tensor) -> None:
        """Fold ``[n, feature]`` values into the buffers and into the fit's own statistics."""
        batch = RunningMeanStd(self.mean.shape[0])
        batch.update(values.detach().cpu().double().numpy())
        self._fit.merge(batch)
        pooled = self.statistics()
        pooled.merge(batch)
        self.count.fill_(pooled.count)
        self.mean.copy_(torch.from_numpy(pooled.mean))
        self.m2.copy_(torch.from_numpy(pooled.m2))

    def fit_statistics(self) -> dict[str, object]:
        """The statistics of the values this fit observed, as an agent sends them."""
        return self._fit.state_dict()


def statistics_in(state: Mapping[str, torch.Tensor], prefix: str) -> RunningMeanStd:
    """The statistics a module named ``prefix`` holds in ``state`` (a ``state_dict``)."""
    key = f"{prefix}." if prefix else ""
    stats = RunningMeanStd(state[f"{key}mean"].shape[0])
    stats.load_state_dict(
        {
            "count": int(state[f"{key}count"]),
            "mean": state[f"{key}mean"],
            "m2": state[f"{key}m2"],
        }
    )
    return stats


def pooled_statistics(
    state: Mapping[str, torch.Tensor], prefix: str, parts: list[RunningMeanStd]
) -> dict[str, torch.Tensor]:
    """The buffers of statistics module ``prefix`` once ``parts`` are pooled into ``state``'s.

    Args:
        state: The global ``state_dict``.
        prefix: The module's name in it, such as ``policy.normalizer``.
        parts: The statistics each agent observed in its fit, in agent order.

    Returns:
        ``{f"{prefix}.count": ..., f"{prefix}.mean": ..., f"{prefix}.m2": ...}``, float64.
    """
    pooled = statistics_in(state, prefix)
    for part in parts:
        pooled.merge(part)
    return {
        f"{prefix}.count": torch.tensor(float(pooled.count), dtype=torch.float64),
        f"{prefix}.mean": torch.from_numpy(pooled.mean.copy()),
        f"{prefix}.m2": torch.from_numpy(pooled.m2.copy()),
    }
