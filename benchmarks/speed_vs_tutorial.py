"""Wall time of the default ``fit`` against the tutorial's script, run back to back.

Usage::

    python benchmarks/speed_vs_tutorial.py [--tutorial ../shared/reference/tutorial113.py]

Both run the same experiment (10 agents, 5 per round, 50 rounds, 10 episodes per round) as
fresh processes, so imports count for both. The comparison is skipped when the tutorial's
script is absent.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe_machine

DEFAULT_TUTORIAL = Path(__file__).resolve().parents[2] / "shared/reference/tutorial113.py"


def timed(command: list[str], cwd: str) -> float:
    """Run ``command`` and return its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tutorial", type=Path, default=DEFAULT_TUTORIAL)
    parser.add_argument("--repeats", type=int, default=3, help="runs of our fit (best is kept)")
    args = parser.parse_args()

    print(f"machine: {describe_machine()}")
    with tempfile.TemporaryDirectory() as workdir:
        fit = [
            sys.executable,
            "-m",
            "fedrl_lightning",
            "fit",
            "--trainer.enable_progress_bar=false",
        ]
        ours = [timed(fit, workdir) for _ in range(args.repeats)]
        print(
            f"fedrl_lightning fit: best {min(ours):.2f} s of {args.repeats} "
            f"({', '.join(f'{t:.2f}' for t in ours)})"
        )
        if not args.tutorial.is_file():
            print(f"tutorial script not found at {args.tutorial}: comparison skipped")
            return
        tutorial = timed([sys.executable, str(args.tutorial.resolve())], workdir)
        print(f"tutorial script:     {tutorial:.2f} s")
        print(
            f"speed-up:            {tutorial / min(ours):.1f}x "
            f"(worst run: {tutorial / max(ours):.1f}x)"
        )


if __name__ == "__main__":
    main()
