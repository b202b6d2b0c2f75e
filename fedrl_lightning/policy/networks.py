"""Policy networks: categorical and Gaussian MLPs over flat observations."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, Normal

from fedrl_lightning.policy.actors import (
    LOG_SQRT_2PI,
    NumpyActor,
    NumpyCategoricalActor,
    NumpyGaussianActor,
    NumpyGreedyActor,
    NumpyUniformActor,
)
from fedrl_lightning.policy.normalization import ObservationNormalizer

__all__ = ["CategoricalMLPPolicy", "GaussianMLPPolicy", "MLPPolicy", "QPolicy", "dueling_q"]


class MLPPolicy(nn.Module, ABC):
    """An MLP of ReLU hidden layers whose output parameterises an action distribution.

    The first hidden layer is ``hidden``, any further ones are ``deeper``, and the output
    layer is ``head``. With ``normalize_observations``, an :class:`ObservationNormalizer`
    (``normalizer``) standardises observations before the first layer, in torch and in the
    numpy actors alike, so whatever acts with the policy acts on what it was trained on.

    Args:
        observation_dim: Size of a flat observation.
        output_dim: Size of the head's output (logits or means).
        hidden_dim: Width of each hidden ReLU layer.
        num_layers: Number of hidden layers.
        normalize_observations: Standardise observations with running statistics.
    """

    def __init__(
        self,
        observation_dim: int,
        output_dim: int,
        hidden_dim: int,
        num_layers: int = 1,
        normalize_observations: bool = False,
    ) -> None:
        super().__init__()
        self.normalizer = ObservationNormalizer(observation_dim) if normalize_observations else None
        self.hidden = nn.Linear(observation_dim, hidden_dim)
        self.deeper = nn.ModuleList(
            nn.Linear(hidden_dim, hidden_dim) for _ in range(num_layers - 1)
        )
        self.head = nn.Linear(hidden_dim, output_dim)

    def normalize(self, observations: torch.Tensor) -> torch.Tensor:
        """Observations as the first layer sees them: normalised, if the policy normalises."""
        return observations if self.normalizer is None else self.normalizer(observations)

    def features(self, observations: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's output, ``[..., hidden_dim]``: the trunk a critic may share."""
        hidden = torch.relu(self.hidden(self.normalize(observations)))
        for layer in self.deeper:
            hidden = torch.relu(layer(hidden))
        return hidden

    def outputs(self, observations: torch.Tensor) -> torch.Tensor:
        """The head's output for ``[..., observation]`` observations."""
        return self.head(self.features(observations))

    @abstractmethod
    def forward(self, observations: torch.Tensor) -> Distribution:
        """The action distribution for a batch of observations."""

    @abstractmethod
    def log_prob_and_entropy(
        self, observations: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities of ``actions`` and the distribution's entropy, per step.

        Computed in closed form, which costs far less than building a
        ``torch.distributions`` object on every training step; tests check both agree.
        """

    @abstractmethod
    def act(self, observations: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Actions the environment accepts for ``[..., observation]`` observations.

        Sampled with torch's random generator, or the most likely with ``deterministic``.
        """

    @abstractmethod
    def actor(self) -> NumpyActor:
        """A numpy actor that samples from this policy's current weights."""

    @abstractmethod
    def random_actor(self) -> NumpyActor:
        """A numpy actor that ignores the weights and acts uniformly at random."""

    def _numpy_weights(self) -> dict[str, Any]:
        """The numpy actor's arguments: the layers' weights and the normalisation, if any.

        On CPU the weights are zero-copy views, so the actor acts with the live weights; on
        an accelerator they are a copy taken now. The normalisation is taken now: the dataset
        makes a new actor for every batch, after the statistics change.
        """

        def numpy(layer: nn.Linear) -> tuple[np.ndarray, np.ndarray]:
            return layer.weight.detach().cpu().numpy(), layer.bias.detach().cpu().numpy()

        return {
            "layers": [numpy(layer) for layer in (self.hidden, *self.deeper)],
            "head": numpy(self.head),
            "normalization": None if self.normalizer is None else self.normalizer.numpy_affine(),
        }

    def _zero_weights(self) -> dict[str, Any]:
        """:meth:`_numpy_weights` with every weight zero, for an actor that ignores them."""
        weights = self._numpy_weights()
        zeros = [(np.zeros_like(w), np.zeros_like(b)) for w, b in weights["layers"]]
        head_weight, head_bias = weights["head"]
        head = (np.zeros_like(head_weight), np.zeros_like(head_bias))
        return {"layers": zeros, "head": head, "normalization": None}


class CategoricalMLPPolicy(MLPPolicy):
    """An MLP policy over ``num_actions`` discrete actions.

    Args:
        observation_dim: Size of a flat observation.
        num_actions: Number of discrete actions.
        hidden_dim: Width of each hidden ReLU layer.
        num_layers: Number of hidden layers.
        normalize_observations: Standardise observations with running statistics.
    """

    def __init__(
        self,
        observation_dim: int,
        num_actions: int,
        hidden_dim: int,
        num_layers: int = 1,
        normalize_observations: bool = False,
    ) -> None:
        super().__init__(
            observation_dim, num_actions, hidden_dim, num_layers, normalize_observations
        )

    def logits(self, observations: torch.Tensor) -> torch.Tensor:
        """Unnormalised action log-probabilities, shape ``[..., num_actions]``."""
        return self.outputs(observations)

    def forward(self, observations: torch.Tensor) -> Categorical:
        """The action distribution for a batch of observations."""
        return Categorical(logits=self.logits(observations))

    def log_prob_and_entropy(
        self, observations: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities of integer ``actions`` and the entropy, shape ``[...]``."""
        log_pi = torch.log_softmax(self.logits(observations), dim=-1)
        log_probs = log_pi.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        entropy = -(log_pi.exp() * log_pi).sum(-1)
        return log_probs, entropy

    def act(self, observations: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Integer actions: sampled, or the argmax of the logits with ``deterministic``."""
        logits = self.logits(observations)
        if deterministic:
            return logits.argmax(dim=-1)
        return Categorical(logits=logits).sample()

    def actor(self) -> NumpyCategoricalActor:
        """A numpy actor over the live weights."""
        return NumpyCategoricalActor(**self._numpy_weights())

    def random_actor(self) -> NumpyCategoricalActor:
        """A numpy actor with all-zero weights: equal logits, so uniform actions."""
        return NumpyCategoricalActor(**self._zero_weights())


def dueling_q(values: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """Combines dueling heads: ``Q(s, a) = V(s) + A(s, a) − mean_a' A(s, a')`` (Wang et al. 2016).

    Args:
        values: ``[batch]`` or ``[batch, 1]`` state values.
        advantages: ``[batch, num_actions]`` advantages.

    Returns:
        ``[batch, num_actions]`` action values.
    """
    if values.dim() == advantages.dim() - 1:
        values = values.unsqueeze(-1)
    return values + advantages - advantages.mean(dim=-1, keepdim=True)


class QPolicy(CategoricalMLPPolicy):
    """A Q-network over ``num_actions`` discrete actions that acts greedily: DQN's policy.

    ``head`` gives the action values, or with ``dueling`` the advantages, beside a
    ``value_head`` for the state value (Wang et al. 2016): ``Q = V + A - mean(A)``. Either way
    the greedy action is the argmax of ``head``'s output, so acting, evaluating and exporting
    read only the trunk and ``head``, as for any categorical policy. Its distribution puts all
    the probability on that action.

    Args:
        observation_dim: Size of a flat observation.
        num_actions: Number of discrete actions.
        hidden_dim: Width of each hidden ReLU layer.
        num_layers: Number of hidden layers.
        dueling: Separate value and advantage heads.
        normalize_observations: Standardise observations with running statistics.
    """

    def __init__(
        self,
        observation_dim: int,
        num_actions: int,
        hidden_dim: int,
        num_layers: int = 1,
        dueling: bool = False,
        normalize_observations: bool = False,
    ) -> None:
        super().__init__(
            observation_dim, num_actions, hidden_dim, num_layers, normalize_observations
        )
        self.value_head = nn.Linear(hidden_dim, 1) if dueling else None

    def q_values(self, observations: torch.Tensor) -> torch.Tensor:
        """``[..., num_actions]`` action values."""
        features = self.features(observations)
        advantages = self.head(features)
        if self.value_head is None:
            return advantages
        return dueling_q(self.value_head(features), advantages)

    def forward(self, observations: torch.Tensor) -> Categorical:
        """The greedy policy: probability 1 on the argmax of the values."""
        greedy = self.logits(observations).argmax(dim=-1)
        return Categorical(probs=nn.functional.one_hot(greedy, self.head.out_features).float())

    def act(self, observations: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """The greedy actions, sampled or not."""
        return self.logits(observations).argmax(dim=-1)

    def actor(self) -> NumpyGreedyActor:
        """A numpy actor that acts greedily with the live weights."""
        return NumpyGreedyActor(**self._numpy_weights())


class GaussianMLPPolicy(MLPPolicy):
    """A diagonal Gaussian policy over a ``Box`` action space, with a learned log-std.

    The MLP gives the mean; ``log_std`` is a free parameter per action dimension. Actions are
    sampled unbounded, which keeps their log-probability exact, and clipped to
    ``[action_low, action_high]`` only when they are sent to the environment.

    Args:
        observation_dim: Size of a flat observation.
        action_dim: Size of an action.
        hidden_dim: Width of each hidden ReLU layer.
        action_low: Lower bound of each action dimension.
        action_high: Upper bound of each action dimension.
        log_std_init: Initial log standard deviation.
        num_layers: Number of hidden layers.
        normalize_observations: Standardise observations with running statistics.
    """

    def __init__(
        self,
        observation_dim: int,
        action_dim: int,
        hidden_dim: int,
        action_low: Sequence[float],
        action_high: Sequence[float],
        log_std_init: float = 0.0,
        num_layers: int = 1,
        normalize_observations: bool = False,
    ) -> None:
        super().__init__(
            observation_dim, action_dim, hidden_dim, num_layers, normalize_observations
        )
        self.log_std = nn.Parameter(torch.full((action_dim,), float(log_std_init)))
        self.action_low = np.asarray(action_low, np.float32)
        self.action_high = np.asarray(action_high, np.float32)

    def forward(self, observations: torch.Tensor) -> Independent:
        """The action distribution for a batch of observations (before clipping)."""
        return Independent(Normal(self.outputs(observations), self.log_std.exp()), 1)

    def log_prob_and_entropy(
        self, observations: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities of ``[..., action_dim]`` actions and the entropy, shape ``[...]``."""
        means = self.outputs(observations)
        z = (actions - means) * torch.exp(-self.log_std)
        log_probs = (-0.5 * z.square() - self.log_std - LOG_SQRT_2PI).sum(-1)
        entropy = (self.log_std + 0.5 + LOG_SQRT_2PI).sum().expand(log_probs.shape)
        return log_probs, entropy

    def act(self, observations: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Actions sampled (the mean with ``deterministic``), clipped to the action bounds."""
        actions = self.outputs(observations)
        if not deterministic:
            actions = actions + self.log_std.exp() * torch.randn_like(actions)
        low = torch.as_tensor(self.action_low, device=actions.device)
        high = torch.as_tensor(self.action_high, device=actions.device)
        return torch.clamp(actions, low, high)

    def actor(self) -> NumpyGaussianActor:
        """A numpy actor over the live weights."""
        return NumpyGaussianActor(
            **self._numpy_weights(),
            log_std=self.log_std.detach().cpu().numpy(),
            action_low=self.action_low,
            action_high=self.action_high,
        )

    def random_actor(self) -> NumpyUniformActor:
        """A numpy actor that acts uniformly at random within the action bounds."""
        return NumpyUniformActor(
            **self._zero_weights(),
            log_std=self.log_std.detach().cpu().numpy(),
            action_low=self.action_low,
            action_high=self.action_high,
        )
