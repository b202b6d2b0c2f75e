"""Shared trajectory replay on heterogeneous CartPole with PPO: steps to 475, bytes, poisoning.

Usage::

    python benchmarks/trajectory_sharing.py [--seeds 42 43 44] [--settings none sharing ...]

Each setting fits ``configs/cartpole_hetero_ppo_sharing.yaml`` (PPO, 10 agents, half-pole
lengths 0.1-0.9, one agent a round) through the real command line, one run after another:

- ``none``: sharing off (``--trainer.components []``), i.e. ``configs/cartpole_hetero_ppo.yaml``;
- ``sharing``: the config as shipped, ``share_fraction`` 0.1;
- ``poison_none`` / ``poison_sharing``: the same two with 3 of the 10 agents Byzantine,
  ``poison_trajectories`` with ``scale`` 10 (their uploads' rewards multiplied by 10);
- ``sharing_recent``: sharing with a buffer of the 20 newest episodes instead of 500 (not run
  unless named).

From the run's ``metrics.csv``: the first round whose evaluation mean reaches 475 and the
training env steps of all agents up to it, and the bytes and episodes shared over the run
(beside ``bytes_sent`` + ``bytes_received``: the weights sent, and the agents' checkpoints,
uploads included).
Then ``last.ckpt`` is evaluated on 20 fresh episodes per agent, with seeds the run never used.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from fresh_evaluation import fresh_evaluation, run_population
from machine import describe_machine
from milestones import first_reaching, read_metrics
from runs import fit_config

CONFIG = Path("configs/cartpole_hetero_ppo_sharing.yaml")
GOAL = 475.0
POISON = ["--data.byzantine", "{agents: 3, attack: poison_trajectories, scale: 10}"]
SETTINGS = {
    "none": ["--trainer.components", "[]"],
    "sharing": [],
    "poison_none": ["--trainer.components", "[]", *POISON],
    "poison_sharing": POISON,
    "sharing_recent": [
        "--trainer.components",
        "[{class_path: TrajectorySharing, init_args: {share_fraction: 0.1, buffer_episodes: 20}}]",
    ],
}
DEFAULT_SETTINGS = ["none", "sharing", "poison_none", "poison_sharing"]


def total(rows: list[dict[str, str]], column: str) -> int:
    """The sum of ``column`` over the rows; 0 when the run has no such column."""
    return sum(int(float(row.get(column) or 0)) for row in rows)


def fit_and_measure(setting: str, seed: int, workdir: Path) -> str:
    """Fit ``setting`` with ``seed``, print its figures, and return its table row."""
    run, seconds = fit_config(CONFIG, seed, workdir / setting / str(seed), *SETTINGS[setting])
    rows = read_metrics(run)
    reached = first_reaching(rows, GOAL)
    fresh = fresh_evaluation(run / "checkpoints" / "last.ckpt", run_population(run), seed)
    shared = total(rows, "episodes_shared")
    up, down = total(rows, "shared_bytes_up"), total(rows, "shared_bytes_down")
    checkpoints = total(rows, "bytes_sent") + total(rows, "bytes_received")
    to_goal = f"{reached.env_steps:,} (round {reached.round})" if reached else "not reached"
    print(
        f"{setting} seed {seed}: fit {seconds:.1f} s, {int(rows[-1]['env_steps']):,} steps; "
        f"mean >= {GOAL:.0f} at {to_goal}; last.ckpt fresh mean {fresh.mean():.1f}, worst "
        f"{fresh.min():.1f}; shared {shared} episodes, {up:,} B up, {down:,} B down; "
        f"weights and checkpoints {checkpoints:,} B",
        flush=True,
    )
    return (
        f"| {setting} | {seed} | {to_goal} | {fresh.mean():.1f} / {fresh.min():.1f} "
        f"| {shared} | {up:,} | {down:,} | {checkpoints:,} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=DEFAULT_SETTINGS)
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    with tempfile.TemporaryDirectory() as workdir:
        table = [
            fit_and_measure(setting, seed, Path(workdir))
            for setting in args.settings
            for seed in args.seeds
        ]
    print()
    print(
        f"| setting | seed | env steps to mean {GOAL:.0f} | last.ckpt fresh mean / worst "
        "| episodes shared | bytes up | bytes down | bytes_sent + bytes_received |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(table))


if __name__ == "__main__":
    main()
