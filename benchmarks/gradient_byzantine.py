"""Gradient sharing under attack: 3 of 10 CartPole agents Byzantine, robust vs plain averaging.

Usage::

    python benchmarks/gradient_byzantine.py [--settings clean FedAvg/sign_flip ...]
                                            [--seeds 42 43 44] [--jobs 1]
                                            [--results gradient_byzantine.jsonl]

Each setting fits ``configs/cartpole_gradient.yaml`` (gradient mode, 10 agents, all 10 every
round, 10 episodes each, Adam on the server) through the real command line, with
``--trainer.strategy`` and ``--data.byzantine '{agents: 3, attack: ...}'`` (``_10``: with
``noise_std: 10`` instead of the default 1). Its figure is the
final ``last.ckpt`` evaluated by the ``evaluate`` command on 20 fresh episodes per agent, all
10 agents (seeds no run uses), averaged over the seeds; the ratio is to the clean run's
(FedAvg, no attacker) of the same seed. The runs themselves evaluate on 2 episodes per agent
per round, which only gives the rounds column (first round whose eval_reward reaches 475).
Finished runs are appended to ``--results``, so an interrupted benchmark picks up where it
stopped.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from machine import describe_machine
from runs import fit_config

CONFIG = Path("configs/cartpole_gradient.yaml")
KRUM = ["--trainer.strategy=Krum", "--trainer.strategy.num_byzantine=3"]
SETTINGS = {  # name: (strategy options, attack and its options)
    "clean": (["--trainer.strategy=FedAvg"], None),
    "FedAvg/sign_flip": (["--trainer.strategy=FedAvg"], "sign_flip"),
    "FedAvg/random_noise": (["--trainer.strategy=FedAvg"], "random_noise"),
    "FedMedian/clean": (["--trainer.strategy=FedMedian"], None),
    "FedMedian/sign_flip": (["--trainer.strategy=FedMedian"], "sign_flip"),
    "FedMedian/random_noise": (["--trainer.strategy=FedMedian"], "random_noise"),
    "Krum/sign_flip": (KRUM, "sign_flip"),
    "Krum/random_noise": (KRUM, "random_noise"),
    "FedAvg/random_noise_10": (["--trainer.strategy=FedAvg"], "random_noise, noise_std: 10"),
    "FedMedian/random_noise_10": (["--trainer.strategy=FedMedian"], "random_noise, noise_std: 10"),
}  # fmt: skip
SEEDS = (42, 43, 44)
EPISODES_PER_AGENT = 20
SOLVED = 475.0


def run_setting(name: str, seed: int) -> dict:
    """Fit one setting with one seed and evaluate its ``last.ckpt`` on fresh episodes."""
    strategy, attack = SETTINGS[name]
    overrides = list(strategy)
    if attack is not None:
        overrides.append(f"--data.byzantine={{agents: 3, attack: {attack}}}")
    with tempfile.TemporaryDirectory() as root:
        run, seconds = fit_config(CONFIG, seed, Path(root), *overrides)
        evaluated = subprocess.run(
            [sys.executable, "-m", "fedrl_lightning", "evaluate", "--ckpt_path", str(run)]
            + [f"--episodes={EPISODES_PER_AGENT}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        fresh = float(re.search(r"Mean return (-?[\d.]+)", evaluated).group(1))
        with open(run / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    solved = [int(r["round"]) for r in rows if float(r["eval_reward"]) >= SOLVED]
    return {
        "setting": name,
        "seed": seed,
        "fresh_return": fresh,
        "rounds": len(rows),
        "episodes_per_agent": int(rows[-1]["episodes"]) // 10,
        "first_round_475": solved[0] if solved else None,
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--results", type=Path, default=Path("gradient_byzantine.jsonl"))
    args = parser.parse_args()
    done = {}
    if args.results.exists():
        for line in args.results.read_text().splitlines():
            row = json.loads(line)
            done[(row["setting"], row["seed"])] = row
    todo = [(s, seed) for s in args.settings for seed in args.seeds if (s, seed) not in done]

    def one(cell: tuple[str, int]) -> None:
        row = run_setting(*cell)
        done[cell] = row
        with open(args.results, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(one, todo))
    print(f"\nMachine: {describe_machine()}")
    print(f"{CONFIG}, seeds {args.seeds}, {EPISODES_PER_AGENT} fresh episodes per agent\n")
    print("| setting | fresh return per seed | mean | vs clean | first round >= 475 (per seed) |")
    print("| --- | --- | --- | --- | --- |")
    clean = {
        seed: done[("clean", seed)]["fresh_return"]
        for seed in args.seeds
        if ("clean", seed) in done
    }
    for name in args.settings:
        rows = [done[(name, seed)] for seed in args.seeds if (name, seed) in done]
        if not rows:
            continue
        returns = [r["fresh_return"] for r in rows]
        ratios = [r["fresh_return"] / clean[r["seed"]] for r in rows if r["seed"] in clean]
        ratio = f"{100 * np.mean(ratios):.1f}%" if ratios else "n/a"
        firsts = " / ".join(str(r["first_round_475"]) for r in rows)
        print(
            f"| {name} | {' / '.join(f'{x:.1f}' for x in returns)} | {np.mean(returns):.1f} "
            f"| {ratio} | {firsts} |"
        )


if __name__ == "__main__":
    main()
