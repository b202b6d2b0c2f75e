"""What goes between the server and an agent: a :class:`LocalFit` out, an :class:`AgentUpdate` back.

Each message has a few core fields and ``extras``: one entry per round component, keyed by
the component's name, that the component defines and checks (see
:mod:`fedrl_lightning.federation.components.base`). A new component adds an entry, never a
field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fedrl_lightning.federation.components.base import FitPart
from fedrl_lightning.policy.normalization import RunningMeanStd

__all__ = ["AgentUpdate", "LocalFit", "StateDict"]

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class LocalFit:
    """Everything one agent's local fit depends on.

    Attributes:
        agent_id: The agent.
        round_idx: The federated round, counted from 1 in a run.
        run_seed: The run's seed.
        module_class: The learner to build, such as :class:`~fedrl_lightning.learners.Reinforce`.
        model_hparams: Keyword arguments that build ``module_class``.
        global_state: The global weights the agent starts from.
        num_episodes: Episodes to train on.
        checkpoint_path: Where the agent's checkpoint is written.
        trainer_kwargs: Extra arguments for the agent's ``lightning.Trainer``.
        lr_scale: The round's factor on the learner's learning rate (the trainer's
            ``lr_schedule``).
        extras: Each round component's part of the fit, by the component's name (the server
            model's under ``shared``, the strategy's local terms under ``strategy``, ...).
    """

    agent_id: int
    round_idx: int
    run_seed: int
    module_class: type[Any]
    model_hparams: dict[str, Any]
    global_state: StateDict
    num_episodes: int
    checkpoint_path: Path
    trainer_kwargs: dict[str, Any]
    lr_scale: float = 1.0
    extras: Mapping[str, FitPart] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentUpdate:
    """What one agent sends back after its local fit, as strategies see it.

    Attributes:
        agent_id: The agent.
        state_dict: The agent's policy weights after local training.
        num_episodes: Episodes it trained on.
        num_steps: Environment steps it trained on.
        mean_return: Its mean undiscounted episode return during local training.
        statistics: What each of the model's running statistics (an observation
            normalizer's count, mean and M2) observed during the fit, by module name. They
            are pooled as statistics, never given to a strategy; empty when the model has none.
        metrics: The mean of each training metric the learner recorded in the fit (``loss``,
            ``entropy``, PPO's ``approx_kl``, ...), by name.
        extras: Each round component's reply, checked by its part of the fit, by the
            component's name; strategies never read them.
    """

    agent_id: int
    state_dict: StateDict
    num_episodes: int
    num_steps: int
    mean_return: float
    statistics: dict[str, RunningMeanStd] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    extras: Mapping[str, object] = field(default_factory=dict)
