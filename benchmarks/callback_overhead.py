"""What loggers and callbacks cost per round, on the default experiment.

Usage::

    python benchmarks/callback_overhead.py [--repeats 5] [--rounds 50]

Fits ``configs/default.yaml`` (10 agents, 5 a round) through the real command line with:

- **bare**: ``--trainer.logger false``, and only the default callbacks (every round's
  checkpoint kept, ``best.ckpt``);
- **default**: what ``fit`` does with no options: TensorBoard too;
- **everything**: TensorBoard, MLflow (a local ``file:`` store), ``EarlyStopping`` on a
  patience it never reaches, ``RoundCheckpoint`` keeping every 10th round's last 3, and
  ``BestCheckpoint`` by the worst agent.

The settings take turns, ``--repeats`` times. Each run's time is the one ``fit`` reports
(``Finished 50 rounds in X s``: the rounds, without Python's start-up); the table gives the
median per round and its difference from the bare runs. Every setting must end with the same
metrics: loggers and callbacks watch the rounds, they do not change them.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import describe_machine

FINISHED = re.compile(r"Finished (\d+) rounds in ([\d.]+) s")


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
    """One run: the rounds' seconds as ``fit`` reports them, and its metrics."""
    env = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"}  # MLflow 3 asks for it
    result = subprocess.run(
        [sys.executable, "-m", "fedrl_lightning", "fit", "--config", "configs/default.yaml"]
        + [f"--trainer.num_rounds={rounds}", f"--trainer.default_root_dir={root}"]
        + ["--trainer.enable_progress_bar=false", *options],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    seconds = float(FINISHED.search(result.stdout).group(2))
    with open(root / "lightning_logs/version_0/metrics.csv") as f:
        rows = [{k: v for k, v in row.items() if k != "round_time"} for row in csv.DictReader(f)]
    return seconds, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    seconds: dict[str, list[float]] = {}
    metrics = {}
    with tempfile.TemporaryDirectory() as workdir:
        options = settings(Path(workdir))
        for repeat in range(args.repeats):
            for name, flags in options.items():
                root = Path(workdir) / f"{name}-{repeat}"
                taken, rows = fit(flags, root, args.rounds)
                seconds.setdefault(name, []).append(taken)
                metrics.setdefault(name, rows)
                assert rows == metrics[name], f"{name} changed between repeats"
                print(f"{name} #{repeat + 1}: {taken:.2f} s", flush=True)
    same = all(rows == metrics["bare"] for rows in metrics.values())
    print(f"\nevery setting gives the same metrics: {same}\n")
    bare = statistics.median(seconds["bare"]) / args.rounds
    print("| setting | median per round | range per round | vs bare |")
    print("| --- | --- | --- | --- |")
    for name, runs in seconds.items():
        per_round = [value / args.rounds * 1000 for value in runs]
        median = statistics.median(per_round)
        print(
            f"| {name} | {median:.1f} ms | {min(per_round):.1f}-{max(per_round):.1f} ms "
            f"| {median - bare * 1000:+.1f} ms |"
        )


if __name__ == "__main__":
    main()
