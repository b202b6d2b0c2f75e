"""What loggers and callbacks cost per round, on the default experiment.

Usage::

    python benchmarks/callback_overhead.py [--repeats 3] [--rounds 20 80]

Fits ``configs/default.yaml`` (10 agents, 5 a round) through the real command line with:

- **bare**: ``--trainer.logger false``, and only the default callbacks (every round's
  checkpoint kept, ``best.ckpt``);
- **default**: what ``fit`` does with no options: TensorBoard too;
- **everything**: TensorBoard, MLflow (a local ``file:`` store), ``EarlyStopping`` on a
  patience it never reaches, ``RoundCheckpoint`` keeping every 10th round's last 3, and
  ``BestCheckpoint`` by the worst agent.

Each setting runs a short and a long fit (``--rounds``), the settings taking turns,
``--repeats`` times; a run's time is its process's wall time. The cost per round is the
difference of the medians of the long and the short runs over the rounds between them, so
what a run pays once (starting Python, importing TensorBoard or MLflow, opening the store)
cancels out; that is reported apart, as the short run's time beyond its rounds. Every setting
must end with the same metrics: loggers and callbacks watch the rounds, they do not change
them. Then each setting runs once more in this process with every hook call timed, which
gives the time spent inside each callback's hooks per round, apart from the noise of whole
runs (and from what background threads, such as TensorBoard's writer, take).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe_machine

from fedrl_lightning.cli.app import main as main_cli
from fedrl_lightning.federation import FederatedTrainer

CALLBACKS = (
    "RoundLogging",
    "EarlyStopping",
    "RoundCheckpoint",
    "BestCheckpoint",
    "ProgressDisplay",
)
"""The callbacks whose hooks are timed: the loggers' callback first."""


def settings(workdir: Path) -> dict[str, list[str]]:
    """Each setting's command-line options."""
    mlflow = f"file:{workdir / 'mlruns'}"
    callbacks = (
        "[{class_path: fedrl_lightning.EarlyStopping, init_args: {patience: 1000}}, "
        "{class_path: fedrl_lightning.RoundCheckpoint, "
        "init_args: {every_n_rounds: 10, keep_last: 3}}, "
        "{class_path: fedrl_lightning.BestCheckpoint, init_args: {monitor: eval_reward_min}}]"
    )
    loggers = (
        "[{class_path: lightning.pytorch.loggers.TensorBoardLogger, "
        f"init_args: {{save_dir: {workdir / 'tb'}}}}}, "
        "{class_path: lightning.pytorch.loggers.MLFlowLogger, "
        f"init_args: {{tracking_uri: '{mlflow}'}}}}]"
    )
    return {
        "bare": ["--trainer.logger", "false"],
        "default": [],
        "everything": ["--trainer.logger", loggers, "--trainer.callbacks", callbacks],
    }


def fit(options: list[str], root: Path, rounds: int) -> tuple[float, list[dict[str, str]]]:
    """One run: its process's wall time, and its metrics."""
    env = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"}  # MLflow 3 asks for it
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "fedrl_lightning", "fit", "--config", "configs/default.yaml"]
        + [f"--trainer.num_rounds={rounds}", f"--trainer.default_root_dir={root}"]
        + ["--trainer.enable_progress_bar=false", *options],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    seconds = time.perf_counter() - started
    with open(root / "lightning_logs/version_0/metrics.csv") as f:
        rows = [{k: v for k, v in row.items() if k != "round_time"} for row in csv.DictReader(f)]
    return seconds, rows


def hook_times(flags: list[str], root: Path, rounds: int) -> dict[str, float]:
    """Seconds per round spent inside each callback's hooks, in one run in this process."""
    spent: collections.Counter[str] = collections.Counter()

    def timed_call(trainer: FederatedTrainer, hook: str, *args: object) -> None:
        for callback in trainer._hooks:
            started = time.perf_counter()
            getattr(callback, hook)(trainer, *args)
            spent[type(callback).__name__] += time.perf_counter() - started

    original = FederatedTrainer._call
    FederatedTrainer._call = timed_call
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            main_cli(
                ["fit", "--config", "configs/default.yaml", f"--trainer.num_rounds={rounds}"]
                + [f"--trainer.default_root_dir={root}", "--trainer.enable_progress_bar=false"]
                + flags
            )
    finally:
        FederatedTrainer._call = original
    return {name: value / rounds for name, value in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, nargs=2, default=[20, 80])
    args = parser.parse_args()
    short, long = args.rounds
    print(f"machine: {describe_machine()}")
    seconds: dict[tuple[str, int], list[float]] = {}
    metrics: dict[str, list[dict[str, str]]] = {}
    with tempfile.TemporaryDirectory() as workdir:
        options = settings(Path(workdir))
        for repeat in range(args.repeats):
            for rounds in (short, long):
                for name, flags in options.items():
                    root = Path(workdir) / f"{name}-{rounds}-{repeat}"
                    taken, rows = fit(flags, root, rounds)
                    seconds.setdefault((name, rounds), []).append(taken)
                    if rounds == long:
                        metrics.setdefault(name, rows)
                        assert rows == metrics[name], f"{name} changed between repeats"
                    print(f"{name}, {rounds} rounds, #{repeat + 1}: {taken:.2f} s", flush=True)
    same = all(rows == metrics["bare"] for rows in metrics.values())
    print(f"\nevery setting gives the same metrics: {same}\n")
    print("| setting | per round | once per run (start-up, imports) | per round vs bare |")
    print("| --- | --- | --- | --- |")
    per_round = {}
    for name in options:
        a = statistics.median(seconds[(name, short)])
        b = statistics.median(seconds[(name, long)])
        per_round[name] = (b - a) / (long - short)
        once = a - short * per_round[name]
        print(
            f"| {name} | {per_round[name] * 1000:.1f} ms | {once:.2f} s "
            f"| {(per_round[name] - per_round['bare']) * 1000:+.1f} ms |"
        )
    print("\nTime inside the hooks, per round (one run of each setting in this process):\n")
    print("| setting | " + " | ".join(CALLBACKS) + " | all hooks |")
    print("| --- " * (len(CALLBACKS) + 2) + "|")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    with tempfile.TemporaryDirectory() as workdir:
        for name, flags in settings(Path(workdir)).items():
            times = hook_times(flags, Path(workdir) / name, long)
            cells = [f"{times.get(cls, 0.0) * 1000:.2f} ms" for cls in CALLBACKS]
            print(f"| {name} | " + " | ".join(cells) + f" | {sum(times.values()) * 1000:.2f} ms |")


if __name__ == "__main__":
    main()
