"""The federated outer loop: sample agents, fit each locally, aggregate, evaluate, checkpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from lightning.pytorch.loggers.tensorboard import _TENSORBOARD_AVAILABLE

from fedrl_lightning.checkpoints import (
    atomic_save,
    atomic_write_text,
    load_checkpoint,
    policy_checkpoint,
)
from fedrl_lightning.console import quiet_lightning, round_progress
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.client import AGENT_STATS_KEY, LocalFit, fit_agent
from fedrl_lightning.federation.evaluation import evaluate_policy
from fedrl_lightning.federation.sampling import sample_agents
from fedrl_lightning.federation.strategies import AgentUpdate, RewardWeighted, Strategy
from fedrl_lightning.module import ReinforceModule
from fedrl_lightning.population import AgentPopulation
from fedrl_lightning.seeding import Stream, derive_seed

__all__ = ["FederatedTrainer"]

RUNS_FOLDER = "lightning_logs"
FEDRL_KEY = "fedrl"


class FederatedTrainer:
    """Runs federated REINFORCE: every round, sampled agents train the global policy locally.

    Each round samples ``agents_per_round`` agents without replacement, fits a fresh
    ``lightning.Trainer`` per agent starting from the global weights, saves each agent's
    checkpoint, aggregates the checkpoints with ``strategy``, evaluates the new global policy
    on every agent's environment, and saves the round checkpoint. Outputs go to
    ``<default_root_dir>/lightning_logs/version_N/``.

    Args:
        num_rounds: Federated rounds to run.
        agents_per_round: Agents sampled per round, without replacement.
        episodes_per_round: Training episodes per sampled agent per round.
        strategy: How agents' weights are combined: ``RewardWeighted`` (the default when
            ``None``), ``FedAvg``, or any ``Strategy`` by ``class_path``.
        eval_episodes: Evaluation episodes per agent after each round.
        accelerator: Accelerator for local fits (``cpu``, ``gpu``, ``auto``, ...).
        default_root_dir: Folder under which ``lightning_logs/`` is created.
        keep_agent_checkpoints: Keep every agent's checkpoint in the run folder's ``agents/``
            instead of deleting it once aggregated.
        enable_progress_bar: Show the progress bar over rounds.
        verbose: Show Lightning's output for every local fit (banners, bars, summaries).
        seed: The run seed; the command line sets it from ``--seed_everything``.
    """

    def __init__(
        self,
        num_rounds: int = 50,
        agents_per_round: int = 5,
        episodes_per_round: int = 10,
        strategy: Strategy | None = None,
        eval_episodes: int = 10,
        accelerator: str = "cpu",
        default_root_dir: str = ".",
        keep_agent_checkpoints: bool = False,
        enable_progress_bar: bool = True,
        verbose: bool = False,
        seed: int = 42,
    ) -> None:
        for name, value in (
            ("num_rounds", num_rounds),
            ("agents_per_round", agents_per_round),
            ("episodes_per_round", episodes_per_round),
            ("eval_episodes", eval_episodes),
        ):
            if value <= 0:
                raise ConfigError(f"trainer.{name} must be positive, got {value}")
        self.num_rounds = num_rounds
        self.agents_per_round = agents_per_round
        self.episodes_per_round = episodes_per_round
        self.strategy = strategy if strategy is not None else RewardWeighted()
        self.eval_episodes = eval_episodes
        self.accelerator = accelerator
        self.default_root_dir = Path(default_root_dir)
        self.keep_agent_checkpoints = keep_agent_checkpoints
        self.enable_progress_bar = enable_progress_bar
        self.verbose = verbose
        self.seed = seed
        self.run_dir: Path | None = None
        self.history: list[dict[str, float]] = []

    def fit(
        self,
        model: ReinforceModule,
        datamodule: AgentPopulation,
        run_config: str | None = None,
    ) -> list[dict[str, float]]:
        """Run every round and return one metrics row per round.

        Args:
            model: The global policy's module; its weights are the starting point and are
                updated in place after every round.
            datamodule: The agents and their environments.
            run_config: The resolved configuration, saved as ``config.yaml`` in the run folder.

        Returns:
            The per-round metrics, as also written to ``metrics.csv``.
        """
        population = datamodule
        if self.agents_per_round > population.num_agents:
            raise ConfigError(
                f"trainer.agents_per_round ({self.agents_per_round}) must not exceed "
                f"data.num_agents ({population.num_agents})"
            )
        self.history = []
        with quiet_lightning(self.verbose):
            loggers = self._make_loggers()
            run_dir = Path(loggers[0].experiment.log_dir)
            (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
            (run_dir / "agents").mkdir(exist_ok=True)
            self.run_dir = run_dir
            if run_config is not None:
                atomic_write_text(run_config, run_dir / "config.yaml")
            self._run_rounds(model, population, loggers, run_dir)
            for logger in loggers:
                logger.finalize("success")
        return self.history

    def _make_loggers(self) -> list[Logger]:
        csv = CSVLogger(save_dir=self.default_root_dir, name=RUNS_FOLDER)
        loggers: list[Logger] = [csv]
        if _TENSORBOARD_AVAILABLE:
            loggers.append(
                TensorBoardLogger(
                    save_dir=self.default_root_dir,
                    name=RUNS_FOLDER,
                    version=csv.version,
                    default_hp_metric=False,
                )
            )
        return loggers

    def _run_rounds(
        self,
        model: ReinforceModule,
        population: AgentPopulation,
        loggers: list[Logger],
        run_dir: Path,
    ) -> None:
        model_hparams = dict(model.hparams)
        global_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        eval_agents = [a for a in range(population.num_agents) for _ in range(self.eval_episodes)]
        eval_env = population.make_vector_env(eval_agents)
        trainer_kwargs: dict[str, Any] = {
            "accelerator": self.accelerator,
            "devices": 1,
            "enable_progress_bar": self.verbose,
            "enable_model_summary": self.verbose,
        }
        totals = {"episodes": 0, "env_steps": 0}
        progress = round_progress(self.num_rounds, self.enable_progress_bar)
        try:
            for round_idx in range(1, self.num_rounds + 1):
                started = time.perf_counter()
                agents = sample_agents(
                    population.num_agents, self.agents_per_round, self.seed, round_idx
                )
                updates = []
                for agent_id in agents:
                    task = LocalFit(
                        agent_id=agent_id,
                        round_idx=round_idx,
                        run_seed=self.seed,
                        model_hparams=model_hparams,
                        global_state=global_state,
                        num_episodes=self.episodes_per_round,
                        checkpoint_path=run_dir
                        / "agents"
                        / f"round-{round_idx:04d}-agent-{agent_id:04d}.ckpt",
                        trainer_kwargs=trainer_kwargs,
                    )
                    updates.append(self._load_update(fit_agent(task, population), agent_id))
                global_state = self.strategy.aggregate(global_state, updates)
                model.load_state_dict(global_state)
                per_agent = self._evaluate(model, eval_env, eval_agents, round_idx)
                totals["episodes"] += sum(u.num_episodes for u in updates)
                totals["env_steps"] += sum(u.num_steps for u in updates)
                row = {
                    "round": round_idx,
                    "train_reward": float(np.mean([u.mean_return for u in updates])),
                    "eval_reward": float(per_agent.mean()),
                    "eval_reward_min": float(per_agent.min()),
                    "episodes": totals["episodes"],
                    "env_steps": totals["env_steps"],
                    "round_time": time.perf_counter() - started,
                }
                self.history.append(row)
                for logger in loggers:
                    logger.log_metrics(row, step=round_idx)
                    logger.save()
                self._save_round(model_hparams, global_state, round_idx, run_dir)
                progress.set_postfix(
                    train=f"{row['train_reward']:.1f}",
                    eval=f"{row['eval_reward']:.1f}",
                    worst=f"{row['eval_reward_min']:.1f}",
                )
                progress.update()
        finally:
            progress.close()
            eval_env.close()

    def _load_update(self, path: Path, agent_id: int) -> AgentUpdate:
        checkpoint = load_checkpoint(path)
        stats = checkpoint[AGENT_STATS_KEY]
        if not self.keep_agent_checkpoints:
            path.unlink()
        return AgentUpdate(
            agent_id=agent_id,
            state_dict=checkpoint["state_dict"],
            num_episodes=int(stats["num_episodes"]),
            num_steps=int(stats["num_steps"]),
            mean_return=float(stats["mean_return"]),
        )

    def _evaluate(
        self,
        model: ReinforceModule,
        eval_env: Any,
        eval_agents: list[int],
        round_idx: int,
    ) -> np.ndarray:
        seeds = [
            (derive_seed(self.seed, round_idx, agent, Stream.EVAL_ENV) + i % self.eval_episodes)
            % 2**32
            for i, agent in enumerate(eval_agents)
        ]
        action_seed = derive_seed(self.seed, round_idx, -1, Stream.EVAL_ACTIONS)
        returns = evaluate_policy(model.policy, eval_env, seeds, action_seed)
        return returns.reshape(-1, self.eval_episodes).mean(axis=1)

    def _save_round(
        self,
        model_hparams: dict[str, Any],
        global_state: dict[str, torch.Tensor],
        round_idx: int,
        run_dir: Path,
    ) -> None:
        checkpoint = policy_checkpoint(
            global_state,
            model_hparams,
            **{
                FEDRL_KEY: {
                    "round": round_idx,
                    "history": self.history,
                    "strategy": self.strategy.state_dict(),
                }
            },
        )
        folder = run_dir / "checkpoints"
        atomic_save(checkpoint, folder / f"round-{round_idx:04d}.ckpt")
        atomic_save(checkpoint, folder / "last.ckpt")
