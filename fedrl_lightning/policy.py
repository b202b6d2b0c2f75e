"""Policy networks, and the numpy actor that runs them cheaply inside rollouts."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

__all__ = ["CategoricalMLPPolicy", "NumpyActor"]


class CategoricalMLPPolicy(nn.Module):
    """A one-hidden-layer MLP that maps observations to a categorical action distribution.

    Args:
        observation_dim: Size of a flat observation.
        num_actions: Number of discrete actions.
        hidden_dim: Width of the hidden ReLU layer.
    """

    def __init__(self, observation_dim: int, num_actions: int, hidden_dim: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(observation_dim, hidden_dim)
        self.head = nn.Linear(hidden_dim, num_actions)

    def logits(self, observations: torch.Tensor) -> torch.Tensor:
        """Unnormalised action log-probabilities, shape ``[..., num_actions]``."""
        return self.head(torch.relu(self.hidden(observations)))

    def forward(self, observations: torch.Tensor) -> Categorical:
        """The action distribution for a batch of observations."""
        return Categorical(logits=self.logits(observations))

    def actor(self) -> NumpyActor:
        """A numpy actor that samples from this policy's current weights.

        On CPU the actor reads the parameters through zero-copy views, so it always acts with
        the live weights; on an accelerator it holds a copy taken now.
        """
        weights = [p.detach().cpu().numpy() for p in self.parameters()]
        return NumpyActor(*weights)


class NumpyActor:
    """Samples actions from a :class:`CategoricalMLPPolicy`'s weights without torch overhead.

    A rollout calls the policy once per environment step with a single observation; at that
    size torch's per-call overhead dominates. This actor computes the same logits with numpy
    and samples with the Gumbel-max trick, ``argmax(logits + gumbel_noise)``, which draws
    exactly from ``softmax(logits)``.

    Args:
        hidden_weight: ``[hidden, observation]`` weight of the hidden layer.
        hidden_bias: ``[hidden]`` bias of the hidden layer.
        head_weight: ``[actions, hidden]`` weight of the output layer.
        head_bias: ``[actions]`` bias of the output layer.
    """

    def __init__(
        self,
        hidden_weight: np.ndarray,
        hidden_bias: np.ndarray,
        head_weight: np.ndarray,
        head_bias: np.ndarray,
    ) -> None:
        self._w1 = hidden_weight.T
        self._b1 = hidden_bias
        self._w2 = head_weight.T
        self._b2 = head_bias
        self._zeros = np.zeros_like(hidden_bias)
        self.num_actions = head_bias.shape[0]

    def logits(self, observations: np.ndarray) -> np.ndarray:
        """Logits for ``[..., observation]`` observations, as the torch policy computes them."""
        # np.dot and a ready-made zero array cost about a third less per call than ``@`` and a
        # Python scalar, which matters at one call per environment step.
        hidden = np.dot(observations, self._w1)
        hidden += self._b1
        np.maximum(hidden, self._zeros, out=hidden)
        logits = np.dot(hidden, self._w2)
        logits += self._b2
        return logits

    def sample(self, observations: np.ndarray, gumbel_noise: np.ndarray) -> np.ndarray:
        """Sample actions given standard Gumbel noise of shape ``[..., num_actions]``."""
        logits = self.logits(observations)
        logits += gumbel_noise
        return logits.argmax(axis=-1)
