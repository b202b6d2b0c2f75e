"""Where our DQN's time per env step goes: one single-agent fit, in this process, timed by part.

Usage::

    python benchmarks/dqn_step_breakdown.py [--steps 50000] [--steps-per-round 10000]

It runs the fit that ``benchmarks/vs_cleanrl_dqn.py`` times against CleanRL's ``dqn.py``
(the same options, through ``main(argv)``), with wall-clock timers wrapped around the parts
of a step and of an update: the env's ``step``, the ε-greedy numpy actor, ``ReplayBuffer.add``
and ``sample``, the dataset's own loop, ``DQN.training_step`` and, inside it, ``_optimize``
and each of Lightning's manual-optimization calls (``optimizers()``, ``zero_grad``,
``manual_backward``, ``clip_gradients``, ``LightningOptimizer.step``), with autograd's
backward and Adam's own step inside those. What Lightning's per-batch loop costs is the epoch
loop's time less the dataset's and the training steps'. It then times a plain torch update
(CleanRL's lines: target, loss, ``zero_grad``, ``backward``, ``step``) in the same process,
on our network with our fused Adam and on CleanRL's 120-84 network with its default Adam, so
the wrappers' cost per update is the difference. A timer costs well under a microsecond a
call. Prints one JSON object on its last line; ``vs_cleanrl_dqn.py`` runs it as a fresh
process pinned to core 0 and puts it in its results file.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.loops import training_epoch_loop as epoch_loop_module
from lightning.pytorch.loops.fetchers import _PrefetchDataFetcher
from lightning.pytorch.loops.training_epoch_loop import _TrainingEpochLoop
from lightning.pytorch.strategies import Strategy
from lightning.pytorch.trainer.connectors.logger_connector.logger_connector import (
    _LoggerConnector,
)
from milestones import read_metrics
from torch import nn
from vs_cleanrl_dqn import BATCH_SIZE, HIDDEN, our_fit_arguments

from fedrl_lightning.cli.app import main as cli_main
from fedrl_lightning.learners.dqn import DQN
from fedrl_lightning.learners.federated_updates import FederatedUpdates
from fedrl_lightning.rollouts.replay import ReplayBuffer
from fedrl_lightning.rollouts.transitions import StepsBatch, TransitionDataset

RAW_UPDATES = 2000
"""Plain torch updates timed for the reference, after as many to warm up."""


class Timers:
    """Wall-clock seconds and calls by name, from wrapped functions."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: defaultdict[str, int] = defaultdict(int)

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function``, adding the time of each call to ``name``."""

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
                self.calls[name] += 1

        timed.__dict__["timed_as"] = name
        return timed

    def patch(self, owner: Any, attribute: str, name: str) -> None:
        """Replace ``owner.attribute`` by its timed self, once."""
        function = getattr(owner, attribute)
        if getattr(function, "timed_as", None) is None:
            setattr(owner, attribute, self.wrap(name, function))


def instrument(timers: Timers) -> None:
    """Wrap the parts of a DQN fit in ``timers`` (for this process's lifetime)."""
    timers.patch(ReplayBuffer, "add", "ReplayBuffer.add")
    timers.patch(ReplayBuffer, "sample", "ReplayBuffer.sample")
    timers.patch(DQN, "training_step", "DQN.training_step")
    timers.patch(FederatedUpdates, "_optimize", "_optimize")
    timers.patch(L.LightningModule, "optimizers", "optimizers()")
    timers.patch(L.LightningModule, "manual_backward", "manual_backward")
    timers.patch(L.LightningModule, "clip_gradients", "clip_gradients")
    timers.patch(LightningOptimizer, "step", "LightningOptimizer.step")
    timers.patch(torch.optim.Optimizer, "zero_grad", "zero_grad")
    timers.patch(torch.Tensor, "backward", "autograd backward")
    timers.patch(torch.optim.Adam, "step", "Adam.step")
    timers.patch(_TrainingEpochLoop, "run", "epoch loop")
    # inside Lightning's per-batch loop
    timers.patch(epoch_loop_module, "is_param_in_hook_signature", "signature check")
    for hook in ("on_batch_start", "on_batch_end", "update_train_step_metrics"):
        timers.patch(_LoggerConnector, hook, "logger connector")
    timers.patch(Strategy, "batch_to_device", "batch_to_device")
    timers.patch(_PrefetchDataFetcher, "__next__", "fetch")
    timers.patch(L.Trainer, "fit", "Trainer.fit")
    steps_of = TransitionDataset.__iter__

    def timed_iter(dataset: TransitionDataset) -> Iterator[StepsBatch]:
        timers.patch(dataset.env, "step", "env.step")
        dataset.act = timers.wrap("acting", dataset.act)
        items = steps_of(dataset)
        while True:
            started = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                return
            finally:
                timers.seconds["dataset"] += time.perf_counter() - started
            yield item

    TransitionDataset.__iter__ = timed_iter  # type: ignore[method-assign]


def raw_update_seconds(network: nn.Module, optimizer: torch.optim.Optimizer) -> float:
    """Seconds of one plain torch DQN update (CleanRL's lines) of ``network``, on a random batch."""
    target = copy.deepcopy(network)
    observations = torch.randn(BATCH_SIZE, 4)
    next_observations = torch.randn(BATCH_SIZE, 4)
    actions = torch.randint(2, (BATCH_SIZE, 1))
    rewards, dones = torch.ones(BATCH_SIZE), torch.zeros(BATCH_SIZE)

    def update() -> None:
        with torch.no_grad():
            target_max, _ = target(next_observations).max(dim=1)
            td_target = rewards + 0.99 * target_max * (1 - dones)
        old_val = network(observations).gather(1, actions).squeeze()
        loss = F.mse_loss(td_target, old_val)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(RAW_UPDATES):
        update()
    started = time.perf_counter()
    for _ in range(RAW_UPDATES):
        update()
    return (time.perf_counter() - started) / RAW_UPDATES


def mlp(*widths: int) -> nn.Sequential:
    """Linear layers of ``widths`` with ReLU between them."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:], strict=False)):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(widths) - 2 else [])
    return nn.Sequential(*layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--steps-per-round", type=int, default=10_000)
    args = parser.parse_args()
    timers = Timers()
    instrument(timers)
    with tempfile.TemporaryDirectory() as root:
        argv = our_fit_arguments(args.steps, args.steps_per_round, Path(root))
        started = time.perf_counter()
        code = cli_main(argv[3:])  # past "python -m fedrl_lightning"
        fit_seconds = time.perf_counter() - started
        if code:
            raise SystemExit(code)
        rows = read_metrics(next(Path(root).glob("lightning_logs/version_*")))
    torch.set_num_threads(1)  # as a local fit does
    ours = mlp(4, HIDDEN, HIDDEN, 2)
    cleanrl = mlp(4, 120, 84, 2)
    print(
        json.dumps(
            {
                "steps": args.steps,
                "seconds": dict(timers.seconds),
                "calls": dict(timers.calls),
                "rounds_seconds": sum(float(row["round_time"]) for row in rows),
                "main_seconds": fit_seconds,
                "raw_update_ours": raw_update_seconds(
                    ours, torch.optim.Adam(ours.parameters(), lr=2.5e-4, fused=True)
                ),
                "raw_update_cleanrl": raw_update_seconds(
                    cleanrl, torch.optim.Adam(cleanrl.parameters(), lr=2.5e-4)
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
