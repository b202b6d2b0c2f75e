"""Sequential against Ray on this machine: heterogeneous CartPole, 8 agents per round.

Usage::

    python benchmarks/ray_speedup.py [--rounds 50] [--workers 2] [--eval-episodes 1]

Fits ``configs/cartpole_hetero.yaml`` with 8 agents per round twice through the command line,
once with ``--trainer.executor sequential`` and once with ``--trainer.executor ray``, with the
same seed. Prints each run's wall time (Ray's start-up included), its seconds per round after
the first (the first round includes starting Ray's worker processes), the speed-ups, and
whether the two runs' metrics and final weights are identical.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import numpy as np
import torch
from machine import describe_machine
from runs import fit_config

CONFIG = Path("configs/cartpole_hetero.yaml")
SEED = 42


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--eval-episodes",
        type=int,
        default=1,
        help="evaluation episodes per agent per round; evaluation runs on the driver, serially",
    )
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    overrides = [
        "--trainer.agents_per_round=8",
        f"--trainer.num_rounds={args.rounds}",
        f"--trainer.eval_episodes={args.eval_episodes}",
    ]
    results = {}
    with tempfile.TemporaryDirectory() as root:
        for executor in ("sequential", "ray"):
            extra = [f"--trainer.executor={executor}", f"--trainer.num_workers={args.workers}"]
            run, seconds = fit_config(CONFIG, SEED, Path(root) / executor, *overrides, *extra)
            with open(run / "metrics.csv", newline="") as f:
                rows = list(csv.DictReader(f))
            weights = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
            per_round = float(np.mean([float(r["round_time"]) for r in rows[1:]]))
            results[executor] = (seconds, per_round, rows, weights)
            print(
                f"{executor}: {seconds:.1f} s in all, {per_round:.2f} s per round after the "
                f"first, {rows[-1]['episodes']} training episodes, final eval_reward "
                f"{float(rows[-1]['eval_reward']):.1f}"
            )
    (seq_total, seq_round, seq_rows, seq_weights) = results["sequential"]
    (ray_total, ray_round, ray_rows, ray_weights) = results["ray"]
    print(
        f"speed-up with Ray ({args.workers} workers): {seq_total / ray_total:.2f}x in all, "
        f"{seq_round / ray_round:.2f}x per round"
    )

    def without_times(rows: list[dict[str, str]]) -> list[dict[str, str]]:
        return [{k: v for k, v in row.items() if k != "round_time"} for row in rows]

    same_metrics = without_times(seq_rows) == without_times(ray_rows)
    same_weights = all(torch.equal(seq_weights[k], ray_weights[k]) for k in seq_weights)
    print(f"identical metrics: {same_metrics}; identical final weights: {same_weights}")


if __name__ == "__main__":
    main()
