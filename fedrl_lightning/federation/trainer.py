"""The federated outer loop: sample agents, fit each locally, aggregate, evaluate, checkpoint."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.loggers.tensorboard import _TENSORBOARD_AVAILABLE

from fedrl_lightning.checkpoints import (
    atomic_save,
    atomic_write_text,
    load_checkpoint,
    policy_checkpoint,
)
from fedrl_lightning.console import progress_fields, quiet_lightning, round_progress
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.aggregation import aggregate_round
from fedrl_lightning.federation.client import LocalFit
from fedrl_lightning.federation.evaluation import evaluate_round, evaluated_agents
from fedrl_lightning.federation.executor import Executor, SequentialExecutor
from fedrl_lightning.federation.local_round import SubmittedRound, collect_round, submit_round
from fedrl_lightning.federation.metrics_csv import RoundCSVLogger, csv_text, log_round
from fedrl_lightning.federation.ray_executor import RayExecutor
from fedrl_lightning.federation.run_folder import (
    RUNS_FOLDER,
    RunFolder,
    best_round,
    resolve_checkpoint,
)
from fedrl_lightning.federation.sampling import sample_agents
from fedrl_lightning.federation.settings_checks import (
    check_accelerator,
    check_executor_options,
    check_output_folder,
)
from fedrl_lightning.federation.strategies import RewardWeighted, Strategy
from fedrl_lightning.interrupts import RunInterrupted, deferred_signals, stop_on_signals
from fedrl_lightning.learners import Learner
from fedrl_lightning.population import AgentPopulation

__all__ = ["FEDRL_KEY", "FederatedTrainer"]

FEDRL_KEY = "fedrl"
log = logging.getLogger(__name__)


class FederatedTrainer:
    """Runs federated REINFORCE: every round, sampled agents train the global policy locally.

    Each round samples ``agents_per_round`` agents without replacement, fits a fresh
    ``lightning.Trainer`` per agent starting from the global weights, saves each agent's
    checkpoint, aggregates the checkpoints with ``strategy``, evaluates the new global policy
    on every agent's environment, and saves the round checkpoint (and ``best.ckpt`` when the
    evaluation return is the highest so far, as Stable-Baselines3's ``EvalCallback`` keeps its
    best model). Outputs go to
    ``<default_root_dir>/lightning_logs/version_N/``.

    What ``fit`` did to start, besides the plain new run or resume (a run started again at
    round 1, later rounds discarded), is logged at ``INFO`` and kept in ``notices``; the
    command line prints it.

    An agent whose local fit raises, or whose checkpoint is unreadable or holds non-finite
    weights, is left out of its round's aggregation and listed in ``failed_agents``. The run
    stops only when fewer than ``min_agents_per_round`` agents of a round succeed.

    Args:
        num_rounds: Federated rounds to run; when resuming, the total including rounds done.
        agents_per_round: Agents sampled per round, without replacement.
        episodes_per_round: Training episodes per sampled agent per round.
        strategy: How agents' weights are combined: ``RewardWeighted`` (the default when
            ``None``), ``FedAvg``, or any ``Strategy`` by ``class_path``.
        min_agents_per_round: The run stops with an error when fewer agents than this succeed
            in a round; failed agents are otherwise left out.
        eval_episodes: Evaluation episodes per agent after each round.
        eval_agents: How many agents the global policy is evaluated on after each round:
            that many ids evenly spaced over the population (the first and the last
            included, for two or more), the same every round, so evaluation costs the same
            whatever the population's size. ``None``: every agent.
        accelerator: Accelerator for local fits (``cpu``, ``gpu``, ``auto``, ...).
        executor: Where local fits run: ``sequential``, one after another in this process,
            or ``ray``, as Ray tasks in parallel (``pip install 'fedrl_lightning[ray]'``).
            Both give the same weights and metrics.
        num_workers: With ``executor: ray``, the CPUs of the local Ray instance, one fit per
            CPU; ``None``: all of this machine's.
        ray_address: With ``executor: ray``, an existing cluster to join (``auto`` or
            ``ray://host:port``); ``None`` starts a local Ray instance.
        round_timeout: With ``executor: ray``, seconds a round waits for its local fits;
            fits still running then are cancelled and count as failed agents. ``None``: no
            limit. When it cuts fits short, which ones depends on timing, so such a round is
            no longer reproducible.
        default_root_dir: Folder under which ``lightning_logs/`` is created.
        keep_agent_checkpoints: Keep every agent's checkpoint in the run folder's ``agents/``
            instead of deleting it once aggregated.
        enable_progress_bar: Show the progress bar over rounds.
        verbose: Show Lightning's output for every local fit (banners, bars, summaries)
            and why each failed agent failed.
        seed: The run seed; the command line sets it from ``--seed_everything``.
    """

    def __init__(
        self,
        num_rounds: int = 50,
        agents_per_round: int = 5,
        episodes_per_round: int = 10,
        strategy: Strategy | None = None,
        min_agents_per_round: int = 1,
        eval_episodes: int = 10,
        eval_agents: int | None = 10,
        accelerator: str = "cpu",
        executor: Literal["sequential", "ray"] = "sequential",
        num_workers: int | None = None,
        ray_address: str | None = None,
        round_timeout: float | None = None,
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
            ("min_agents_per_round", min_agents_per_round),
            ("eval_episodes", eval_episodes),
            ("eval_agents", eval_agents),
            ("num_workers", num_workers),
            ("round_timeout", round_timeout),
        ):
            if value is not None and value <= 0:
                raise ConfigError(f"trainer.{name} must be positive, got {value}")
        if min_agents_per_round > agents_per_round:
            raise ConfigError(
                f"trainer.min_agents_per_round ({min_agents_per_round}) must not exceed "
                f"trainer.agents_per_round ({agents_per_round})"
            )
        check_executor_options(
            executor, num_workers=num_workers, ray_address=ray_address, round_timeout=round_timeout
        )
        check_output_folder(Path(default_root_dir))
        if ray_address is None:  # a cluster's workers may have accelerators this machine lacks
            check_accelerator(accelerator)
        self.num_rounds = num_rounds
        self.agents_per_round = agents_per_round
        self.episodes_per_round = episodes_per_round
        self.strategy = strategy if strategy is not None else RewardWeighted()
        self.strategy.check_agents_per_round(agents_per_round)
        self.min_agents_per_round = min_agents_per_round
        self.eval_episodes = eval_episodes
        self.eval_agents = eval_agents
        self.accelerator = accelerator
        self.executor = executor
        self.num_workers = num_workers
        self.ray_address = ray_address
        self.round_timeout = round_timeout
        self.default_root_dir = Path(default_root_dir)
        self.keep_agent_checkpoints = keep_agent_checkpoints
        self.enable_progress_bar = enable_progress_bar
        self.verbose = verbose
        self.seed = seed
        self.run: RunFolder | None = None
        self.run_config: str | None = None
        self.completed_rounds = 0
        self.resumed_round = 0
        self.history: list[dict[str, Any]] = []
        self.notices: list[str] = []

    @property
    def run_dir(self) -> Path | None:
        """The run's folder, once ``fit`` has started."""
        return self.run.path if self.run is not None else None

    def fit(
        self,
        model: Learner,
        datamodule: AgentPopulation,
        run_config: str | None = None,
        ckpt_path: str | None = None,
    ) -> list[dict[str, Any]]:
        """Train a federation: each round, sampled agents train locally and the server aggregates.

        Returns one metrics row per round. Every option is below; ``--ckpt_path`` resumes a run.

        Args:
            model: The global policy's module; its weights are the starting point and are
                updated in place after every round. Its observation and action sizes must
                fit the population's environment (``Learner.for_population`` builds
                one that does); a module that does not is refused before the run folder
                exists.
            datamodule: The agents and their environments.
            run_config: The resolved configuration, saved as ``config.yaml`` in the run folder.
            ckpt_path: Resume from a round checkpoint: ``last`` for the newest run under
                ``default_root_dir``, a run folder for its ``last.ckpt``, or a checkpoint's
                path. The run continues in that checkpoint's folder, and its result is the
                same as if it had never stopped; rounds after the checkpoint's are discarded.
                When ``last`` finds no run, or a newest run that completed no round, the run
                starts at round 1, in that unfinished folder if there is one.

        Returns:
            The per-round metrics, as also written to ``metrics.csv``.

        Raises:
            RunInterrupted: When SIGINT or SIGTERM arrives while the rounds run (in the main
                thread). Its ``round_idx`` is the round that was running. The fits in flight
                are stopped (Ray's workers too), the unfinished round's agent checkpoints
                are removed, and the run folder resumes from its last completed round, with
                the same result as a run never stopped.
        """
        population = datamodule
        if self.agents_per_round > population.num_agents:
            raise ConfigError(
                f"trainer.agents_per_round ({self.agents_per_round}) must not exceed "
                f"data.num_agents ({population.num_agents})"
            )
        model.check_fits(population)
        self.run_config = run_config
        self.notices = []
        checkpoint = (
            None if ckpt_path is None else resolve_checkpoint(ckpt_path, self.default_root_dir)
        )
        if checkpoint is not None:
            self.run = self._resume(model, checkpoint)
        else:
            self.completed_rounds, self.history = 0, []
            self.run = self._start(resuming=ckpt_path is not None)
        self.resumed_round = self.completed_rounds
        self.run.prepare()
        if run_config is not None:
            atomic_write_text(run_config, self.run.config)
        if population.heterogeneity or population.byzantine:
            atomic_write_text(csv_text(population.agent_table()), self.run.agents_table)
        executor = self._make_executor()
        with stop_on_signals(), quiet_lightning(self.verbose):
            try:
                executor.open(population, self.verbose)
                loggers = self._make_loggers(self.run)
                self._run_rounds(model, population, executor, loggers)
                for logger in loggers:
                    logger.finalize("success")
            except RunInterrupted as interrupt:
                if self.completed_rounds < self.num_rounds:
                    interrupt.round_idx = self.completed_rounds + 1
                self.run.remove_agent_checkpoints(after_round=self.completed_rounds)
                raise
            finally:
                executor.close()
                self.run.tidy()
        return self.history

    def state_dict(self) -> dict[str, Any]:
        """What the next round depends on, besides the global weights.

        Every random stream derives from (seed, round, agent), so the seed and the round
        counter restore all of them.
        """
        return {
            "round": self.completed_rounds,
            "seed": self.seed,
            "history": [dict(row) for row in self.history],
            "strategy": self.strategy.state_dict(),
            "config": self.run_config,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output; the seed must be the same."""
        if int(state["seed"]) != self.seed:
            raise ConfigError(
                f"seed {self.seed} differs from the seed of the run being resumed ({state['seed']})"
            )
        self.completed_rounds = int(state["round"])
        self.history = [dict(row) for row in state["history"]]
        self.strategy.load_state_dict(state["strategy"])

    def _resume(self, model: Learner, path: Path) -> RunFolder:
        checkpoint = load_checkpoint(path)
        state = checkpoint.get(FEDRL_KEY)
        if not isinstance(state, dict):
            raise ConfigError(f"checkpoint {path}: not a round checkpoint (no {FEDRL_KEY!r} entry)")
        try:
            model.load_state_dict(checkpoint["state_dict"])
        except RuntimeError as err:
            reason = " ".join(str(err).split())
            raise ConfigError(
                f"checkpoint {path}: its weights do not fit the model ({reason})"
            ) from None
        try:
            self.load_state_dict(state)
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"checkpoint {path}: incomplete round state ({err})") from None
        if self.completed_rounds > self.num_rounds:
            raise ConfigError(
                f"--trainer.num_rounds ({self.num_rounds}) is below the {self.completed_rounds} "
                f"rounds already done in {path}"
            )
        run = RunFolder.of_checkpoint(path)
        if run is None:
            return RunFolder.create(self.default_root_dir)
        discarded = run.rewind(path, self.history)
        if discarded:
            first, last = discarded[0], discarded[-1]
            rounds = f"{len(discarded)} later rounds ({first}-{last})"
            self._notice(
                f"resuming {run.path} after round {self.completed_rounds}: discarded "
                + (f"1 later round ({first})" if first == last else rounds)
            )
        return run

    def _start(self, resuming: bool) -> RunFolder:
        """The folder of a run starting at round 1: a new one, or an unfinished newest one.

        ``resuming``: ``--ckpt_path last`` found nothing to resume, so, as in Lightning, the
        run starts afresh; a newest run that completed no round is started again in place.
        """
        newest = RunFolder.newest(self.default_root_dir) if resuming else None
        if newest is not None:
            newest.clear()
            self._notice(
                f"--ckpt_path last: {newest.path} has no completed round; starting it again "
                "at round 1"
            )
            return newest
        run = RunFolder.create(self.default_root_dir)
        if resuming:
            self._notice(
                f"--ckpt_path last: no run to resume in {self.default_root_dir / RUNS_FOLDER}; "
                f"starting {run.path} at round 1"
            )
        return run

    def _notice(self, message: str) -> None:
        self.notices.append(message)
        log.info(message)

    def _make_executor(self) -> Executor:
        if self.executor == "sequential":
            return SequentialExecutor()
        return RayExecutor(self.num_workers, self.ray_address, self.round_timeout)

    def _make_loggers(self, run: RunFolder) -> list[Logger]:
        loggers: list[Logger] = [RoundCSVLogger(run.metrics, rows=self.history)]
        if _TENSORBOARD_AVAILABLE:
            loggers.append(
                TensorBoardLogger(
                    save_dir=str(run.path.parent),
                    name="",
                    version=run.path.name,
                    default_hp_metric=False,
                    purge_step=self.completed_rounds + 1,  # hides events of unfinished rounds
                )
            )
        return loggers

    def _run_rounds(
        self,
        model: Learner,
        population: AgentPopulation,
        executor: Executor,
        loggers: list[Logger],
    ) -> None:
        global_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        evaluated = evaluated_agents(population.num_agents, self.eval_agents)
        eval_agents = [a for a in evaluated for _ in range(self.eval_episodes)]
        eval_env = population.make_vector_env(eval_agents)
        last = self.history[-1] if self.history else {"episodes": 0, "env_steps": 0}
        totals = {"episodes": int(last["episodes"]), "env_steps": int(last["env_steps"])}
        progress = round_progress(self.num_rounds, self.enable_progress_bar, self.completed_rounds)
        first = self.completed_rounds + 1
        try:
            started = time.perf_counter()
            if first <= self.num_rounds:
                submitted = self._submit_round(first, model, global_state, executor)
            for round_idx in range(first, self.num_rounds + 1):
                trained = collect_round(
                    executor,
                    submitted,
                    self.min_agents_per_round,
                    self.keep_agent_checkpoints,
                    self.verbose,
                )
                updates, failures = trained.updates, trained.failures
                byzantine = [a for a in trained.agents if population.byzantine.attack_of(a)]
                global_state = aggregate_round(
                    self.strategy, global_state, updates, submitted.statistics
                )
                model.load_state_dict(global_state)
                if round_idx < self.num_rounds:  # the next round's fits run during evaluation
                    next_round = self._submit_round(round_idx + 1, model, global_state, executor)
                per_agent = evaluate_round(
                    model.policy, eval_env, eval_agents, self.eval_episodes, self.seed, round_idx
                )
                totals["episodes"] += sum(u.num_episodes for u in updates)
                totals["env_steps"] += sum(u.num_steps for u in updates)
                row = {
                    "round": round_idx,
                    "train_reward": float(np.mean([u.mean_return for u in updates])),
                    "eval_reward": float(per_agent.mean()),
                    "eval_reward_min": float(per_agent.min()),
                    **{
                        f"eval_reward/agent_{a}": float(r)
                        for a, r in zip(evaluated, per_agent, strict=True)
                    },
                    "num_failed_agents": len(failures),
                    "failed_agents": " ".join(str(a) for a in sorted(failures)),
                    "num_byzantine_agents": len(byzantine),
                    "byzantine_agents": " ".join(str(a) for a in sorted(byzantine)),
                    "bytes_sent": len(trained.agents) * submitted.sent_bytes,
                    "bytes_received": trained.bytes_received,
                    "episodes": totals["episodes"],
                    "env_steps": totals["env_steps"],
                    "round_time": time.perf_counter() - started,
                }
                self._commit_round(row, model, global_state, loggers)
                progress.set_postfix(progress_fields(row))
                progress.update()
                started = time.perf_counter()
                if round_idx < self.num_rounds:
                    submitted = next_round
        finally:
            progress.close()
            eval_env.close()

    def _submit_round(
        self,
        round_idx: int,
        model: Learner,
        global_state: dict[str, torch.Tensor],
        executor: Executor,
    ) -> SubmittedRound:
        agents = sample_agents(
            executor.population.num_agents, self.agents_per_round, self.seed, round_idx
        )
        model_hparams = dict(model.hparams)
        trainer_kwargs: dict[str, Any] = {
            "accelerator": self.accelerator,
            "devices": 1,
            "enable_progress_bar": self.verbose,
            "enable_model_summary": self.verbose,
        }
        tasks = [
            LocalFit(
                agent_id=agent_id,
                round_idx=round_idx,
                run_seed=self.seed,
                module_class=type(model),
                model_hparams=model_hparams,
                global_state=global_state,
                num_episodes=self.episodes_per_round,
                checkpoint_path=self.run.agent_checkpoint(round_idx, agent_id),
                trainer_kwargs=trainer_kwargs,
                proximal_mu=self.strategy.proximal_mu,
            )
            for agent_id in agents
        ]
        return submit_round(executor, tasks, model_hparams, tuple(model.statistics_modules()))

    def _commit_round(
        self,
        row: dict[str, Any],
        model: Learner,
        global_state: dict[str, torch.Tensor],
        loggers: list[Logger],
    ) -> None:
        """Record a finished round: its metrics row, round checkpoint and logs.

        A signal waits until all of it is written, so ``last.ckpt``, ``metrics.csv`` and
        ``completed_rounds`` always agree on the last completed round.
        """
        with deferred_signals():
            self.history.append(row)
            self.completed_rounds = row["round"]
            self._save_round(model, global_state, row["round"])
            log_round(loggers, row)

    def _save_round(
        self, model: Learner, global_state: dict[str, torch.Tensor], round_idx: int
    ) -> None:
        checkpoint = policy_checkpoint(
            global_state,
            dict(model.hparams),
            type(model).__name__,
            **{FEDRL_KEY: self.state_dict()},
        )
        atomic_save(checkpoint, self.run.round_checkpoint(round_idx))
        atomic_save(checkpoint, self.run.last_checkpoint)
        if best_round(self.history) == round_idx:
            atomic_save(checkpoint, self.run.best_checkpoint)
