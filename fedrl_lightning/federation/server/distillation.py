"""Policy distillation's exchange (FedHPD): probe states, agents' distributions, the consensus."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.learners.distillation_term import DistillationTarget, consensus_kl
from fedrl_lightning.policy.networks import CategoricalMLPPolicy
from fedrl_lightning.seeding import Stream, derive_seed

if TYPE_CHECKING:
    from fedrl_lightning.federation.strategies import AgentUpdate, Strategy
    from fedrl_lightning.learners import Learner
    from fedrl_lightning.population.agents import AgentPopulation

__all__ = [
    "DistillationSettings",
    "ProbeExchange",
    "consensus_of",
    "distill_student",
    "draw_probe_states",
    "strategy_consensus",
]

OPTION = "trainer.server"
CONSENSUS = ("mean", "strategy")


@dataclass(frozen=True)
class DistillationSettings:
    """``trainer.server Distilled``'s settings: how often agents exchange, and how hard they pull.

    Attributes:
        probe_states: How many probe states the server draws at the run's start.
        every_n_rounds: Agents send their distributions in every round divisible by this; the
            fits of the round after add the term against the new consensus.
        kl_coef: The weight of ``KL(consensus || own policy)`` in every local loss; 0 trains
            the agents on their own (no federation), with the same streams.
        student_steps: Adam steps with which the server distills the global model, the
            student, on each new consensus (FedDF), so the run has one deployable
            ``last.ckpt``; 0: no student (the global model keeps its initial weights).
        student_lr: The student's Adam learning rate.
        consensus: How the server combines the round's distributions: ``mean``, FedHPD's
            plain mean state by state, or ``strategy``, the run's ``trainer.strategy`` applied
            to them as it is to weights (FedMedian's median, Krum's choice, ...), starting
            from the last consensus, each row then clipped at 0 and renormalised.
    """

    probe_states: int = 1000
    every_n_rounds: int = 1
    kl_coef: float = 1.0
    student_steps: int = 100
    student_lr: float = 0.01
    consensus: str = "mean"

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> DistillationSettings:
        """The settings ``spec`` gives, each checked.

        Raises:
            ConfigError: Naming the option that is unknown or out of range.
        """
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{OPTION}: give a mapping such as {{kl_coef: 1.0}}, got {spec!r}")
        known = cls.__dataclass_fields__
        for name in spec:
            if name not in known:
                raise ConfigError(
                    f"{OPTION}: {name!r} is not an option (options: {', '.join(known)})"
                )
        values = {**{n: f.default for n, f in known.items()}, **spec}
        for name, least in (("probe_states", 1), ("every_n_rounds", 1), ("student_steps", 0)):
            value = values[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(f"{OPTION}.{name} must be an integer >= {least}, got {value!r}")
        for name, positive in (("kl_coef", False), ("student_lr", True)):
            value = values[name]
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not np.isfinite(value) or value < 0 or (positive and value == 0):
                bound = "> 0" if positive else ">= 0"
                raise ConfigError(f"{OPTION}.{name} must be a number {bound}, got {value!r}")
            values[name] = float(value)
        if values["consensus"] not in CONSENSUS:
            raise ConfigError(
                f"{OPTION}.consensus must be one of {', '.join(CONSENSUS)}, "
                f"got {values['consensus']!r}"
            )
        return cls(**values)

    def sends(self, round_idx: int) -> bool:
        """Whether the agents of round ``round_idx`` send their distributions."""
        return round_idx % self.every_n_rounds == 0


@dataclass(frozen=True)
class ProbeExchange:
    """What one agent's local fit is given, and must send back, in distillation.

    Attributes:
        probe_states: ``[states, observation_dim]`` the run's probe states.
        consensus: The consensus this fit's loss is pulled towards; ``None``: no term.
        kl_coef: The term's weight.
        send: Whether the agent sends its action distribution on the probe states, after its
            fit; it is then its only message besides its training statistics.
        first_contact: Whether the agent has not trained before, so that this message is the
            one that brings it the probe states.
    """

    probe_states: torch.Tensor
    consensus: torch.Tensor | None
    kl_coef: float
    send: bool
    first_contact: bool = False

    def target(self) -> DistillationTarget | None:
        """The fit's distillation term, or ``None`` when it has none."""
        if self.consensus is None or self.kl_coef == 0:
            return None
        return DistillationTarget(self.probe_states, self.consensus, self.kl_coef)

    def message(self) -> dict[str, torch.Tensor]:
        """The tensors the server sends the agent: the consensus, and the probe states once."""
        sent = {} if self.consensus is None else {"consensus": self.consensus}
        return sent | ({"probe_states": self.probe_states} if self.first_contact else {})


