"""Wall time per env step, updates included: our DQN against CleanRL's ``dqn.py``, side by side.

Usage::

    python benchmarks/vs_cleanrl_dqn.py [--cleanrl /work/cleanrl/dqn.py] [--cleanrl-python PY]
                                        [--steps 50000] [--repeats 3] [--no-write]

Both learn CartPole-v1 for ``--steps`` env steps with CleanRL's DQN hyperparameters: buffer
10,000, batch 128, an update after every 10th step once past 10,000 steps, the target copied
every 500 steps, Adam at 2.5e-4, ε from 1 to 0.05 over half the steps, MSE loss, no gradient
clipping, plain (not double) DQN. Ours is ``python -m fedrl_lightning fit --model DQN``: a
federation of one agent, one agent a round, ``--steps-per-round`` steps a round, and one
evaluation episode after each round (whose time counts). What differs: CleanRL's hidden
layers are 120 and 84 wide, ours are two of 120 (equal widths); ours takes its Adam steps
fused, CleanRL torch's default. Each run is a fresh process pinned to core 0 (``taskset -c
0``, ``OMP_NUM_THREADS=1``), ours and CleanRL's in turn, ``--repeats`` times; each is timed
from the process's start to its end, and per step without its start-up: for CleanRL, the
last ``SPS`` it prints (steps over the time since its loop started); for ours, the summed
``round_time`` of ``metrics.csv`` (each round's fit, aggregation and evaluation; the round's
checkpoint is written after it). Each process's CPU time is kept too: on a shared core it
leaves out the time the process waited while others ran. Then
``benchmarks/dqn_step_breakdown.py``, also pinned, times the parts of one more fit of ours.

CleanRL's code is not part of this repository: pass the path of a copy, and a Python that
runs it (CleanRL pins gymnasium 0.29.1, whose vector env gives ``final_observation``). Writes
``benchmarks/results/dqn_speed.json``, from which ``benchmarks/render_figures.py`` makes
``docs/figures/dqn_speed.md``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from per_step_speed import (
    COLUMNS,
    add_comparison,
    microseconds,
    one_agent_fit,
    parse_arguments,
    run_in_turn,
)
from protocol import TableResults
from vs_cleanrl import load, timestamped_lines

HIDDEN = 120
"""Our hidden layers' width (CleanRL's are 120 and 84)."""
BATCH_SIZE = 128
SHARED = {
    "lr": ("learning-rate", "2.5e-4"),
    "buffer_size": ("buffer-size", "10000"),
    "batch_size": ("batch-size", str(BATCH_SIZE)),
    "learning_starts": ("learning-starts", "10000"),
    "train_freq": ("train-frequency", "10"),
    "target_update_interval": ("target-network-frequency", "500"),
    "tau": ("tau", "1.0"),
    "gamma": ("gamma", "0.99"),
    "exploration_initial_eps": ("start-e", "1.0"),
    "exploration_final_eps": ("end-e", "0.05"),
}
"""Our option and CleanRL's, with the value both take (CleanRL's defaults)."""


def our_fit_arguments(steps: int, steps_per_round: int, root: Path) -> list[str]:
    """The command of our fit: ``steps`` env steps of one agent, CleanRL's hyperparameters."""
    model = {name: value for name, (_, value) in SHARED.items()} | {
        "hidden_dim": str(HIDDEN),
        "num_layers": "2",
        "gradient_steps": "1",
        "exploration_steps": str(steps // 2),  # CleanRL's exploration_fraction 0.5
        "double_q": "false",
        "loss": "mse",
        "max_grad_norm": "null",
    }
    return one_agent_fit("DQN", model, "CartPole-v1", steps, steps_per_round, root)


def cleanrl_arguments(script: Path, steps: int) -> list[str]:
    """CleanRL's ``dqn.py`` options: its defaults, named, for ``steps`` steps on the CPU."""
    options = [f"--{name}={value}" for name, value in SHARED.values()]
    return [
        str(script.resolve()),
        "--env-id=CartPole-v1",
        f"--total-timesteps={steps}",
        "--exploration-fraction=0.5",
        "--seed=1",
        "--no-cuda",
        *options,
    ]


def lightning_seconds(parts: dict[str, Any]) -> float:
    """What Lightning adds to our fit: its per-batch loop, its wrappers and each fit's set-up."""
    seconds = parts["seconds"]
    return (
        seconds["epoch loop"] - seconds["dataset"] - seconds["DQN.training_step"]
        + seconds["optimizers()"] + seconds.get("clip_gradients", 0.0)
        + seconds["manual_backward"] - seconds["autograd backward"]
        + seconds["LightningOptimizer.step"] - seconds["Adam.step"]
        + seconds["Trainer.fit"] - seconds["epoch loop"]
    )  # fmt: skip


def breakdown(parts: dict[str, Any]) -> list[tuple[str, float, bool]]:
    """The parts of the rounds' time: a name, seconds, and whether it is paid per update.

    The parts not marked ``↳`` add up to the rounds' time; those marked ``↳`` add up to
    the part before them (Lightning's per-batch loop).
    """
    seconds, fits = parts["seconds"], parts["calls"].get("Trainer.fit", 0)

    def s(name: str) -> float:
        return float(seconds.get(name, 0.0))

    acting_parts = ("env.step", "acting", "ReplayBuffer.add", "ReplayBuffer.sample")
    loop_fetch = s("fetch") - s("dataset")
    loop_rest = (
        s("epoch loop") - s("dataset") - s("DQN.training_step") - loop_fetch
        - s("signature check") - s("logger connector") - s("batch_to_device")
    )  # fmt: skip
    wrappers = ("optimizers()", "zero_grad", "manual_backward", "clip_gradients")
    return [
        ("env: `env.step` (CartPole and its wrappers)", s("env.step"), False),
        ("acting: ε-greedy numpy actor", s("acting"), False),
        ("`ReplayBuffer.add`", s("ReplayBuffer.add"), False),
        ("`ReplayBuffer.sample`", s("ReplayBuffer.sample"), True),
        ("the dataset's own loop", s("dataset") - sum(map(s, acting_parts)), False),
        (
            "`DQN.training_step` less `_optimize`: forwards, target, loss, records",
            s("DQN.training_step") - s("_optimize"),
            True,
        ),
        ("`optimizers()`", s("optimizers()"), True),
        ("`zero_grad`", s("zero_grad"), True),
        (
            "`manual_backward` less autograd's backward",
            s("manual_backward") - s("autograd backward"),
            True,
        ),
        ("autograd's backward", s("autograd backward"), True),
        ("`clip_gradients` (off here, as in CleanRL)", s("clip_gradients"), True),
        (
            "`LightningOptimizer.step` less Adam's step",
            s("LightningOptimizer.step") - s("Adam.step"),
            True,
        ),
        ("Adam's step (fused)", s("Adam.step"), True),
        (
            "`_optimize`'s own lines",
            s("_optimize") - sum(map(s, wrappers)) - s("LightningOptimizer.step"),
            True,
        ),
        (
            "Lightning's per-batch loop (epoch loop less dataset and training steps), of which:",
            s("epoch loop") - s("dataset") - s("DQN.training_step"),
            True,
        ),
        ("↳ `training_step`'s signature, inspected every batch", s("signature check"), True),
        ("↳ the logger connector (the fit has no logger)", s("logger connector"), True),
        ("↳ `batch_to_device` (our `transfer_batch_to_device` in it)", s("batch_to_device"), True),
        ("↳ the fetch less the dataset: DataLoader, `default_convert`", loop_fetch, True),
        ("↳ the rest: hook dispatch, progress counters, state checks", loop_rest, True),
        (
            f"each fit's set-up and tear-down in `Trainer.fit` ({fits} fits)",
            s("Trainer.fit") - s("epoch loop"),
            False,
        ),
        (
            "the round outside `Trainer.fit`: memory, aggregation, evaluation",
            parts["rounds_seconds"] - s("Trainer.fit"),
            False,
        ),
    ]


def breakdown_rows(parts: dict[str, Any]) -> list[list[str]]:
    """The breakdown's rows: each part's µs per env step, its share and µs per update."""
    steps, updates = parts["steps"], parts["calls"].get("Adam.step", 0)
    rows = []
    for name, value, per_update in breakdown(parts):
        share = value / parts["rounds_seconds"]
        each = f"{value / updates * 1e6:.0f} µs" if per_update and updates else ""
        rows.append([name, microseconds(value, steps), f"{share:.1%}", each])
    rows.append(["**the rounds' time**", microseconds(parts["rounds_seconds"], steps), "100%", ""])
    for name, key in (
        ("our network, fused Adam", "raw_update_ours"),
        ("CleanRL's 120-84 network, default Adam", "raw_update_cleanrl"),
    ):
        value = parts[key] * updates
        rows.append(
            [
                f"for reference: a plain torch update, {name}",
                microseconds(value, steps),
                "",
                f"{parts[key] * 1e6:.0f} µs",
            ]
        )
    return rows


def main() -> None:
    args = parse_arguments(__doc__, "dqn.py", 50_000, 10_000)
    if args is None:
        return
    table = TableResults(
        "dqn_speed",
        "DQN: wall time per env step against CleanRL's dqn.py",
        "python benchmarks/vs_cleanrl_dqn.py",
        COLUMNS,
    )
    with tempfile.TemporaryDirectory() as workdir:
        ours, cleanrl = run_in_turn(args, our_fit_arguments, cleanrl_arguments, Path(workdir))
        print(f"breakdown of our fit: starting, {load()}", flush=True)
        lines, _ = timestamped_lines(
            [
                sys.executable,
                str(Path(__file__).with_name("dqn_step_breakdown.py")),
                f"--steps={args.steps}",
                f"--steps-per-round={args.steps_per_round}",
            ],
            os.getcwd(),
        )
    parts = json.loads(lines[-1][1])
    updates = parts["calls"]["Adam.step"]
    add_comparison(table, ours, cleanrl, args.steps, "torch and tyro")
    table.results["sections"] = [
        {
            "title": "Where our time per env step goes",
            "text": (
                f"One more fit of ours, in one process with a timer around each part "
                f"(`benchmarks/dqn_step_breakdown.py`): {updates:,} "
                f"updates over {args.steps:,} env steps. Shares are of the rounds' summed time. "
                f"Lightning (its per-batch loop, `optimizers()`, `manual_backward` and "
                f"`LightningOptimizer.step` around autograd's and Adam's work, and each fit's "
                f"set-up) takes {microseconds(lightning_seconds(parts), args.steps)} an env "
                f"step, {lightning_seconds(parts) / updates * 1e6:.0f} µs an update."
            ),
            "columns": ["part", "per env step", "share", "per update"],
            "rows": breakdown_rows(parts),
        }
    ]
    table.results["breakdown"] = parts
    print(json.dumps(table.results["rows"], indent=1))
    if not args.no_write:
        print(f"wrote {table.write(totals=True)}")


if __name__ == "__main__":
    main()
