"""The policy as a self-contained ``nn.Module`` from raw observations to environment actions.

:func:`exported_policy` copies a trained
:class:`~fedrl_lightning.policy.networks.MLPPolicy`'s weights,
and its observation normalisation frozen as a constant affine map, into a module whose
``forward`` is all that TorchScript or ONNX need: no ``torch.distributions``, no numpy, no
running statistics.
"""

# No ``from __future__ import annotations``: TorchScript reads the annotations as objects.
import copy

import torch
from torch import nn

from fedrl_lightning.policy.bounded_actors import LOG_STD_MAX, LOG_STD_MIN
from fedrl_lightning.policy.bounded_policies import (
    BoundedPolicy,
    DeterministicPolicy,
    SquashedGaussianPolicy,
)
from fedrl_lightning.policy.networks import CategoricalMLPPolicy, GaussianMLPPolicy, MLPPolicy

__all__ = [
    "ExportedCategoricalPolicy",
    "ExportedContinuousPolicy",
    "ExportedDeterministicPolicy",
    "ExportedGaussianPolicy",
    "ExportedPolicy",
    "ExportedSquashedGaussianPolicy",
    "exported_policy",
]


class ExportedPolicy(nn.Module):
    """An MLP policy's forward pass, observations to actions, deterministic unless given noise.

    The normalisation is the policy's at export time, ``clip((obs - shift) * scale, -c, c)``
    exactly as :class:`~fedrl_lightning.policy.normalization.ObservationNormalizer` and the
    numpy actors compute it; without normalisation, ``shift`` is 0 and ``scale`` 1 and the
    observations pass through unclipped.

    Args:
        policy: The trained policy; its layers are copied, so later training leaves this as is.
    """

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, policy: MLPPolicy) -> None:
        super().__init__()
        observation_dim = policy.hidden.in_features
        self.observation_dim = observation_dim
        self.output_dim = policy.head.out_features
        self.normalizes = policy.normalizer is not None
        if policy.normalizer is not None:
            shift, scale = policy.normalizer.affine()
            self.clip = float(policy.normalizer.clip)
        else:
            shift, scale = torch.zeros(observation_dim), torch.ones(observation_dim)
            self.clip = float("inf")
        self.register_buffer("shift", shift.detach().clone().float())
        self.register_buffer("scale", scale.detach().clone().float())
        self.hidden = copy.deepcopy(policy.hidden)
        self.deeper = copy.deepcopy(policy.deeper)
        self.head = copy.deepcopy(policy.head)
        self.requires_grad_(False)
        self.eval()

    def outputs(self, observations: torch.Tensor) -> torch.Tensor:
        """The head's output (logits or means) for ``[batch, observation_dim]`` observations."""
        x = observations.to(torch.float32)
        if self.normalizes:
            x = torch.clamp((x - self.shift) * self.scale, -self.clip, self.clip)
        x = torch.relu(self.hidden(x))
        for layer in self.deeper:
            x = torch.relu(layer(x))
        return self.head(x)

    def noise_shape(self) -> list[int]:
        """The noise input's shape after the batch axis: ``[num_actions]`` or ``[action_dim]``."""
        return [self.output_dim]


