"""Wall time of every shipped config, fitted once through the real command line.

Usage::

    python benchmarks/config_run_times.py            # every configs/*.yaml
    python benchmarks/config_run_times.py configs/cartpole.yaml

Each config runs with its own seed and settings, the progress bar off, in a fresh folder;
the time includes starting Python and importing torch and Lightning.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

from machine import describe_machine
from runs import fit_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", type=Path, default=sorted(CONFIGS.glob("*.yaml")))
    args = parser.parse_args()
    print(describe_machine())
    print(f"{'config':<24} {'rounds':>6} {'episodes':>9} {'env steps':>11} {'seconds':>8}")
    with tempfile.TemporaryDirectory() as workdir:
        for config in args.configs:
            root = Path(workdir) / config.stem
            run, seconds = fit_config(config, seed=None, root=root)
            with open(run / "metrics.csv") as f:
                last = list(csv.DictReader(f))[-1]
            print(
                f"{config.name:<24} {last['round']:>6} {int(last['episodes']):>9,} "
                f"{int(last['env_steps']):>11,} {seconds:>8.1f}"
            )


if __name__ == "__main__":
    main()
