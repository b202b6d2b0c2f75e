"""Wall time to a mean return of 475 on CartPole: our federated PPO against CleanRL's ``ppo.py``.

Usage::

    python benchmarks/vs_cleanrl.py [--cleanrl /work/cleanrl/ppo.py] [--cleanrl-python PY]

One benchmark run fits both, one after the other, each as a fresh process pinned to core 0
(``taskset -c 0``, ``OMP_NUM_THREADS=1``), so imports count for both:

- ours: ``configs/cartpole_hetero_ppo.yaml`` (10 agents, half-pole lengths 0.1-0.9) for each
  seed, timed from the process's start to the plain per-round line of the first round whose
  evaluation mean reaches 475;
- CleanRL's ``ppo.py`` with its defaults (CartPole-v1, a single agent on the standard pole,
  500k steps), timed from the process's start to the episode at which the mean of its last
  20 episodic returns first reaches 475, and to its end.

Their stdout lines are timestamped as they arrive. CleanRL's code is not part of this
repository: pass the path of a copy. Without it, the comparison is skipped.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

from machine import describe_machine
from milestones import first_reaching, read_metrics

CONFIG = Path("configs/cartpole_hetero_ppo.yaml")
DEFAULT_CLEANRL = Path("/work/cleanrl/ppo.py")
GOAL = 475.0
CLEANRL_WINDOW = 20
"""CleanRL's episodic returns are averaged over this many episodes, as its charts smooth them."""

OUR_ROUND = re.compile(r"^round (\d+)/\d+: .*eval (-?[\d.]+)")
CLEANRL_EPISODE = re.compile(r"^global_step=(\d+), episodic_return=(-?[\d.]+)")


def timestamped_lines(command: list[str], cwd: str) -> tuple[list[tuple[float, str]], float]:
    """Run ``command`` pinned to core 0 and timestamp each stdout line as it arrives.

    Returns:
        ``(seconds since start, line)`` pairs, and the process's wall time in seconds.
    """
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    with subprocess.Popen(
        [*pin, *command],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        lines = [(time.perf_counter() - started, line.rstrip()) for line in process.stdout]
    seconds = time.perf_counter() - started
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command)
    return lines, seconds


def cleanrl_to_goal(lines: list[tuple[float, str]]) -> tuple[float, int] | None:
    """Seconds and global step at which CleanRL's last 20 returns first average ``GOAL``."""
    window: deque[float] = deque(maxlen=CLEANRL_WINDOW)
    for seconds, line in lines:
        match = CLEANRL_EPISODE.match(line)
        if match:
            window.append(float(match[2]))
            if len(window) == CLEANRL_WINDOW and sum(window) / CLEANRL_WINDOW >= GOAL:
                return seconds, int(match[1])
    return None


def ours_to_goal(lines: list[tuple[float, str]]) -> tuple[float, int] | None:
    """Seconds since start, and round, of the first round line whose eval mean reaches ``GOAL``."""
    for seconds, line in lines:
        match = OUR_ROUND.match(line)
        if match and float(match[2]) >= GOAL:
            return seconds, int(match[1])
    return None


def load() -> str:
    """The machine's load averages over 1, 5 and 15 minutes."""
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cleanrl", type=Path, default=DEFAULT_CLEANRL, help="CleanRL's ppo.py")
    parser.add_argument(
        "--cleanrl-python", default=sys.executable, help="the python to run CleanRL with"
    )
    parser.add_argument("--cleanrl-seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    if not shutil.which("taskset"):
        print("taskset not found: the runs are not pinned to one core")

    ours = []
    with tempfile.TemporaryDirectory() as workdir:
        for seed in args.seeds:
            print(f"ours, seed {seed}: starting, {load()}", flush=True)
            root = Path(workdir) / str(seed)
            lines, seconds = timestamped_lines(
                [
                    sys.executable,
                    "-m",
                    "fedrl_lightning",
                    "fit",
                    "--config",
                    str(CONFIG.resolve()),
                    f"--seed_everything={seed}",
                    f"--trainer.default_root_dir={root}",
                    "--trainer.enable_progress_bar=false",
                ],
                cwd=os.getcwd(),
            )
            reached = ours_to_goal(lines)
            milestone = first_reaching(read_metrics(root / "lightning_logs" / "version_0"), GOAL)
            if reached is None or milestone is None:
                print(f"ours, seed {seed}: mean {GOAL:.0f} not reached in {seconds:.1f} s")
                continue
            ours.append(reached[0])
            print(
                f"ours, seed {seed}: mean >= {GOAL:.0f} at round {reached[1]}, "
                f"{milestone.env_steps:,} env steps, {reached[0]:.1f} s from the process's start "
                f"({milestone.seconds:.1f} s of rounds); whole fit {seconds:.1f} s",
                flush=True,
            )

        if not args.cleanrl.is_file():
            print(f"CleanRL's ppo.py not found at {args.cleanrl}: comparison skipped")
            return
        for seed in args.cleanrl_seeds:
            print(f"CleanRL, seed {seed}: starting, {load()}", flush=True)
            lines, total = timestamped_lines(
                [args.cleanrl_python, str(args.cleanrl.resolve()), f"--seed={seed}"], cwd=workdir
            )
            reached = cleanrl_to_goal(lines)
            to_goal = (
                f"its {CLEANRL_WINDOW}-episode mean reaches {GOAL:.0f} at step {reached[1]:,}, "
                f"{reached[0]:.1f} s"
                if reached
                else f"its {CLEANRL_WINDOW}-episode mean never reaches {GOAL:.0f}"
            )
            print(f"CleanRL, seed {seed}: 500k steps in {total:.1f} s; {to_goal}", flush=True)
            if not ours:
                continue
            worst = max(ours)
            print(
                f"  ours (slowest seed, {worst:.1f} s) / CleanRL's whole run: "
                f"{worst / total:.3f} (goal < 0.333)"
            )
            if reached:
                print(
                    f"  ours (slowest seed) / CleanRL's time to {GOAL:.0f}: "
                    f"{worst / reached[0]:.3f} (goal < 0.333)"
                )
        print(f"finished, {load()}")


if __name__ == "__main__":
    main()
