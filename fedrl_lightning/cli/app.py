"""``python -m fedrl_lightning``: the LightningCLI for federated runs, with one-line errors."""

from __future__ import annotations

import copy
import gc
import importlib
import logging
import os
import random
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, cast

from jsonargparse import Namespace, lazy_instance
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from typing_extensions import override

from fedrl_lightning.cli.class_choice import fit_config_sections
from fedrl_lightning.cli.commands import ALIASES, COMMANDS, command_module, run_command
from fedrl_lightning.cli.parse_errors import (
    check_config_files,
    config_error_of,
    construction_error,
    one_line,
    refuse_nulls,
)
from fedrl_lightning.cli.renamed import renamed_option
from fedrl_lightning.cli.resume import check_unchanged, saved_config
from fedrl_lightning.errors import ConfigError, FederationError
from fedrl_lightning.federation.settings_checks import RAY_ONLY_OPTIONS
from fedrl_lightning.federation.strategies import RewardWeighted, all_strategies
from fedrl_lightning.federation.trainer import FederatedTrainer
from fedrl_lightning.learners import LEARNERS, Learner, Reinforce
from fedrl_lightning.population.agents import AgentPopulation
from fedrl_lightning.run.console import finished_line
from fedrl_lightning.run.interrupts import RunInterrupted, stop_on_signals
from fedrl_lightning.run.logger_checks import check_logger_packages, check_mlflow_store
from fedrl_lightning.run.run_folder import resolve_checkpoint

__all__ = ["FedRLCLI", "main"]

DESCRIPTION = "Federated reinforcement learning on PyTorch Lightning."
PROG = "python -m fedrl_lightning"
MAX_SEED = 2**32 - 1  # numpy's seeds, and so Lightning's, are unsigned 32-bit integers
PRINT_CONFIG = "--print_config"

log = logging.getLogger(__name__)


def is_print_config(arg: str) -> bool:
    """Whether ``arg`` is ``--print_config`` or ``--print_config=flags``."""
    return arg.split("=", 1)[0] == PRINT_CONFIG


def without_print_config(args: list[str]) -> list[str]:
    """``args`` less ``--print_config``, which would print the config and exit."""
    return [arg for arg in args if not is_print_config(arg)]


def _class_options() -> dict[str, str]:
    """What to say when an option that takes a class names no known class."""
    strategies = ", ".join(cls.__name__ for cls in all_strategies())
    learners = ", ".join(cls.__name__ for cls in LEARNERS)
    callbacks = "EarlyStopping, RoundCheckpoint, BestCheckpoint"
    return {
        "trainer.strategy": f"not a known strategy (built in: {strategies}; or give a class_path)",
        "model": f"not a known learner (built in: {learners}; or give a class_path)",
        "trainer.callbacks": f"not a known callback (built in: {callbacks}; or give a class_path)",
        "trainer.components": "not a known round component (built in: TrajectorySharing, "
        "Coverage; or give a class_path)",
        "trainer.server": "not a known server model (built in: Shared, Clustered, Gradient, "
        "Distilled; or give a class_path)",
        "trainer.logger": "not a known logger (a Lightning Logger such as MLFlowLogger or "
        "TensorBoardLogger, a class_path, a list of them, true or false)",
    }


