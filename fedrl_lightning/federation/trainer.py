"""The federated outer loop: sample agents, fit each locally, aggregate, evaluate, checkpoint."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Literal

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.callbacks import Callback
from fedrl_lightning.federation.callbacks.run_callbacks import run_callbacks
from fedrl_lightning.federation.components.base import FitPart, RoundComponent
from fedrl_lightning.federation.evaluation import RoundEvaluation, evaluated_agents
from fedrl_lightning.federation.executors.base import Executor, SequentialExecutor
from fedrl_lightning.federation.executors.ray import RayExecutor
from fedrl_lightning.federation.local_adaptation import LocalAdaptation
from fedrl_lightning.federation.local_fit import LocalFit, lr_scale
from fedrl_lightning.federation.local_round import (
    SubmittedRound,
    TrainedRound,
    collect_round,
    submit_round,
)
from fedrl_lightning.federation.round_metrics import (
    metric_names,
    round_row,
    task_columns,
    upgraded_row,
)
from fedrl_lightning.federation.sampling import sample_agents
from fedrl_lightning.federation.server.base import ServerModel
from fedrl_lightning.federation.server.choice import ServerChoice, Shared
from fedrl_lightning.federation.settings_checks import (
    check_accelerator,
    check_callbacks,
    check_component_names,
    check_executor_options,
    check_output_folder,
    check_round_options,
)
from fedrl_lightning.federation.strategies import RewardWeighted, Strategy
from fedrl_lightning.federation.strategies.local_terms import STRATEGY_KEY
from fedrl_lightning.learners import Learner
from fedrl_lightning.population.agents import AgentPopulation
from fedrl_lightning.run.checkpoints import (
    ROUND_STATE_KEY,
    atomic_save,
    atomic_write_text,
    load_checkpoint,
    policy_checkpoint,
)
from fedrl_lightning.run.console import quiet_lightning
from fedrl_lightning.run.interrupts import RunInterrupted, deferred_signals, stop_on_signals
from fedrl_lightning.run.logger_checks import given_loggers, probe_loggers
from fedrl_lightning.run.loggers import LoggerOption
from fedrl_lightning.run.metrics_csv import csv_text
from fedrl_lightning.run.run_folder import RunFolder, resolve_checkpoint
from fedrl_lightning.run.run_start import fresh_run, resumed_run

__all__ = ["FEDRL_KEY", "FederatedTrainer"]

FEDRL_KEY = ROUND_STATE_KEY  # where a round checkpoint keeps the federated state
log = logging.getLogger(__name__)


class FederatedTrainer:
    """Runs federated REINFORCE: every round, sampled agents train the global policy locally.

    Each round samples ``agents_per_round`` agents without replacement, fits a fresh
    ``lightning.Trainer`` per agent starting from the global weights, saves each agent's
    checkpoint, aggregates the checkpoints with ``strategy``, evaluates the new global policy
    on every agent's environment, and saves the round checkpoint, ``last.ckpt``. Callbacks
    (:class:`~fedrl_lightning.federation.callbacks.Callback`) hook around the rounds: by
    default :class:`RoundCheckpoint` keeps every round's checkpoint and
    :class:`BestCheckpoint` the best round's, ``best.ckpt``; the metrics go to ``metrics.csv``
    and the loggers. Outputs go to ``<default_root_dir>/lightning_logs/version_N/``.

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
        finetune_episodes: Local adaptation: after each round, the global policy (each
            agent's task's) is also fine-tuned for this many episodes on each evaluated
            agent's own environment (a local fit from random streams of its own, which never
            changes training) and evaluated on the same episodes (``eval_reward_finetuned``).
            0: off.
        accelerator: Accelerator for local fits (``cpu``, ``gpu``, ``auto``, ...).
        executor: Where local fits run: ``sequential``, one after another in this process,
            or ``ray``, as Ray tasks in parallel (the ``ray`` extra).
            Both give the same weights and metrics.
        num_workers: With ``executor: ray``, the CPUs of the local Ray instance, one fit per
            CPU; ``None``: all of this machine's.
        ray_address: With ``executor: ray``, an existing cluster to join (``auto`` or
            ``ray://host:port``); ``None`` starts a local Ray instance.
        round_timeout: With ``executor: ray``, seconds a round waits for its local fits;
            fits still running then are cancelled and count as failed agents. ``None``: no
            limit. When it cuts fits short, which ones depends on timing, so such a round is
            no longer reproducible.
        lr_schedule: The learners' learning rate over rounds: ``constant``, or ``linear``,
            which scales it by ``1 - (round - 1) / num_rounds`` (CleanRL's annealing, by
            round), so PPO settles as the run ends. Extending a finished run with a larger
            ``num_rounds`` changes the schedule of the rounds still to come.
        default_root_dir: Folder under which ``lightning_logs/`` is created.
        keep_agent_checkpoints: Keep every agent's checkpoint in the run folder's ``agents/``
            instead of deleting it once aggregated.
        server: The server's model, by ``class_path``: ``Shared`` (the default when
            ``None``: shared weights, with sharing scopes for personalization), ``Clustered``
            (IFCA), ``Gradient`` (agents send gradients) or ``Distilled`` (policy
            distillation); see :mod:`~fedrl_lightning.federation.server.choice`.
        components: Round components, by ``class_path``
            (:class:`~fedrl_lightning.federation.components.base.RoundComponent`), in the
            order they run: each gives every sampled agent's fit its part, combines what they
            send back, and adds its columns and its state to every round. Shipped:
            ``TrajectorySharing`` (shared trajectory replay) and ``Coverage`` (the fraction of
            the observation space the training agents visited).
        logger: Where the rounds' metrics go besides ``metrics.csv``, which is always
            written: ``None`` or ``True``, TensorBoard in the run folder (when installed);
            ``False``, nowhere else; or any Lightning ``Logger``, or a list of them, by
            ``class_path`` (``MLFlowLogger``, ``WandbLogger``, ...). Each gets every round's
            numbers with ``step = round``, and the resolved config as hyperparameters.
        callbacks: Federated callbacks, such as ``EarlyStopping``; a
            ``RoundCheckpoint()`` and a ``BestCheckpoint()`` are added unless given.
        enable_progress_bar: Show the progress bar over rounds.
        verbose: Show Lightning's output for every local fit (banners, bars, summaries)
            and why each failed agent failed.
        seed: The run seed; the command line sets it from ``--seed_everything``.
    """

    server: ServerModel  # the server's side of the model, made by fit
    _evaluated: list[int]  # the agents evaluated after every round

    def __init__(
        self,
        num_rounds: int = 50,
        agents_per_round: int = 5,
        episodes_per_round: int = 10,
        strategy: Strategy | None = None,
        min_agents_per_round: int = 1,
        eval_episodes: int = 10,
        eval_agents: int | None = 10,
        finetune_episodes: int = 0,
        accelerator: str = "cpu",
        executor: Literal["sequential", "ray"] = "sequential",
        num_workers: int | None = None,
        ray_address: str | None = None,
        round_timeout: float | None = None,
        lr_schedule: Literal["constant", "linear"] = "constant",
        default_root_dir: str = ".",
        keep_agent_checkpoints: bool = False,
        server: ServerChoice | None = None,
        components: list[RoundComponent] | None = None,
        logger: LoggerOption = None,
        callbacks: list[Callback] | None = None,
        enable_progress_bar: bool = True,
        verbose: bool = False,
        seed: int = 42,
    ) -> None:
        check_round_options(
            num_rounds=num_rounds,
            agents_per_round=agents_per_round,
            episodes_per_round=episodes_per_round,
            min_agents_per_round=min_agents_per_round,
            eval_episodes=eval_episodes,
            eval_agents=eval_agents,
            num_workers=num_workers,
            round_timeout=round_timeout,
            lr_schedule=lr_schedule,
            finetune_episodes=finetune_episodes,
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
        self.finetune_episodes = finetune_episodes
        self.accelerator = accelerator
        self.executor = executor
        self.num_workers = num_workers
        self.ray_address = ray_address
        self.round_timeout = round_timeout
        self.lr_schedule = lr_schedule
        self.default_root_dir = Path(default_root_dir)
        self.keep_agent_checkpoints = keep_agent_checkpoints
        self.components: list[RoundComponent] = list(components or [])
        check_component_names(self.components)
        self._learner_components: list[RoundComponent] = []  # the model's, set by fit
        self.server_choice = server if server is not None else Shared()
        self.server_choice.check(self)
        self.logger = logger
        self.callbacks = list(callbacks or [])
        check_callbacks(self.callbacks)
        self.enable_progress_bar = enable_progress_bar
        self.verbose = verbose
        self.seed = seed
        self.run: RunFolder | None = None
        self.run_config: str | None = None
        self.completed_rounds = 0
        self.resumed_round = 0
        self.history: list[dict[str, Any]] = []
        self.notices: list[str] = []
        self.should_stop = False
        self.stop_reason: str | None = None

    @property
    def run_dir(self) -> Path | None:
        """The run's folder, once ``fit`` has started."""
        return self.run.path if self.run is not None else None

    @property
    def active_run(self) -> RunFolder:
        """The run's folder, from the start of ``fit`` on: for the rounds and the callbacks.

        Raises:
            RuntimeError: Before ``fit`` has opened the folder (``run`` is still ``None``).
        """
        if self.run is None:
            raise RuntimeError("the run folder is opened by fit")
        return self.run

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
        self.model, self.population = model, population
        self._learner_components = model.round_components()
        check_component_names([*self.components, *self._learner_components])
        for component in [*self.components, *self._learner_components]:
            component.setup(self, model, population)
        self.server = self.server_choice.build(model, population, self.strategy, self.seed)
        self.run_config = run_config
        self.notices, self.should_stop, self.stop_reason = [], False, None
        probe_loggers(given_loggers(self.logger))
        self._hooks = run_callbacks(self.logger, self.callbacks, self.enable_progress_bar)
        for callback in self._hooks:
            callback.setup(self, model)
        checkpoint = (
            None if ckpt_path is None else resolve_checkpoint(ckpt_path, self.default_root_dir)
        )
        if checkpoint is not None:
            self._resume(model, checkpoint)
        else:
            self.completed_rounds, self.history = 0, []
            self.run, notice = fresh_run(self.default_root_dir, resuming=ckpt_path is not None)
            self._notice(notice)
        self.resumed_round = self.completed_rounds
        run = self.active_run
        run.prepare()
        for component in self.round_components:
            component.open(run)
        if run_config is not None:
            atomic_write_text(run_config, run.config)
        if population.agents_differ:
            atomic_write_text(csv_text(population.agent_table()), run.agents_table)
        executor = self._make_executor()
        with stop_on_signals(), quiet_lightning(self.verbose):
            try:
                executor.open(population, self.verbose)
                self._call("on_fit_start")
                self._run_rounds(model, population, executor)
                self._call("on_fit_end")
            except BaseException as failure:
                self._call("on_exception", failure)
                if isinstance(failure, RunInterrupted):
                    if self.completed_rounds < self.num_rounds:
                        failure.round_idx = self.completed_rounds + 1
                    run.remove_agent_checkpoints(after_round=self.completed_rounds)
                    for component in self.round_components:
                        component.discard_pending()
                elif isinstance(failure, ConfigError) and self.completed_rounds == 0:
                    self._remove_new_run()
                raise
            finally:
                executor.close()
                run.tidy()
        return self.history

    def stop(self, reason: str) -> None:
        """End the run after the current round, as a callback decides; ``reason`` says why."""
        self.should_stop, self.stop_reason = True, reason

    @property
    def round_components(self) -> list[RoundComponent]:
        """The server model, the components given, then the learner's, in the order they run."""
        return [self.server, *self.components, *self._learner_components]

    def metric_names(self) -> list[str]:
        """The numeric columns of this run's metrics rows, for callbacks that monitor one."""
        evaluated = evaluated_agents(self.population.num_agents, self.eval_agents)
        tasks = len(self.population.task_sizes)
        finetuned = self.finetune_episodes > 0
        names = metric_names(self.model, evaluated, self.server.own_policies, tasks, finetuned)
        for component in self.round_components:
            names += component.metric_names()
        return names

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
            "callbacks": {c.state_key: c.state_dict() for c in self._hooks if c.state_dict()},
            **{c.name: c.state_dict() for c in self.round_components},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output; the seed must be the same."""
        if int(state["seed"]) != self.seed:
            raise ConfigError(
                f"seed {self.seed} differs from the seed of the run being resumed ({state['seed']})"
            )
        self.completed_rounds = int(state["round"])
        self.history = [upgraded_row(row) for row in state["history"]]
        self.strategy.load_state_dict(state["strategy"])
        for component in self.round_components:
            component.load_state_dict(state.get(component.name, {}))
        saved = state.get("callbacks", {})  # none in checkpoints from before callbacks
        for callback in self._hooks:
            if callback.state_key in saved:
                callback.load_state_dict(saved[callback.state_key])

    def _resume(self, model: Learner, path: Path) -> None:
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
        except ConfigError:
            raise
        except Exception as err:  # a damaged or foreign state fails wherever it is read
            reason = " ".join(str(err).split()) or type(err).__name__
            raise ConfigError(f"checkpoint {path}: incomplete round state ({reason})") from None
        if self.completed_rounds > self.num_rounds:
            raise ConfigError(
                f"--trainer.num_rounds ({self.num_rounds}) is below the {self.completed_rounds} "
                f"rounds already done in {path}"
            )
        self.server.resume_weights(model.state_dict())
        for component in self.round_components:
            component.resume(path, self.completed_rounds)
        self.run, notice = resumed_run(path, self.default_root_dir, self.history)
        self._notice(notice)

    def _remove_new_run(self) -> None:
        """Remove the run folder this fit created, when it was refused before any round ended.

        A refusal that can only show up once the run has started (a logger that cannot
        write, a setting an environment rejects) leaves no folder behind, as one found
        before the start does not.
        """
        if self.run is not None and self.run.created:
            shutil.rmtree(self.run.path, ignore_errors=True)

    def _notice(self, message: str | None) -> None:
        if message is not None:
            self.notices.append(message)
            log.info(message)

    def _call(self, hook: str, *args: Any) -> None:
        """Call ``hook`` of every callback with the trainer and ``args``."""
        for callback in self._hooks:
            getattr(callback, hook)(self, *args)

    def _make_executor(self) -> Executor:
        if self.executor == "sequential":
            return SequentialExecutor()
        return RayExecutor(self.num_workers, self.ray_address, self.round_timeout)

    def _run_rounds(self, model: Learner, population: AgentPopulation, executor: Executor) -> None:
        """Run the rounds after the last completed one, until ``num_rounds`` or a stop.

        Each round collects its agents' fits, lets every round component aggregate them,
        evaluates the new global policy and commits the round. Round r+1's fits are submitted
        as soon as round r is aggregated, so that they run while round r is evaluated.
        """
        evaluation = self._evaluation(model, population)
        first = self.completed_rounds + 1
        pending = None
        started = time.perf_counter()  # a round's time includes submitting its fits
        if first <= self.num_rounds and not self.should_stop:
            pending = self._submit_round(first, model, executor)
        try:
            for round_idx in range(first, self.num_rounds + 1):
                if self.should_stop or pending is None:  # a callback ended the run
                    break
                self._call("on_round_start", round_idx)
                submitted = pending
                trained = collect_round(
                    executor,
                    submitted,
                    self.min_agents_per_round,
                    self.keep_agent_checkpoints,
                    self.verbose,
                )
                for component in self.round_components:
                    component.aggregate(trained.updates, round_idx)
                model.load_state_dict(self.server.global_state)
                pending = None
                if round_idx < self.num_rounds:  # the next round's fits run during evaluation
                    pending = self._submit_round(round_idx + 1, model, executor)
                per_agent, columns = evaluation.run(self.seed, round_idx)
                elapsed = time.perf_counter() - started
                self._commit_round(
                    self._round_row(submitted, trained, per_agent, elapsed) | columns, model
                )
                started = time.perf_counter()
        finally:
            evaluation.close()

    def _evaluation(self, model: Learner, population: AgentPopulation) -> RoundEvaluation:
        """The evaluation after each round: of the global policy, and of each agent's own."""
        self._evaluated = evaluated_agents(population.num_agents, self.eval_agents)
        adaptation = None
        if self.finetune_episodes:  # local adaptation, evaluated beside the global policy
            adaptation = LocalAdaptation(
                model, population, self.finetune_episodes, self.accelerator, self.verbose
            )
        return RoundEvaluation(
            model, population, self._evaluated, self.eval_episodes, self.server, adaptation
        )

    def _round_row(
        self, submitted: SubmittedRound, trained: TrainedRound, per_agent: Any, elapsed: float
    ) -> dict[str, Any]:
        """A round's metrics row, but for the evaluation's own columns."""
        last = self.history[-1] if self.history else {"episodes": 0, "env_steps": 0}
        totals = {
            "episodes": int(last["episodes"]) + sum(u.num_episodes for u in trained.updates),
            "env_steps": int(last["env_steps"]) + sum(u.num_steps for u in trained.updates),
        }
        population, evaluated = self.population, self._evaluated
        byzantine = [a for a in trained.agents if population.byzantine.attack_of(a)]
        row = round_row(submitted, trained, byzantine, evaluated, per_agent, totals, elapsed)
        row |= task_columns(evaluated, per_agent, trained.updates, population.task_sizes)
        for component in self.round_components:
            row |= component.round_columns()
        return row

    def _submit_round(self, round_idx: int, model: Learner, executor: Executor) -> SubmittedRound:
        agents = sample_agents(
            executor.population.num_agents, self.agents_per_round, self.seed, round_idx
        )
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
                model_hparams=self.server.hparams_of(agent_id),
                global_state=self.server.global_state,
                num_episodes=self.episodes_per_round,
                checkpoint_path=self.active_run.agent_checkpoint(round_idx, agent_id),
                trainer_kwargs=trainer_kwargs,
                lr_scale=lr_scale(self.lr_schedule, round_idx, self.num_rounds),
                extras=self._fit_parts(agent_id, round_idx),
            )
            for agent_id in agents
        ]
        return submit_round(executor, tasks, tuple(model.statistics_modules()))

    def _fit_parts(self, agent: int, round_idx: int) -> dict[str, FitPart]:
        """Agent ``agent``'s parts of its fit in ``round_idx``: the strategy's and components'."""
        parts: dict[str, FitPart] = {}
        terms = self.strategy.fit_part()
        if terms is not None:
            parts[STRATEGY_KEY] = terms
        for component in self.round_components:
            part = component.fit_inputs(agent, round_idx)
            if part is not None:
                parts[component.name] = part
        return parts

    def _commit_round(self, row: dict[str, Any], model: Learner) -> None:
        """Record a finished round: the callbacks see its row, then its checkpoint is saved.

        A signal waits until all of it is done, so ``last.ckpt``, ``metrics.csv``,
        ``completed_rounds`` and what the components keep in the run folder always agree on
        the last completed round.

        Args:
            row: The round's metrics.
            model: The global model, whose hyperparameters the checkpoint records.
        """
        with deferred_signals():
            self.history.append(row)
            self.completed_rounds = row["round"]
            self._call("on_round_end", row)
            checkpoint = policy_checkpoint(
                self.server.global_state,
                dict(model.hparams),
                type(model).__name__,
                **{FEDRL_KEY: self.state_dict()},
            )
            last = self.active_run.last_checkpoint
            atomic_save(checkpoint, last)
            for component in self.round_components:
                component.commit()
            self._call("on_round_saved", row["round"], last)
