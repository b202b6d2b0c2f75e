"""Wall time of the default ``fit`` against the tutorial's script, run back to back.

Usage::

    python benchmarks/speed_vs_tutorial.py [--tutorial ../shared/reference/tutorial113.py]
                                           [--no-write]

Both run the same experiment (10 agents, 5 per round, 50 rounds, 10 episodes per round) as
fresh processes, so imports count for both. The comparison is skipped when the tutorial's
script is absent. Writes ``benchmarks/results/speed.json``, from which
``benchmarks/render_figures.py`` makes ``docs/figures/speed.md``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from protocol import TableResults

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
    TableResults.add_no_write(parser)
    args = parser.parse_args()
    table = TableResults(
        "speed",
        "Speed: the default fit against the tutorial's script",
        "python benchmarks/speed_vs_tutorial.py",
        ["run", "wall time", "tutorial's time / this run's"],
    )
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
        f"speed-up:            {tutorial / min(ours):.1f}x (worst run: {tutorial / max(ours):.1f}x)"
    )
    table.add_row("the tutorial's script (`tutorial113.py`)", f"{tutorial:.2f} s", "1.0x")
    for i, seconds in enumerate(ours, 1):
        table.add_row(
            f"`python -m fedrl_lightning fit`, run {i}",
            f"{seconds:.2f} s",
            f"{tutorial / seconds:.1f}x",
        )
    table.add_note(
        f"The default fit takes {tutorial / min(ours):.1f}x less time than the tutorial's "
        f"script at best, {tutorial / max(ours):.1f}x in its slowest of {len(ours)} runs. Each "
        "is a fresh process, so starting Python and importing torch and Lightning count."
    )
    if not args.no_write:
        print(f"wrote {table.write()}")


if __name__ == "__main__":
    main()