class FedRLArgumentParser(LightningArgumentParser):
    """A LightningCLI parser whose errors become a :class:`ConfigError` instead of usage text."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        """Raise the parse error as one line; a logger whose package is missing says which."""
        if "trainer.logger" in message:
            check_logger_packages(message)
        renamed = renamed_option(message)
        if renamed is not None:
            raise renamed
        raise ConfigError(one_line(message, _class_options()))


SUBCLASS_DEFAULTS: dict[str, type] = {"trainer.strategy": RewardWeighted, "model": Reinforce}
"""The class each subclass-mode option has when the command line names none."""

_Parsers = tuple[LightningArgumentParser, dict[str, LightningArgumentParser], dict[str, list[str]]]
_BUILT_PARSERS: dict[str, _Parsers] = {}
"""The parsers this process built, by their arguments: :meth:`FedRLCLI.setup_parser`."""


class FedRLCLI(LightningCLI):
    """The LightningCLI of federated runs.

    Its ``trainer``, ``model`` and ``data`` sections configure a :class:`FederatedTrainer`, a
    learner (:class:`Reinforce` by default, ``--model A2C`` or ``--model PPO``) and an
    :class:`AgentPopulation`.

    Args:
        args: Command-line arguments; ``None`` reads ``sys.argv``.
        prog: The command's name in usage lines.
    """

    def __init__(self, args: list[str] | None = None, prog: str = PROG) -> None:
        super().__init__(
            model_class=Learner,
            # Our own data and trainer classes, not Lightning's: this CLI builds and runs them
            # itself (instantiate_trainer, fit), so Lightning never uses them as its own.
            datamodule_class=AgentPopulation,  # type: ignore[arg-type]
            trainer_class=FederatedTrainer,  # type: ignore[arg-type]
            save_config_callback=None,
            seed_everything_default=42,
            parser_kwargs={
                "description": DESCRIPTION,
                "prog": prog,
                "allow_abbrev": False,
                "fit": {"allow_abbrev": False},
            },
            parser_class=FedRLArgumentParser,
            auto_configure_optimizers=False,
            load_from_checkpoint_support=False,
            args=args,
        )

    @override
    def setup_parser(
        self, add_subcommands: bool, main_kwargs: dict[str, Any], subparser_kwargs: dict[str, Any]
    ) -> None:
        """Build the parser once a process; each command parses with a copy of it.

        Building it (jsonargparse reads the signature and docstring of every class) costs
        more than parsing a refused command; a process that runs :func:`main` many times
        (the tests run it hundreds of times) builds it once. Each command gets a deep copy,
        so its changes to its parser (:meth:`_parse` sets defaults) stay its own. The parser
        holds plain values and classes only (jsonargparse keeps a ``lazy_instance`` default
        as its ``class_path``), so copying it builds nothing.
        """
        key = repr((add_subcommands, main_kwargs, subparser_kwargs))
        if key not in _BUILT_PARSERS:
            super().setup_parser(add_subcommands, main_kwargs, subparser_kwargs)
            _BUILT_PARSERS[key] = (
                self.parser,
                getattr(self, "_subcommand_parsers", {}),
                getattr(self, "_subcommand_method_arguments", {}),
            )
        self.parser, self._subcommand_parsers, self._subcommand_method_arguments = copy.deepcopy(
            _BUILT_PARSERS[key]
        )

    @override
    def _parse_ckpt_path(self) -> None:
        """Leave the model's config as :meth:`parse_arguments` resumed it from the run's config.

        Lightning would re-read the checkpoint's hyperparameters as the default learner's
        arguments, which fails for any other learner. A run started from Python saved no
        config; its hyperparameters are read as Lightning reads them.
        """
        if not self._resumed_saved_config:
            super()._parse_ckpt_path()

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse the command line; with ``--ckpt_path``, on top of the resumed run's config.

        The checkpoint's config comes first, then the command's own ``--config`` files and
        options, so ``fit --ckpt_path last`` alone continues the run as it was configured.
        Options that would change the experiment are refused. ``--print_config`` prints the
        config the run will use, that of the resumed run included, and exits.
        """
        args = list(sys.argv[1:] if args is None else args)
        self._resumed_saved_config = False
        check_config_files(args)
        self.config, args = self._parse(parser, args)
        fit = self.config.fit if self.config.get("subcommand") == "fit" else None
        path = None
        if fit is not None and fit.get("ckpt_path") is not None:
            path = resolve_checkpoint(fit.ckpt_path, fit.trainer.default_root_dir)
        if fit is not None and path is not None:
            saved = saved_config(path)
            if saved is not None:
                self._resumed_saved_config = True
                at = args.index("fit") + 1
                args = [*args[:at], "--config", saved, *args[at:]]
                try:  # the command's own options parsed alone: what fails now is the saved config
                    self.config, args = self._parse(parser, args)
                except ConfigError as err:
                    raise ConfigError(
                        f"--ckpt_path {path}: the config it saved is not usable ({err})"
                    ) from None
                reset = self._drop_ray_options(own=fit.trainer, merged=self.config.fit.trainer)
                if reset:
                    args += reset
                    self.config, args = self._parse(parser, args)
                # Both sides as this parser writes them: a config saved by an older version
                # (a flat ``model`` section, say) compares by meaning, not by spelling.
                saved_now = self._dump_fit_config(
                    self._parse(parser, ["fit", "--config", saved])[0]
                )
                check_unchanged(saved_now, self._dump_fit_config(), path)
            self.config.fit.ckpt_path = str(path)
            args += ["--ckpt_path", str(path)]
        if any(is_print_config(arg) for arg in args):
            parser.parse_args(args)  # prints the config and exits
        if fit is not None:
            check_logger_packages(str(self.config.fit.trainer.logger))
            refuse_nulls(self._parser("fit"), self.config.fit)
            self.config.fit.seed_everything = self._resolve_seed(self.config.fit.seed_everything)
            self.config.fit.data.seed = self.config.fit.seed_everything

    def _parse(
        self, parser: LightningArgumentParser, args: list[str]
    ) -> tuple[Namespace, list[str]]:
        """Parse ``args``; a class chosen over a default class gets its own defaults.

        jsonargparse gives a newly chosen class the default instance's arguments that it
        also accepts (its issue #460), so ``--model PPO`` would train with REINFORCE's
        learning rate. Parsing again with the chosen classes as the defaults gives them
        their own defaults, and keeps every value the command line or a config gave. A
        config's options for the default class (``--config configs/cartpole.yaml --model
        PPO``) carry over where the chosen class takes them too; the others are left out,
        with a notice (see :func:`fit_config_sections`).

        Args:
            parser: The command's parser.
            args: The command line; ``--print_config`` is left out of the parse.

        Returns:
            The parsed config, and the command line with such configs fitted to the chosen
            classes, for parsing it again on top of a resumed run's config.
        """
        config = parser.parse_args(without_print_config(args))
        if config.get("subcommand") != "fit":
            return config, args
        chosen = {}
        for key, default in SUBCLASS_DEFAULTS.items():
            class_path = config.fit.get(f"{key}.class_path")
            if class_path and class_path != f"{default.__module__}.{default.__name__}":
                module, _, name = class_path.rpartition(".")
                chosen[key] = getattr(importlib.import_module(module), name)
        if not chosen:
            return config, args
        self._parser("fit").set_defaults(
            {key: {"class_path": f"{cls.__module__}.{cls.__name__}"} for key, cls in chosen.items()}
        )
        for key, cls in chosen.items():
            args, notices = fit_config_sections(args, key, cls)
            for notice in notices:
                log.info(notice)
        return parser.parse_args(without_print_config(args)), args

    @staticmethod
    def _drop_ray_options(own: Any, merged: Any) -> list[str]:
        """Options that reset the Ray settings a resumed run's config brings to a sequential run.

        A Ray run resumed with ``--trainer.executor sequential`` would otherwise inherit its
        ``num_workers`` (say), which a sequential run refuses; options the command gives
        itself are kept, and refused.
        """
        if merged.executor != "sequential":
            return []
        return [
            f"--trainer.{name}=null"
            for name in RAY_ONLY_OPTIONS
            if own[name] is None and merged[name] is not None
        ]

    @staticmethod
    def _resolve_seed(seed: Any) -> int:
        """``--seed_everything``: an integer seed, or ``true`` for a random one, as Lightning.

        A random seed is printed, and recorded in ``config.yaml`` like a given one.
        """
        if seed is True:
            seed = random.randint(0, MAX_SEED)
            print(f"seed_everything: picked {seed} at random (config.yaml records it)")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(
                f"--seed_everything: a federated run needs a seed, got {seed!r} "
                f"(give an integer in [0, {MAX_SEED}], or true to pick one at random)"
            )
        if not 0 <= seed <= MAX_SEED:
            raise ConfigError(f"--seed_everything must be in [0, {MAX_SEED}], got {seed}")
        return seed

    def instantiate_classes(self) -> None:
        """Build the trainer, model and population; a constructor's refusal is one line."""
        try:
            super().instantiate_classes()
        except Exception as err:
            check_logger_packages(str(self.config.fit.trainer.logger))
            check_mlflow_store(str(err))
            config_error = config_error_of(err) or construction_error(err, self.config.fit)
            raise config_error from None

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Only ``fit``; the run's config is passed by the CLI itself."""
        return {"fit": {"model", "datamodule", "run_config"}}

    @override
    def _add_subcommands(self, parser: LightningArgumentParser, **kwargs: Any) -> None:
        """Add ``fit``, and list the other subcommands in ``--help``.

        :func:`main` runs ``evaluate``, ``test``, ``report`` and ``export`` itself, before
        this parser sees them; they are here so that ``--help`` names every subcommand.
        """
        super()._add_subcommands(parser, **kwargs)
        for name in COMMANDS:
            module = command_module(name)
            prog = f"{parser.prog} {name}"
            description = f"The same as {ALIASES[name]}." if name in ALIASES else None
            assert parser._subcommands_action is not None  # super()._add_subcommands added it
            parser._subcommands_action.add_subcommand(
                name, module.build_parser(prog), help=description or module.DESCRIPTION
            )

    def add_core_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Add the trainer, model and data sections."""
        parser.add_class_arguments(
            FederatedTrainer,
            "trainer",
            instantiate=False,
            fail_untyped=False,
            sub_configs=True,
            skip={"seed"},
        )
        parser.add_lightning_class_args(Learner, "model", subclass_mode=True)
        parser.add_class_arguments(AgentPopulation, "data", fail_untyped=False, sub_configs=True)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Default the strategy and size the policy from the environment's spaces."""
        parser.set_defaults({key: lazy_instance(cls) for key, cls in SUBCLASS_DEFAULTS.items()})
        for name in ("observation_dim", "num_actions", "continuous", "action_low", "action_high"):
            parser.link_arguments(f"data.{name}", f"model.init_args.{name}", apply_on="instantiate")
        # A placeholder until parse_arguments resolves the seed (``true`` picks one at random).
        parser.link_arguments(
            "seed_everything", "data.seed", compute_fn=_placeholder_seed, apply_on="parse"
        )

    # A FederatedTrainer, not Lightning's Trainer: only this class's fit and after_fit use it.
    def instantiate_trainer(self, **kwargs: Any) -> FederatedTrainer:  # type: ignore[override]
        """Build the federated trainer, seeded from ``--seed_everything``."""
        config = dict(self._get(self.config_init, "trainer"), **kwargs)
        return FederatedTrainer(**config, seed=self._run_seed())

    def fit(self, model: Learner, datamodule: AgentPopulation, **kwargs: Any) -> None:
        """Run the federated fit, saving the resolved config in the run folder."""
        run_config = self._dump_fit_config()
        started = time.perf_counter()
        self._federated_trainer().fit(model, datamodule, run_config=run_config, **kwargs)
        self.fit_seconds = time.perf_counter() - started

    def after_fit(self) -> None:
        """Print the run's summary."""
        trainer = self._federated_trainer()
        last = trainer.history[-1]
        print(finished_line(trainer.history, trainer.resumed_round, self.fit_seconds))
        if trainer.stop_reason is not None:
            print(
                f"Stopped after round {trainer.completed_rounds} of {trainer.num_rounds}: "
                f"{trainer.stop_reason}."
            )
        personalized = (
            f", eval_reward_personalized {last['eval_reward_personalized']:.2f} (worst agent "
            f"{last['eval_reward_personalized_min']:.2f})"
            if "eval_reward_personalized" in last
            else ""
        )
        print(
            f"Final eval_reward {last['eval_reward']:.2f} (worst agent "
            f"{last['eval_reward_min']:.2f}){personalized}, train_reward "
            f"{last['train_reward']:.2f}."
        )
        failed = sum(int(row["num_failed_agents"]) for row in trainer.history)
        if failed:
            print(
                f"{failed} local fits failed and were left out: failed_agents in metrics.csv "
                "lists them, --trainer.verbose true shows why."
            )
        print(f"Run folder: {trainer.run_dir}")

    def _federated_trainer(self) -> FederatedTrainer:
        """The trainer :meth:`instantiate_trainer` built, which LightningCLI types as its own."""
        return cast(FederatedTrainer, self.trainer)

    def _dump_fit_config(self, parsed: Any = None) -> str:
        """The experiment's resolved config, without ``ckpt_path``, so it reruns from round 1.

        Args:
            parsed: A parsed command line; ``None``: this command's.
        """
        config = (self.config if parsed is None else parsed).fit.clone()
        config.pop("ckpt_path", None)
        return self._parser("fit").dump(config, skip_none=False)

    def _run_seed(self) -> int:
        return int(self._get(self.config, "seed_everything"))


