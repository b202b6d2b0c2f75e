"""Observation normalisation with running statistics that a federation pools, never averages."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from fedrl_lightning.running_stats import RunningMeanStd

__all__ = ["STATISTICS_BUFFERS", "ObservationNormalizer", "pooled_statistics"]

STATISTICS_BUFFERS = ("count", "mean", "m2")
"""The buffers, under a normalizer's name in a ``state_dict``, that hold its statistics."""


class ObservationNormalizer(nn.Module):
    """Standardises observations, ``clip((obs - mean) / sqrt(var + eps), -clip, clip)``.

    The statistics are three float64 buffers, ``count``, ``mean`` and ``M2`` per feature,
    so they travel in the ``state_dict`` with the weights and are part of every checkpoint.
    Before any observation they are empty, and the normalizer leaves observations as they
    are (apart from clipping).

    During a local fit, :meth:`observe` folds each batch's observations into the buffers,
    after the batch's update, so the next batch is rolled out and trained with the same
    statistics. It also keeps the fit's own statistics apart (:meth:`fit_statistics`): that
    is what an agent sends, and the server pools every agent's into the global statistics
    with Chan et al.'s parallel formula (:func:`pooled_statistics`), so the result equals the
    statistics of all the observations pooled. Averaging the buffers like weights would not:
    means of unequal counts and M2s do not average.

    Args:
        observation_dim: Size of a flat observation.
        clip: Bound on the normalised observation's absolute value.
        eps: Added to the variance before its square root.
    """

    count: torch.Tensor
    mean: torch.Tensor
    m2: torch.Tensor

    def __init__(self, observation_dim: int, clip: float = 10.0, eps: float = 1e-8) -> None:
        super().__init__()
        self.clip = clip
        self.eps = eps
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(observation_dim, dtype=torch.float64))
        self.register_buffer("m2", torch.zeros(observation_dim, dtype=torch.float64))
        self._fit = RunningMeanStd(observation_dim)

    def statistics(self) -> RunningMeanStd:
        """The statistics in the buffers, as a :class:`RunningMeanStd`."""
        return statistics_in(self.state_dict(), "")

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(shift, scale)`` in float32: a normalised observation is ``(obs - shift) * scale``."""
        count = float(self.count)
        var = self.m2 / count if count > 0 else torch.ones_like(self.m2)
        return self.mean.float(), torch.rsqrt(var + self.eps).float()

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """Normalised ``[..., observation]`` observations, float32."""
        shift, scale = self.affine()
        return ((observations - shift) * scale).clamp(-self.clip, self.clip)

    def numpy_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`affine` as numpy arrays, for a numpy actor to normalise exactly as torch does."""
        shift, scale = self.affine()
        return shift.detach().cpu().numpy(), scale.detach().cpu().numpy()

    def start_fit(self) -> None:
        """Forget the previous fit's own statistics; the buffers are kept."""
        self._fit = RunningMeanStd(self.mean.shape[0])

    @torch.no_grad()
    def observe(self, observations: torch.Tensor) -> None:
        """Fold ``[n, observation]`` observations into the buffers and the fit's own statistics."""
        batch = RunningMeanStd(self.mean.shape[0])
        batch.update(observations.detach().cpu().double().numpy())
        self._fit.merge(batch)
        pooled = self.statistics()
        pooled.merge(batch)
        self.count.fill_(pooled.count)
        self.mean.copy_(torch.from_numpy(pooled.mean))
        self.m2.copy_(torch.from_numpy(pooled.m2))

    def fit_statistics(self) -> dict[str, object]:
        """The statistics of the observations this fit observed, as an agent sends them."""
        return self._fit.state_dict()


def statistics_in(state: Mapping[str, torch.Tensor], prefix: str) -> RunningMeanStd:
    """The statistics a normalizer named ``prefix`` holds in ``state`` (a ``state_dict``)."""
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
    """The buffers of normalizer ``prefix`` once ``parts`` are pooled into ``state``'s statistics.

    Args:
        state: The global ``state_dict``.
        prefix: The normalizer's name in it, such as ``policy.normalizer``.
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