class ExportedCategoricalPolicy(ExportedPolicy):
    """Discrete actions, ``int64 [batch]``: ``argmax(logits + noise)``, noise standard Gumbel.

    Without noise (or with zero noise) that is the most likely action; with standard Gumbel
    noise of shape ``[batch, num_actions]`` it is a sample of ``softmax(logits)``, the
    Gumbel-max trick of :class:`~fedrl_lightning.policy.actors.NumpyCategoricalActor`.
    """

    def forward(
        self, observations: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Actions for ``[batch, observation_dim]`` observations.

        Args:
            observations: Raw observations, as the environment returns them.
            noise: Standard Gumbel noise ``[batch, num_actions]`` to sample; ``None``: the
                most likely action.

        Returns:
            The actions, ``int64 [batch]``.
        """
        logits = self.outputs(observations)
        if noise is not None:
            logits = logits + noise
        return torch.argmax(logits, dim=-1)


class ExportedContinuousPolicy(ExportedPolicy):
    """A policy of continuous actions, ``float32 [batch, action_dim]`` within ``[low, high]``."""

    low: torch.Tensor
    high: torch.Tensor


class ExportedGaussianPolicy(ExportedContinuousPolicy):
    """Continuous actions, ``float32 [batch, action_dim]``, clipped to the action bounds.

    Without noise (or with zero noise) the action is the Gaussian's mean; with standard normal
    noise of shape ``[batch, action_dim]`` it is ``mean + exp(log_std) * noise``, as
    :class:`~fedrl_lightning.policy.actors.NumpyGaussianActor` samples it. Either is then clipped to
    ``[low, high]``, as the environment is given it.

    Args:
        policy: The trained Gaussian policy.
    """

    std: torch.Tensor

    def __init__(self, policy: GaussianMLPPolicy) -> None:
        super().__init__(policy)
        self.register_buffer("std", policy.log_std.detach().exp().clone().float())
        self.register_buffer("low", torch.as_tensor(policy.action_low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(policy.action_high, dtype=torch.float32))

    def forward(
        self, observations: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Actions for ``[batch, observation_dim]`` observations.

        Args:
            observations: Raw observations, as the environment returns them.
            noise: Standard normal noise ``[batch, action_dim]`` to sample; ``None``: the mean.

        Returns:
            The actions, ``float32 [batch, action_dim]``, within the action bounds.
        """
        actions = self.outputs(observations)
        if noise is not None:
            actions = actions + self.std * noise
        # Minimum and Maximum rather than a clamp: ONNX's Clip takes only scalar bounds.
        return torch.maximum(torch.minimum(actions, self.high), self.low)


class _ExportedTanhPolicy(ExportedContinuousPolicy):
    """SAC's and TD3's actors: actions ``c + s · tanh(·)``, ``s`` and ``c`` from the bounds."""

    scale: torch.Tensor
    bias: torch.Tensor

    def __init__(self, policy: BoundedPolicy) -> None:
        super().__init__(policy)
        self.output_dim = policy.action_dim
        low = torch.as_tensor(policy.action_low, dtype=torch.float32)
        high = torch.as_tensor(policy.action_high, dtype=torch.float32)
        self.register_buffer("low", low)
        self.register_buffer("high", high)
        self.register_buffer("scale", (high - low) / 2)
        self.register_buffer("bias", (high + low) / 2)

    def squash(self, pre_tanh: torch.Tensor) -> torch.Tensor:
        """``c + s · tanh(u)``, kept within the bounds against rounding."""
        actions = self.bias + self.scale * torch.tanh(pre_tanh)
        return torch.maximum(torch.minimum(actions, self.high), self.low)


class ExportedSquashedGaussianPolicy(_ExportedTanhPolicy):
    """SAC's actor: ``c + s · tanh(μ + σ · noise)``; without noise, ``c + s · tanh(μ)``.

    With standard normal noise ``[batch, action_dim]`` it samples as
    :class:`~fedrl_lightning.policy.bounded_actors.NumpySquashedGaussianActor` does.

    Args:
        policy: The trained SAC actor.
    """

    def __init__(self, policy: SquashedGaussianPolicy) -> None:
        super().__init__(policy)
        self.log_std_min, self.log_std_max = LOG_STD_MIN, LOG_STD_MAX

    def forward(
        self, observations: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Actions for ``[batch, observation_dim]`` observations.

        Args:
            observations: Raw observations, as the environment returns them.
            noise: Standard normal noise ``[batch, action_dim]`` to sample; ``None``:
                the deterministic action.

        Returns:
            The actions, ``float32 [batch, action_dim]``, within the action bounds.
        """
        outputs = self.outputs(observations)
        mean = outputs[:, : self.output_dim]
        if noise is not None:
            log_std = torch.clamp(outputs[:, self.output_dim :], self.log_std_min, self.log_std_max)
            mean = mean + torch.exp(log_std) * noise
        return self.squash(mean)


class ExportedDeterministicPolicy(_ExportedTanhPolicy):
    """TD3's actor: ``c + s · tanh(head)``; with noise, ``+ s · noise``, clipped to the bounds.

    The noise is in half-ranges of the bounds (TD3's exploration noise is 0.1 of standard
    normal noise).

    Args:
        policy: The trained TD3 actor.
    """

    def __init__(self, policy: DeterministicPolicy) -> None:
        super().__init__(policy)

    def forward(
        self, observations: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Actions for ``[batch, observation_dim]`` observations.

        Args:
            observations: Raw observations, as the environment returns them.
            noise: Noise ``[batch, action_dim]`` in half-ranges to add; ``None``: none.

        Returns:
            The actions, ``float32 [batch, action_dim]``, within the action bounds.
        """
        actions = self.squash(self.outputs(observations))
        if noise is not None:
            actions = actions + self.scale * noise
        return torch.maximum(torch.minimum(actions, self.high), self.low)


def exported_policy(policy: MLPPolicy) -> ExportedPolicy:
    """The exportable module of ``policy``, in eval mode and without gradients.

    Args:
        policy: A categorical, Gaussian, squashed Gaussian (SAC) or deterministic (TD3) MLP
            policy, such as ``load_module(path).policy``.

    Returns:
        An :class:`ExportedCategoricalPolicy`, :class:`ExportedGaussianPolicy`,
        :class:`ExportedSquashedGaussianPolicy` or :class:`ExportedDeterministicPolicy`.

    Raises:
        TypeError: For a policy of another kind.
    """
    if isinstance(policy, CategoricalMLPPolicy):
        return ExportedCategoricalPolicy(policy)
    if isinstance(policy, GaussianMLPPolicy):
        return ExportedGaussianPolicy(policy)
    if isinstance(policy, SquashedGaussianPolicy):
        return ExportedSquashedGaussianPolicy(policy)
    if isinstance(policy, DeterministicPolicy):
        return ExportedDeterministicPolicy(policy)
    raise TypeError(f"cannot export a {type(policy).__name__}: not a categorical or Gaussian MLP")