def _placeholder_seed(seed: Any) -> int:
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else 0


@contextmanager
def notices_on_stderr() -> Iterator[None]:
    """Print the package's log records of ``INFO`` and above to stderr, one line each.

    The federated trainer logs what it did to start at ``INFO`` (a run started again at
    round 1, later rounds discarded); the command line shows it, the Python API does not.
    """
    logger = logging.getLogger("fedrl_lightning")
    handler = logging.StreamHandler(sys.stderr)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def main(args: list[str] | None = None, prog: str = PROG) -> int:
    """Run the command line and turn configuration errors and signals into one line on stderr.

    SIGINT and SIGTERM stop the run: the line names the round that was running, and the exit
    code is 128 plus the signal's number (130 and 143), as a shell reports a process that the
    signal ended.

    Args:
        args: Command-line arguments; ``None`` reads ``sys.argv``.
        prog: The command's name in usage lines.

    Returns:
        The process exit code.
    """
    logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)
    # torch and Lightning import about a million long-lived objects; freezing them keeps the
    # cyclic garbage collector from rescanning them during the thousands of local-fit steps.
    gc.collect()
    gc.freeze()
    with stop_on_signals():  # a second signal while this reports the first one is ignored
        try:
            args = list(sys.argv[1:] if args is None else args)
            with notices_on_stderr():
                if args and args[0] in COMMANDS:
                    run_command(args[0], args[1:], prog)
                else:
                    FedRLCLI(args=args, prog=prog)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except FederationError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        except RunInterrupted as interrupt:
            print(interrupt, file=sys.stderr)
            return interrupt.exit_code
        except SystemExit as done:  # --help and --print_config end the parser's way
            return done.code if isinstance(done.code, int) else 0
        except BrokenPipeError:  # the reader went away (``| head``): stop quietly, as Unix tools
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 128 + signal.SIGPIPE
    return 0


def script_main() -> int:
    """The ``fedrl`` console script: ``python -m fedrl_lightning``, under its own name.

    ``python -m`` puts the current folder on ``sys.path``, so ``--data.env_id mymod:Env-v0``
    finds ``mymod.py`` there; the script does the same.
    """
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return main(prog="fedrl")
