"""Peak memory and disk of DQN agents' replay buffers as the population grows, 10 sampled a round.

Usage::

    python benchmarks/replay_memory.py [--agents 10 1000] [--rounds 20] [--steps 1000]

Each population size is fitted in a process of its own through the command line's ``main``:
``--model DQN`` on ``fedrl/Simple-v0`` with 100,000-transition buffers, 10 agents sampled a
round, each taking ``--steps`` env steps a fit, and no gradient step (``learning_starts``
beyond the run), since what is measured is where the buffers live, not the training. Every
agent's memory (buffer, target network, step count) is kept in the run folder's ``memory/``
and read only for the agent's own fit. The figures are the process's peak resident memory
(``ru_maxrss``), the size of ``memory/`` on disk at the end, and the buffers' fill. The goal
(issue 25): the large population's peak within 10% of the small one's.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from protocol import TableResults

BUFFER_SIZE = 100_000
SAMPLED = 10


def child(num_agents: int, rounds: int, steps: int) -> None:
    """Fit one population size in this process and print its figures as JSON."""
    from fedrl_lightning.cli.app import main

    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        code = main(
            [
                "fit",
                "--config=configs/default.yaml",
                "--model=DQN",
                f"--model.buffer_size={BUFFER_SIZE}",
                f"--model.steps_per_round={steps}",
                f"--model.learning_starts={10 * rounds * steps}",
                f"--data.num_agents={num_agents}",
                f"--trainer.agents_per_round={SAMPLED}",
                f"--trainer.num_rounds={rounds}",
                "--trainer.eval_episodes=1",
                f"--trainer.default_root_dir={root}",
                "--trainer.enable_progress_bar=false",
            ]
        )
        wall = time.perf_counter() - started
        if code:
            raise SystemExit(code)
        memory = Path(root) / "lightning_logs/version_0/memory"
        files = sorted(memory.glob("agent-*.ckpt"))
        held = [
            torch.load(f, weights_only=True)["memory"]["replay"]["rewards"].numel() for f in files
        ]
        disk_mb = sum(f.stat().st_size for f in files) / 2**20
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "peak_mb": peak_mb,
                "disk_mb": disk_mb,
                "agents_with_memory": len(files),
                "largest_buffer": max(held),
                "seconds": wall,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[10, 1000])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    TableResults.add_no_write(parser)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.rounds, args.steps)
        return
    table = TableResults(
        "replay_memory",
        "Replay buffers cost disk, not memory",
        "python benchmarks/replay_memory.py",
        ["agents", "sampled a round", "agents with a buffer", "largest buffer", "on disk",
         "peak resident memory"],
    )  # fmt: skip
    peaks = {}
    for num_agents in args.agents:
        command = [
            sys.executable, __file__, f"--child={num_agents}", f"--rounds={args.rounds}",
            f"--steps={args.steps}",
        ]  # fmt: skip
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        figures = json.loads(output.strip().splitlines()[-1])
        peaks[num_agents] = figures["peak_mb"]
        table.add_row(
            f"{num_agents:,}",
            SAMPLED,
            f"{figures['agents_with_memory']:,}",
            f"{figures['largest_buffer']:,} transitions",
            f"{figures['disk_mb']:.1f} MB",
            f"{figures['peak_mb']:.0f} MB",
        )
        print(table.results["rows"][-1], flush=True)
    smallest, largest = min(peaks), max(peaks)
    ratio = peaks[largest] / peaks[smallest]
    verdict = "met" if ratio <= 1.1 else "missed"
    table.add_note(
        f"Goal: {largest:,} agents' peak within 10% of {smallest:,} agents' ({verdict}: "
        f"{ratio:.3f}x). {args.rounds} rounds of {SAMPLED} agents x {args.steps:,} env steps on "
        f"`fedrl/Simple-v0`, `--model DQN` with {BUFFER_SIZE:,}-transition buffers and no "
        "gradient step; each population size in a fresh process, its peak from `ru_maxrss`."
    )
    table.add_note(
        "With few agents each is sampled often, so its buffer holds more: the small population "
        "loads the larger buffers. What stays flat is that an agent's buffer is read only for "
        "its own fit, whatever the population's size."
    )
    print(table.results["notes"][0])
    if not args.no_write:
        print(f"wrote {table.write()}")


if __name__ == "__main__":
    main()
