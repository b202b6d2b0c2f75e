"""Policy distillation's term in a local loss: ``kl_coef * KL(consensus || own policy)``."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fedrl_lightning.policy.networks import CategoricalMLPPolicy

__all__ = ["DistillationTarget", "action_distribution", "consensus_kl"]


def consensus_kl(consensus: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``KL(consensus || softmax(logits))``, summed over actions and averaged over states.

    Args:
        consensus: ``[states, actions]`` target probabilities; each row sums to 1.
        logits: ``[states, actions]`` the policy's logits on the same states.

    Returns:
        The scalar divergence; zero where the policy is the consensus.
    """
    log_pi = torch.log_softmax(logits, dim=-1)
    return (torch.xlogy(consensus, consensus) - consensus * log_pi).sum(-1).mean()


def action_distribution(policy: CategoricalMLPPolicy, states: torch.Tensor) -> torch.Tensor:
    """The policy's action probabilities on ``states``, ``[states, actions]``, without gradient."""
    with torch.no_grad():
        return torch.softmax(policy.logits(states), dim=-1).float().cpu()


@dataclass(frozen=True)
class DistillationTarget:
    """What pulls an agent's policy towards the federation's consensus on the probe states.

    Attributes:
        probe_states: ``[states, observation_dim]`` the run's probe states.
        consensus: ``[states, actions]`` the server's average of the agents' distributions.
        kl_coef: The term's weight in the local loss.
    """

    probe_states: torch.Tensor
    consensus: torch.Tensor
    kl_coef: float

    def term(self, policy: CategoricalMLPPolicy) -> torch.Tensor:
        """``kl_coef * KL(consensus || policy)`` on the probe states, with gradients."""
        device = next(policy.parameters()).device
        logits = policy.logits(self.probe_states.to(device))
        return self.kl_coef * consensus_kl(self.consensus.to(device), logits)
