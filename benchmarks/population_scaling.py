"""Seconds per round and peak memory for 10, 100 and 1,000 agents, 10 sampled per round.

Usage::

    python benchmarks/population_scaling.py [--agents 10 100 1000] [--rounds 20] [--personal]

Each population size is fitted in its own process through the command line's ``main``, on
``fedrl/Simple-v0`` with the default config's local training, and ``--trainer.eval_agents``
at its default (10 evenly spaced agents). The figures are the mean ``round_time`` over the
rounds after the first, the whole fit's wall time per round (which also counts saving each
round, and so the personal store's commits), and the process's peak resident memory
(``ru_maxrss``). ``--personal`` gives every agent a personal policy head
(``--trainer.server Shared --trainer.server.agent '[policy.head.*]'``, half the agents on the
opposite task), kept in the run folder's ``personal/``: each sampled agent's file is read and
written every round, and each evaluated agent's is read.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import describe_machine

PERSONAL = [
    "--trainer.server=Shared",
    "--trainer.server.agent=[policy.head.*]",
    "--data.heterogeneity={reward_sign: {choices: [1, -1]}}",
]


def child(num_agents: int, rounds: int, personal: bool) -> None:
    """Fit one population size in this process and print its figures as JSON."""
    from fedrl_lightning.cli.app import main

    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        code = main(
            [
                "fit",
                "--config=configs/default.yaml",
                f"--data.num_agents={num_agents}",
                "--trainer.agents_per_round=10",
                f"--trainer.num_rounds={rounds}",
                f"--trainer.default_root_dir={root}",
                "--trainer.enable_progress_bar=false",
                *(PERSONAL if personal else []),
            ]
        )
        wall = time.perf_counter() - started
        if code:
            raise SystemExit(code)
        with open(Path(root) / "lightning_logs/version_0/metrics.csv", newline="") as f:
            times = [float(row["round_time"]) for row in csv.DictReader(f)]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {"seconds_per_round": float(np.mean(times[1:])), "peak_mb": peak_mb}
    print(json.dumps(figures | {"wall_per_round": wall / rounds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--personal", action="store_true", help="personal policy heads")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.rounds, args.personal)
        return
    print(f"machine: {describe_machine()}")
    print("| agents | sampled per round | round_time | wall time per round | peak memory |")
    print("|---|---|---|---|---|")
    for num_agents in args.agents:
        command = [sys.executable, __file__, f"--child={num_agents}", f"--rounds={args.rounds}"]
        output = subprocess.run(
            command + (["--personal"] if args.personal else []),
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        figures = json.loads(output.strip().splitlines()[-1])
        print(
            f"| {num_agents} | 10 | {figures['seconds_per_round']:.3f} s | "
            f"{figures['wall_per_round']:.3f} s | {figures['peak_mb']:.0f} MB |"
        )


if __name__ == "__main__":
    main()
