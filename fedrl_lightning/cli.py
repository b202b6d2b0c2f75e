"""``python -m fedrl_lightning``: the LightningCLI for federated runs, with one-line errors."""

from __future__ import annotations

import gc
import logging
import re
import sys
import time
from typing import Any, NoReturn

from jsonargparse import lazy_instance
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from fedrl_lightning.errors import ConfigError, FederationError
from fedrl_lightning.federation.run_folder import resolve_checkpoint
from fedrl_lightning.federation.strategies import RewardWeighted, all_strategies
from fedrl_lightning.federation.trainer import FederatedTrainer
from fedrl_lightning.interrupts import RunInterrupted, stop_on_signals
from fedrl_lightning.module import ReinforceModule
from fedrl_lightning.population import AgentPopulation
from fedrl_lightning.resume import check_unchanged, saved_config

__all__ = ["FedRLCLI", "main"]

DESCRIPTION = "Federated reinforcement learning on PyTorch Lightning."


def one_line(message: str) -> str:
    """Squeeze a multi-line parser message into one line that names the option.

    jsonargparse reports ``Parser key "trainer.strategy": <details>``; this becomes
    ``--trainer.strategy: <first detail>``, with a list of choices for strategies.
    """
    lines = [line.strip(" -:") for line in message.strip().splitlines() if line.strip(" -:")]
    match = re.match(r'Parser key "([^"]+)":?\s*(.*)', lines[0])
    if match is None:
        return ": ".join(lines[:2])
    key, rest = match.groups()
    details = [rest] if rest else []
    details += lines[1:]
    if key == "trainer.strategy":
        known = ", ".join(cls.__name__ for cls in all_strategies())
        return f"--{key}: not a known strategy (built in: {known}; or give a class_path)"
    return f"--{key}: {details[0]}" if details else f"--{key}: invalid value"


class FedRLArgumentParser(LightningArgumentParser):
    """A LightningCLI parser whose errors become a :class:`ConfigError` instead of usage text."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        """Raise the parse error as one line."""
        raise ConfigError(one_line(message))


class FedRLCLI(LightningCLI):
    """The LightningCLI of federated runs.

    Its ``trainer``, ``model`` and ``data`` sections configure a :class:`FederatedTrainer`, a
    :class:`ReinforceModule` and an :class:`AgentPopulation`.

    Args:
        args: Command-line arguments; ``None`` reads ``sys.argv``.
    """

    def __init__(self, args: list[str] | None = None) -> None:
        super().__init__(
            model_class=ReinforceModule,
            datamodule_class=AgentPopulation,
            trainer_class=FederatedTrainer,
            save_config_callback=None,
            seed_everything_default=42,
            parser_kwargs={"description": DESCRIPTION},
            parser_class=FedRLArgumentParser,
            auto_configure_optimizers=False,
            load_from_checkpoint_support=False,
            args=args,
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse the command line; with ``--ckpt_path``, on top of the resumed run's config.

        The checkpoint's config comes first, then the command's own ``--config`` files and
        options, so ``fit --ckpt_path last`` alone continues the run as it was configured.
        Options that would change the experiment are refused.
        """
        args = list(sys.argv[1:] if args is None else args)
        self.config = parser.parse_args(args)
        if self.config.get("subcommand") != "fit" or self.config.fit.get("ckpt_path") is None:
            return
        fit = self.config.fit
        path = resolve_checkpoint(fit.ckpt_path, fit.trainer.default_root_dir)
        saved = saved_config(path)
        if saved is not None:
            at = args.index("fit") + 1
            self.config = parser.parse_args([*args[:at], "--config", saved, *args[at:]])
            check_unchanged(saved, self._dump_fit_config(), path)
        self.config.fit.ckpt_path = str(path)

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Only ``fit``; the run's config is passed by the CLI itself."""
        return {"fit": {"model", "datamodule", "run_config"}}

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
        parser.add_lightning_class_args(ReinforceModule, "model")
        parser.add_class_arguments(AgentPopulation, "data", fail_untyped=False, sub_configs=True)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Default the strategy and size the policy from the environment's spaces."""
        parser.set_defaults({"trainer.strategy": lazy_instance(RewardWeighted)})
        for name in ("observation_dim", "num_actions", "continuous", "action_low", "action_high"):
            parser.link_arguments(f"data.{name}", f"model.{name}", apply_on="instantiate")
        parser.link_arguments("seed_everything", "data.seed", apply_on="parse")

    def instantiate_trainer(self, **kwargs: Any) -> FederatedTrainer:
        """Build the federated trainer, seeded from ``--seed_everything``."""
        config = dict(self._get(self.config_init, "trainer"), **kwargs)
        return FederatedTrainer(**config, seed=self._run_seed())

    def fit(self, model: ReinforceModule, datamodule: AgentPopulation, **kwargs: Any) -> None:
        """Run the federated fit, saving the resolved config in the run folder."""
        run_config = self._dump_fit_config()
        started = time.perf_counter()
        self.trainer.fit(model, datamodule, run_config=run_config, **kwargs)
        self.fit_seconds = time.perf_counter() - started

    def after_fit(self) -> None:
        """Print the run's summary."""
        trainer = self.trainer
        last = trainer.history[-1]
        ran = trainer.completed_rounds - trainer.resumed_round
        rounds = f"{ran} round" + ("s" if ran != 1 else "")
        if trainer.resumed_round:
            rounds += f" (resumed after round {trainer.resumed_round})"
        print(
            f"Finished {rounds} in {self.fit_seconds:.1f} s: "
            f"{last['episodes']:,} training episodes, {last['env_steps']:,} environment steps."
        )
        print(
            f"Final eval_reward {last['eval_reward']:.2f} (worst agent "
            f"{last['eval_reward_min']:.2f}), train_reward {last['train_reward']:.2f}."
        )
        failed = sum(int(row["num_failed_agents"]) for row in trainer.history)
        if failed:
            print(
                f"{failed} local fits failed and were left out: failed_agents in metrics.csv "
                "lists them, --trainer.verbose true shows why."
            )
        print(f"Run folder: {trainer.run_dir}")

    def _dump_fit_config(self) -> str:
        return self._parser("fit").dump(self.config.fit, skip_none=False)

    def _run_seed(self) -> int:
        seed = self._get(self.config, "seed_everything")
        if isinstance(seed, bool):
            raise ConfigError("--seed_everything must be an integer for a federated run")
        return int(seed)


def main(args: list[str] | None = None) -> int:
    """Run the command line and turn configuration errors and signals into one line on stderr.

    SIGINT and SIGTERM stop the run: the line names the round that was running, and the exit
    code is 128 plus the signal's number (130 and 143), as a shell reports a process that the
    signal ended.

    Args:
        args: Command-line arguments; ``None`` reads ``sys.argv``.

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
            FedRLCLI(args=args)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except FederationError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        except RunInterrupted as interrupt:
            print(interrupt, file=sys.stderr)
            return interrupt.exit_code
    return 0
