"""Local adaptation: a global policy fine-tuned on one agent's own environment for K episodes."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import torch

from fedrl_lightning.federation.local_fit import LocalFit, fit_agent
from fedrl_lightning.learners import Learner
from fedrl_lightning.population.agents import AgentPopulation
from fedrl_lightning.population.byzantine import Byzantine
from fedrl_lightning.run.checkpoints import load_checkpoint
from fedrl_lightning.run.console import quiet_lightning
from fedrl_lightning.seeding import Stream, derive_seed

__all__ = ["LocalAdaptation"]


class LocalAdaptation:
    """Fine-tunes a global policy on an agent's own environment: what a new agent gets from it.

    Each fine-tune is a real local fit, as a sampled agent's
    (:func:`~fedrl_lightning.federation.local_fit.fit_agent`), of ``episodes`` episodes from the
    given weights, with the learner's own learning rate, no proximal term and no meta-step.
    It runs on the agent's honest environment (a Byzantine agent's attack is left out, as
    evaluation leaves it out), and its random streams are its own: its run seed is derived
    from (run seed, round, agent, :attr:`Stream.FINETUNE`), so it draws nothing from the
    streams training uses, and a run trains the same with or without it. torch's global
    generator is restored after every fine-tune.

    Args:
        model: A module of the learner to fine-tune: its class and default hyperparameters.
        population: The agents' environments.
        episodes: Episodes of each fine-tune, K.
        accelerator: Accelerator for the fits (``cpu``, ``gpu``, ...).
        verbose: Show Lightning's output for every fit.
    """

    def __init__(
        self,
        model: Learner,
        population: AgentPopulation,
        episodes: int,
        accelerator: str = "cpu",
        verbose: bool = False,
    ) -> None:
        self.module_class = type(model)
        self.model_hparams = dict(model.hparams)
        self.population = copy.copy(population)
        self.population.byzantine = Byzantine(None, population.num_agents, seed=0)
        self.episodes = episodes
        self.verbose = verbose
        self.trainer_kwargs: dict[str, Any] = {
            "accelerator": accelerator,
            "devices": 1,
            "enable_progress_bar": verbose,
            "enable_model_summary": verbose,
        }
        self._folder = tempfile.TemporaryDirectory(prefix="fedrl-adaptation-")

    def adapt(
        self,
        state: dict[str, torch.Tensor],
        agent: int,
        seed: int,
        round_idx: int,
        hparams: dict[str, Any] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Fine-tune ``state`` on agent ``agent``'s environment; return the fine-tuned weights.

        Args:
            state: The weights to start from, such as the round's global weights.
            agent: The agent whose environment the fit runs on.
            seed: The run's seed (or the ``evaluate`` command's).
            round_idx: The round just aggregated; 0 outside a run.
            hparams: The learner's hyperparameters for this agent (its task's model's sizes,
                in a federation of tasks with other spaces); ``None``: ``model``'s.

        Returns:
            The fine-tuned state dict.
        """
        task = LocalFit(
            agent_id=agent,
            round_idx=round_idx,
            run_seed=derive_seed(seed, round_idx, agent, Stream.FINETUNE),
            module_class=self.module_class,
            model_hparams=self.model_hparams if hparams is None else hparams,
            global_state=state,
            num_episodes=self.episodes,
            checkpoint_path=Path(self._folder.name) / f"agent-{agent:04d}.ckpt",
            trainer_kwargs=self.trainer_kwargs,
        )
        with torch.random.fork_rng(devices=[]), quiet_lightning(self.verbose):
            path = fit_agent(task, self.population)
        adapted = load_checkpoint(path)["state_dict"]
        path.unlink()
        return adapted

    def close(self) -> None:
        """Remove the fits' scratch folder."""
        self._folder.cleanup()
