"""Fitting a config through the real command line, for the benchmarks."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def fit_config(config: Path, seed: int | None, root: Path, *overrides: str) -> tuple[Path, float]:
    """Run ``python -m fedrl_lightning fit`` on ``config`` with ``seed`` under ``root``.

    ``seed`` ``None`` keeps the config's own.

    Returns:
        The run folder and the command's wall time in seconds.

    Raises:
        FileExistsError: If ``root`` already holds runs: the fit would not be ``version_0``,
            and the run read back would be a stale one (a killed earlier benchmark's).
    """
    if (root / "lightning_logs").exists():
        raise FileExistsError(
            f"{root} already holds runs (a stale benchmark's?): remove it or choose another folder"
        )
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "fedrl_lightning",
            "fit",
            "--config",
            str(config),
            *([f"--seed_everything={seed}"] if seed is not None else []),
            f"--trainer.default_root_dir={root}",
            "--trainer.enable_progress_bar=false",
            *overrides,
        ],
        check=True,
        capture_output=True,
    )
    return root / "lightning_logs" / "version_0", time.perf_counter() - started