def draw_probe_states(population: AgentPopulation, count: int, seed: int) -> torch.Tensor:
    """``count`` states from the agents' environments, under uniformly random actions.

    Episodes cycle over the agents (each with its own environment parameters) until they
    have visited at least ``count`` states; ``count`` of those are kept, without replacement.
    Everything is drawn from ``derive_seed(seed, 0, -1, Stream.PROBE_STATES)``.

    Returns:
        ``[count, observation_dim]`` float32 states, in the order they were visited.
    """
    rng = np.random.default_rng(derive_seed(seed, 0, -1, Stream.PROBE_STATES))
    visited: list[np.ndarray] = []
    episode = 0
    while len(visited) < count:
        env = population.make_env(episode % population.num_agents)
        observation, _ = env.reset(seed=int(rng.integers(2**31)))
        done = False
        while not done:
            visited.append(np.asarray(observation, np.float32).reshape(-1))
            action = int(rng.integers(population.num_actions))
            observation, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
        env.close()
        episode += 1
    kept = np.sort(rng.choice(len(visited), size=count, replace=False))
    return torch.from_numpy(np.stack(visited)[kept])


def consensus_of(distributions: Sequence[torch.Tensor]) -> torch.Tensor:
    """The agents' distributions averaged state by state, as FedHPD's server does.

    Accumulates in float64 and returns float32, ``[states, actions]``.
    """
    return torch.stack([d.to(torch.float64) for d in distributions]).mean(0).float()


def strategy_consensus(
    strategy: Strategy,
    updates: Sequence[AgentUpdate],
    distributions: Sequence[torch.Tensor],
    previous: torch.Tensor | None,
) -> torch.Tensor:
    """The round's distributions combined by ``strategy``, as it combines agents' weights.

    Each update's distribution is its "weights" and the last consensus (uniform before the
    first) the global state they start from, so robust strategies (FedMedian, Krum, ...)
    apply unchanged; the result is clipped at 0 and each row renormalised, since a median or
    a server step need not give a distribution.

    Args:
        strategy: The run's strategy.
        updates: The round's updates that hold a distribution.
        distributions: Their distributions, in the same order.
        previous: The last consensus, ``[states, actions]``, or ``None``.

    Returns:
        The consensus, float32 ``[states, actions]``.
    """
    first = distributions[0]
    start = previous if previous is not None else torch.full_like(first, 1 / first.shape[-1])
    sent = [
        replace(u, state_dict={"distribution": d}, extras={})
        for u, d in zip(updates, distributions, strict=True)
    ]
    combined = strategy.aggregate({"distribution": start}, sent)["distribution"]
    combined = combined.to(torch.float64).clamp(min=0)
    sums = combined.sum(-1, keepdim=True)
    uniform = torch.full_like(combined, 1 / combined.shape[-1])
    return torch.where(sums > 0, combined / sums.clamp(min=1e-12), uniform).float()


def distill_student(
    student: Learner, probe_states: torch.Tensor, consensus: torch.Tensor, steps: int, lr: float
) -> float:
    """Train ``student``'s policy towards the consensus on the probe states (FedDF's server).

    ``steps`` full-batch Adam steps on ``KL(consensus || student)``, from a fresh optimizer;
    nothing is random, so the result depends only on the inputs.

    Returns:
        The divergence after the last step.
    """
    policy = student.policy
    assert isinstance(policy, CategoricalMLPPolicy)  # distillation refuses continuous actions
    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
    for _ in range(steps):
        loss = consensus_kl(consensus, policy.logits(probe_states))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return float(consensus_kl(consensus, policy.logits(probe_states)))
