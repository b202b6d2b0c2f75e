"""Observation normalisation with running statistics that a federation pools, never averages."""

from __future__ import annotations

import numpy as np
import torch

from fedrl_lightning.policy.statistics import RunningStatistics

__all__ = ["ObservationNormalizer"]


class ObservationNormalizer(RunningStatistics):
    """Standardises observations, ``clip((obs - mean) / sqrt(var + eps), -clip, clip)``.

    The statistics are the count, mean and M2 per feature of every observation, in the
    float64 buffers of :class:`~fedrl_lightning.policy.statistics.RunningStatistics`, so they
    are part of every checkpoint and a federation pools them as statistics. Before any
    observation they are empty, and the normalizer leaves observations as they are (apart
    from clipping).

    During a local fit, the learner folds each batch's observations in (:meth:`observe`)
    after the batch's update, so the next batch is rolled out and trained with the same
    statistics.

    Args:
        observation_dim: Size of a flat observation.
        clip: Bound on the normalised observation's absolute value.
        eps: Added to the variance before its square root.
    """

    def __init__(self, observation_dim: int, clip: float = 10.0, eps: float = 1e-8) -> None:
        super().__init__(observation_dim)
        self.clip = clip
        self.eps = eps

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(shift, scale)`` in float32: a normalised observation is ``(obs - shift) * scale``."""
        return self.mean.float(), torch.rsqrt(self.variance() + self.eps).float()

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """Normalised ``[..., observation]`` observations, float32."""
        shift, scale = self.affine()
        return ((observations - shift) * scale).clamp(-self.clip, self.clip)

    def numpy_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`affine` as numpy arrays, for a numpy actor to normalise exactly as torch does."""
        shift, scale = self.affine()
        return shift.detach().cpu().numpy(), scale.detach().cpu().numpy()
