"""Reptile against FedAvg as a starting point for local adaptation, on unseen CartPole poles.

Usage::

    python benchmarks/meta_adaptation.py [--config configs/cartpole_hetero.yaml] \
        [--meta_lr 5.0] [--finetune_episodes 10] [--episodes 50] [--num_rounds N]

For seeds 42, 43 and 44, the config is fitted twice through the real command line, with the
same budget (the config's, or ``--num_rounds``): once with ``--trainer.strategy FedAvg`` and
once with ``--trainer.strategy Reptile --trainer.strategy.meta_lr META_LR``. Each run's
``last.ckpt`` then goes through the ``evaluate`` command on five pole lengths no agent trained
on (0.15, 0.35, 0.55, 0.75 and 0.95: ``--data.num_agents 5 --data.heterogeneity '{length:
[0.15, 0.95]}'``), twice: as saved (before adaptation), and with ``--finetune_episodes K``
(after K episodes of local adaptation on each pole: a local fit like an agent's, with the
config's learner and its ``episodes_per_update``). Both play the same ``--episodes`` fresh
episodes per pole, seeds no run used, sampling actions. The table reports the mean return
over the five poles, and each pole's.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from machine import describe_machine
from runs import fit_config

SEEDS = (42, 43, 44)
UNSEEN = ["--data.num_agents", "5", "--data.heterogeneity", "{length: [0.15, 0.95]}"]


def evaluate(checkpoint: Path, out: Path, episodes: int, finetune_episodes: int) -> np.ndarray:
    """Each unseen pole's mean return on fresh episodes, after ``finetune_episodes`` of its own."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "fedrl_lightning",
            "evaluate",
            "--ckpt_path",
            str(checkpoint),
            *UNSEEN,
            "--episodes",
            str(episodes),
            "--finetune_episodes",
            str(finetune_episodes),
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    with open(out, newline="") as f:
        return np.array([float(row["mean_return"]) for row in csv.DictReader(f)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/cartpole_hetero.yaml"))
    parser.add_argument("--meta_lr", type=float, default=5.0, help="Reptile's meta step size.")
    parser.add_argument("--finetune_episodes", type=int, default=10)
    parser.add_argument("--episodes", type=int, default=50, help="Evaluation episodes per pole.")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument(
        "--num_rounds", type=int, default=None, help="The budget in rounds; default: the config's."
    )
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    budget = [] if args.num_rounds is None else [f"--trainer.num_rounds={args.num_rounds}"]
    print(f"{args.config}, {args.num_rounds or 'its own'} rounds, K = {args.finetune_episodes}")
    methods = {
        "FedAvg": ["--trainer.strategy", "FedAvg"],
        f"Reptile (meta_lr {args.meta_lr:g})": [
            "--trainer.strategy",
            "Reptile",
            f"--trainer.strategy.meta_lr={args.meta_lr}",
        ],
    }
    results: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = {m: {} for m in methods}
    with tempfile.TemporaryDirectory() as workdir:
        for seed in args.seeds:
            for method, overrides in methods.items():
                root = Path(workdir) / method.split()[0] / str(seed)
                run, seconds = fit_config(args.config, seed, root, *budget, *overrides)
                last = run / "checkpoints" / "last.ckpt"
                before = evaluate(last, root / "before.csv", args.episodes, 0)
                after = evaluate(last, root / "after.csv", args.episodes, args.finetune_episodes)
                results[method][seed] = before, after
                print(
                    f"{method}, seed {seed} ({seconds:.0f} s): before {before.mean():.1f} "
                    f"{np.round(before, 1).tolist()}, after {args.finetune_episodes} episodes "
                    f"{after.mean():.1f} {np.round(after, 1).tolist()}",
                    flush=True,
                )
    k = args.finetune_episodes
    print()
    print(
        f"| seed | {' | '.join(f'{m}: before / after K = {k}' for m in methods)} | "
        "Reptile - FedAvg, after |"
    )
    print(f"| --- | {' | '.join('---' for _ in methods)} | --- |")
    names = list(methods)
    for seed in [*args.seeds, "mean"]:
        cells, afters = [], []
        for method in names:
            if seed == "mean":
                before = np.mean([b.mean() for b, _ in results[method].values()])
                after = np.mean([a.mean() for _, a in results[method].values()])
            else:
                before, after = (r.mean() for r in results[method][seed])
            cells.append(f"{before:.1f} / **{after:.1f}**")
            afters.append(after)
        print(f"| {seed} | {' | '.join(cells)} | {afters[1] - afters[0]:+.1f} |")
    print()
    print("Per pole after adaptation (0.15, 0.35, 0.55, 0.75, 0.95), mean over seeds:")
    for method in names:
        per_pole = np.mean([a for _, a in results[method].values()], axis=0)
        before = np.mean([b for b, _ in results[method].values()], axis=0)
        print(
            f"- {method}: before {np.round(before, 1).tolist()}, "
            f"after {np.round(per_pole, 1).tolist()}"
        )


if __name__ == "__main__":
    main()
