"""Fixed cost of one local fit, and resident memory over 500 of them.

Usage::

    python benchmarks/local_fit_overhead.py [--fits 500] [--warmup 50] [--no-write]

Each local fit is the real one (``fit_agent``: build the module, a fresh ``lightning.Trainer``,
fit, save the agent checkpoint), on ``fedrl/Simple-v0`` episodes cut to a single step, so
what is measured is the fixed cost of building and tearing everything down, not learning.
Resident memory (``VmRSS``) is read after every fit. Writes
``benchmarks/results/local_fit.json``, from which ``benchmarks/render_figures.py`` makes
``docs/figures/local_fit.md``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from protocol import TableResults

from fedrl_lightning import AgentPopulation, Reinforce
from fedrl_lightning.federation.local_fit import LocalFit, fit_agent
from fedrl_lightning.run.console import quiet_lightning

TRAINER_KWARGS = {
    "accelerator": "cpu",
    "devices": 1,
    "enable_progress_bar": False,
    "enable_model_summary": False,
}


def resident_mb() -> float:
    """This process's resident memory in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    TableResults.add_no_write(parser)
    args = parser.parse_args()
    table = TableResults(
        "local_fit",
        "The fixed cost and memory of a local fit",
        "python benchmarks/local_fit_overhead.py",
        ["measure", "value"],
    )
    population = AgentPopulation(num_agents=10, max_episode_steps=1)
    model = Reinforce(observation_dim=population.observation_dim, num_actions=2)
    global_state = {k: v.clone() for k, v in model.state_dict().items()}
    seconds, memory = [], []
    with tempfile.TemporaryDirectory() as folder, quiet_lightning(verbose=False):
        for i in range(args.warmup + args.fits):
            task = LocalFit(
                agent_id=i % population.num_agents,
                round_idx=i,
                run_seed=0,
                module_class=Reinforce,
                model_hparams=dict(model.hparams),
                global_state=global_state,
                num_episodes=1,
                checkpoint_path=Path(folder) / "agent.ckpt",
                trainer_kwargs=TRAINER_KWARGS,
            )
            started = time.perf_counter()
            fit_agent(task, population)
            seconds.append(time.perf_counter() - started)
            memory.append(resident_mb())
    measured = np.array(seconds[args.warmup :]) * 1000
    after_warmup = memory[args.warmup - 1]
    table.add_row("fixed cost per local fit, median", f"{np.median(measured):.1f} ms")
    table.add_row(
        "fixed cost per local fit, 90th percentile", f"{np.percentile(measured, 90):.1f} ms"
    )
    table.add_row(f"resident memory after {args.warmup} warm-up fits", f"{after_warmup:.1f} MB")
    table.add_row(f"resident memory after {args.fits} more", f"{memory[-1]:.1f} MB")
    table.add_row("growth over those fits", f"{memory[-1] - after_warmup:+.1f} MB")
    table.add_row("peak resident memory", f"{max(memory):.1f} MB")
    table.add_note(
        f"{args.fits} real local fits (`fit_agent`) of one-step episodes after {args.warmup} "
        f"warm-up fits, in one process with {torch.get_num_threads()} torch threads."
    )
    for row in table.results["rows"]:
        print(f"{row[0]}: {row[1]}")
    if not args.no_write:
        print(f"wrote {table.write()}")


if __name__ == "__main__":
    main()
