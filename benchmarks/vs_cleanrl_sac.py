"""Wall time per env step, updates included: our SAC against CleanRL's SAC, side by side.

Usage::

    python benchmarks/vs_cleanrl_sac.py [--cleanrl /work/cleanrl/sac_continuous_action.py]
                                        [--cleanrl-python PY] [--steps 10000] [--repeats 3]
                                        [--no-write]

Both learn Pendulum-v1 for ``--steps`` env steps with CleanRL's hyperparameters: two hidden
layers of 256, a buffer of 100,000 (CleanRL's default is a million: the buffer's size costs
memory, not time), batches of 256, uniformly random actions for the first 5,000 steps and an
update after every step from then on, the actor at 3e-4 and the critics at 1e-3, the
temperature tuned, tau 0.005, gamma 0.99. CleanRL updates the actor and the temperature twice
every second step, ours once a step (SB3's schedule): as many updates either way. Ours is
``python -m fedrl_lightning fit --model SAC``: a federation of one agent, one agent a round,
``--steps-per-round`` steps a round and one evaluation episode after each (whose time counts).
Each run is timed as in ``vs_cleanrl_dqn.py`` (``per_step_speed.py``).

CleanRL's code is not part of this repository: pass the path of a copy, and a Python that
runs it. Writes ``benchmarks/results/sac_speed.json``, from which
``benchmarks/render_figures.py`` makes ``docs/figures/sac_speed.md``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from per_step_speed import COLUMNS, add_comparison, one_agent_fit, parse_arguments, run_in_turn
from protocol import TableResults

SHARED = {
    "buffer_size": ("buffer-size", "100000"),
    "batch_size": ("batch-size", "256"),
    "learning_starts": ("learning-starts", "5000"),
    "lr": ("policy-lr", "3e-4"),
    "q_lr": ("q-lr", "1e-3"),
    "tau": ("tau", "0.005"),
    "gamma": ("gamma", "0.99"),
    "target_update_interval": ("target-network-frequency", "1"),
}
"""Our option and CleanRL's, with the value both take (CleanRL's, but for the buffer)."""


def our_fit_arguments(steps: int, steps_per_round: int, root: Path) -> list[str]:
    """The command of our fit: ``steps`` env steps of one agent, CleanRL's hyperparameters."""
    model = {name: value for name, (_, value) in SHARED.items()} | {
        "hidden_dim": "256",
        "num_layers": "2",
        "train_freq": "1",
        "gradient_steps": "1",
        "autotune": "true",
    }
    return one_agent_fit("SAC", model, "Pendulum-v1", steps, steps_per_round, root)


def cleanrl_arguments(script: Path, steps: int) -> list[str]:
    """CleanRL's SAC options for ``steps`` steps of Pendulum-v1 on the CPU."""
    options = [f"--{name}={value}" for name, value in SHARED.values()]
    return [
        str(script.resolve()),
        "--env-id=Pendulum-v1",
        f"--total-timesteps={steps}",
        "--seed=1",
        "--no-cuda",
        *options,
    ]


def main() -> None:
    args = parse_arguments(__doc__, "sac_continuous_action.py", 10_000, 5_000)
    if args is None:
        return
    table = TableResults(
        "sac_speed",
        "SAC: wall time per env step against CleanRL's sac_continuous_action.py",
        "python benchmarks/vs_cleanrl_sac.py",
        COLUMNS,
    )
    with tempfile.TemporaryDirectory() as workdir:
        ours, cleanrl = run_in_turn(args, our_fit_arguments, cleanrl_arguments, Path(workdir))
    add_comparison(table, ours, cleanrl, args.steps, "torch, tyro and tensorboard")
    print(json.dumps(table.results["rows"], indent=1))
    if not args.no_write:
        print(f"wrote {table.write(totals=True)}")


if __name__ == "__main__":
    main()
