"""Random network distillation (Burda et al., 2018): novelty as a predictor's error."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from typing_extensions import override

from fedrl_lightning.exploration.base import Curiosity, Transitions, mlp
from fedrl_lightning.seeding import Stream, derive_seed

__all__ = ["RND", "FixedNetwork"]


class FixedNetwork(nn.Module):
    """An MLP of random weights that is never trained, never saved and never sent.

    Its weights are non-persistent buffers: they move with the module to a device but are
    not in the ``state_dict``, so no agent sends them and no strategy aggregates them. They
    are drawn from a generator of their own seeded with :meth:`reseed`, which leaves torch's
    global generator alone: every agent that reseeds with the same seed holds the same net.

    Args:
        sizes: The layers' sizes, input first.
        seed: The seed of the weights until :meth:`reseed` is called.
    """

    def __init__(self, sizes: list[int], seed: int = 0) -> None:
        super().__init__()
        self.sizes = list(sizes)
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            self.register_buffer(f"weight{i}", torch.empty(fan_out, fan_in), persistent=False)
            self.register_buffer(f"bias{i}", torch.empty(fan_out), persistent=False)
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Draw the weights afresh from ``seed``, as ``nn.Linear`` initialises its own."""
        generator = torch.Generator().manual_seed(seed)
        for i, fan_in in enumerate(self.sizes[:-1]):
            bound = fan_in**-0.5
            for name in (f"weight{i}", f"bias{i}"):
                buffer = getattr(self, name)
                values = torch.rand(buffer.shape, generator=generator) * 2 * bound - bound
                buffer.copy_(values.to(buffer.device))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """The network's output for ``[..., sizes[0]]`` inputs."""
        layers = len(self.sizes) - 1
        for i in range(layers):
            inputs = F.linear(inputs, getattr(self, f"weight{i}"), getattr(self, f"bias{i}"))
            if i < layers - 1:
                inputs = torch.relu(inputs)
        return inputs


class RND(Curiosity):
    """A fixed random target net and a predictor trained to match it on visited states.

    The intrinsic reward of a transition is the predictor's mean squared error on the
    observation it leads to: high where the agents have rarely been, falling as the predictor
    is trained there. The target is a :class:`FixedNetwork` rebuilt from the run seed
    (stream ``CURIOSITY_TARGET``, round 0, agent -1: the server's), so every agent of a run
    holds the same one; the predictor is an ordinary submodule, federated like the policy.

    Args:
        observation_dim: Size of a flat observation.
        coef: Weight of the intrinsic advantage (or reward).
        intrinsic_gamma: Discount of the intrinsic return.
        hidden_dim: Width of the hidden layers of the target and the predictor.
        output_dim: Size of the embedding the predictor learns to match.
    """

    def __init__(
        self,
        observation_dim: int,
        coef: float,
        intrinsic_gamma: float,
        hidden_dim: int = 64,
        output_dim: int = 32,
    ) -> None:
        super().__init__(observation_dim, coef, intrinsic_gamma)
        self.target = FixedNetwork([observation_dim, hidden_dim, hidden_dim, output_dim])
        self.predictor = mlp([observation_dim, hidden_dim, hidden_dim, output_dim])

    @override
    def seed_run(self, run_seed: int) -> None:
        self.target.reseed(derive_seed(run_seed, 0, -1, Stream.CURIOSITY_TARGET))

    def errors(self, observations: torch.Tensor) -> torch.Tensor:
        """``[n]`` the predictor's mean squared error against the target, per observation."""
        normalised = self.normalize(observations)
        with torch.no_grad():
            target = self.target(normalised)
        return (self.predictor(normalised) - target).square().mean(dim=-1)

    @override
    @torch.no_grad()
    def raw_rewards(self, steps: Transitions) -> torch.Tensor:
        return self.errors(steps.next_observations)

    @override
    def loss(self, steps: Transitions) -> torch.Tensor:
        return self.errors(steps.next_observations).mean()
