"""A canary for moved results: each shipped config's fingerprint, recorded and checked.

Usage::

    python benchmarks/check_figures.py            # check every shipped config
    python benchmarks/check_figures.py --record   # record this machine's fingerprints
    python benchmarks/check_figures.py configs/acrobot_ppo.yaml ...

A fingerprint is a hash of a short run of the config: :data:`ROUNDS` rounds with the config's
own seed, through the real command line (in this process), hashing every ``metrics.csv``
column but the timings and every tensor of ``last.ckpt``. Results are bit-identical on one
kind of machine, so a change that moves a config's trajectory changes its fingerprint. The
check then names that config, and the change re-measures its figures
(``benchmarks/held_out.py``) in the same commit series: every results file holds the
fingerprint it was measured under, and ``tests/test_figures.py`` fails while one differs from
the recorded fingerprint.

Fingerprints are per machine kind (CPU model, vector units, torch version): floats differ
across CPUs. On a machine with no recorded fingerprint the check says "other machine: not
comparable" and passes; it neither fails nor passes falsely.

Exit codes: 0 when every config matches (or nothing is comparable), 1 when one has moved or has
no fingerprint on this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
FINGERPRINTS = ROOT / "benchmarks" / "results" / "fingerprints.json"
ROUNDS = 2
"""Rounds of each fingerprint's run."""


def machine_kind() -> str:
    """The kind of machine fingerprints are valid on: CPU kind and torch version."""
    from machine import cpu_kind

    return f"{cpu_kind()}, torch {torch.__version__}"


def _hash_tensors(obj: Any, digest: Any, prefix: str = "") -> None:
    """Feed every tensor in ``obj`` (nested dicts and lists) into ``digest``, keys sorted."""
    if isinstance(obj, torch.Tensor):
        digest.update(prefix.encode())
        digest.update(obj.detach().cpu().contiguous().numpy().tobytes())
    elif isinstance(obj, dict):
        for key in sorted(obj, key=str):
            _hash_tensors(obj[key], digest, f"{prefix}/{key}")
    elif isinstance(obj, list | tuple):
        for i, item in enumerate(obj):
            _hash_tensors(item, digest, f"{prefix}/{i}")


def fingerprint(config: str | Path) -> str:
    """The fingerprint of ``config``: a file name under ``configs/``, or a path.

    Raises:
        RuntimeError: Where the short run does not finish.
    """
    from fedrl_lightning.cli.app import main
    from fedrl_lightning.run.checkpoints import load_checkpoint

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same arithmetic whoever calls
    try:
        with tempfile.TemporaryDirectory() as root:
            argv = [
                "fit",
                "--config",
                str(CONFIGS / config if isinstance(config, str) else config),
                f"--trainer.num_rounds={ROUNDS}",
                f"--trainer.default_root_dir={root}",
                "--trainer.enable_progress_bar=false",
            ]
            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                code = main(argv)
            if code != 0:
                raise RuntimeError(f"{config}: the fingerprint run failed:\n{out.getvalue()}")
            run = Path(root) / "lightning_logs" / "version_0"
            digest = hashlib.sha256()
            with open(run / "metrics.csv", newline="") as f:
                for row in csv.DictReader(f):
                    kept = {k: v for k, v in row.items() if not k.endswith("time")}
                    digest.update(json.dumps(kept, sort_keys=True).encode())
            _hash_tensors(load_checkpoint(run / "checkpoints" / "last.ckpt"), digest)
    finally:
        torch.set_num_threads(threads)
    return digest.hexdigest()[:16]


def shipped_configs() -> list[str]:
    """Every config file under ``configs/``, by name."""
    return sorted(p.name for p in CONFIGS.glob("*.yaml"))


def read_fingerprints() -> dict[str, dict[str, str]]:
    """The recorded fingerprints: machine kind -> config -> fingerprint."""
    if not FINGERPRINTS.exists():
        return {}
    return json.loads(FINGERPRINTS.read_text())


def record(configs: list[str]) -> None:
    """Record this machine's fingerprints of ``configs``, keeping other machines' and configs'."""
    recorded = read_fingerprints()
    kind = machine_kind()
    mine = recorded.setdefault(kind, {})
    for config in configs:
        started = time.perf_counter()
        mine[config] = fingerprint(config)
        print(f"{config}: {mine[config]} ({time.perf_counter() - started:.1f} s)", flush=True)
    recorded[kind] = dict(sorted(mine.items()))
    FINGERPRINTS.parent.mkdir(parents=True, exist_ok=True)
    partial = FINGERPRINTS.with_suffix(".partial")
    partial.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
    os.replace(partial, FINGERPRINTS)


def check(configs: list[str]) -> int:
    """Check ``configs`` against this machine's fingerprints; print and return the exit code."""
    kind = machine_kind()
    mine = read_fingerprints().get(kind)
    if mine is None:
        print(f"other machine: not comparable ({kind} has no recorded fingerprints)")
        return 0
    moved, missing = [], []
    for config in configs:
        if config not in mine:
            missing.append(config)
            print(f"{config}: no fingerprint recorded on this machine")
            continue
        now = fingerprint(config)
        if now != mine[config]:
            moved.append(config)
            print(f"{config}: MOVED ({mine[config]} recorded, {now} now)", flush=True)
        else:
            print(f"{config}: unchanged", flush=True)
    if moved:
        print(
            f"moved: {', '.join(moved)}. Re-measure their figures (benchmarks/held_out.py), "
            "then record the fingerprints (--record)."
        )
    if missing:
        print(f"not recorded: {', '.join(missing)}; record them with --record")
    return 1 if moved or missing else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", type=Path, help="configs (default: every one)")
    parser.add_argument("--record", action="store_true", help="record instead of checking")
    args = parser.parse_args()
    configs = [c.name for c in args.configs] or shipped_configs()
    if args.record:
        record(configs)
    else:
        sys.exit(check(configs))


if __name__ == "__main__":
    main()
