"""Which folder a fit runs in: a new one, a resumed one, or an unfinished one started again."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fedrl_lightning.run.run_folder import RUNS_FOLDER, RunFolder

__all__ = ["fresh_run", "resumed_run"]


def resumed_run(
    checkpoint: Path, root: Path, history: Sequence[dict[str, Any]]
) -> tuple[RunFolder, str | None]:
    """The folder of a run resumed from ``checkpoint``, rewound to its round.

    Args:
        checkpoint: The round checkpoint being resumed.
        root: The ``default_root_dir``, for a checkpoint outside any run folder.
        history: The metrics of the rounds up to the checkpoint's.

    Returns:
        The folder (the checkpoint's own, or a new one when it lies elsewhere), and a notice
        when later rounds were discarded.
    """
    run = RunFolder.of_checkpoint(checkpoint)
    if run is None:
        return RunFolder.create(root), None
    discarded = run.rewind(checkpoint, history)
    if not discarded:
        return run, None
    first, last = discarded[0], discarded[-1]
    rounds = f"1 later round ({first})" if first == last else f"{len(discarded)} later rounds"
    if first != last:
        rounds += f" ({first}-{last})"
    return run, f"resuming {run.path} after round {history[-1]['round']}: discarded {rounds}"


def fresh_run(root: Path, resuming: bool) -> tuple[RunFolder, str | None]:
    """The folder of a run starting at round 1: a new one, or an unfinished newest one.

    ``resuming``: ``--ckpt_path last`` found nothing to resume, so, as in Lightning, the run
    starts afresh; a newest run that completed no round is started again in place.

    Returns:
        The folder, and a notice when ``resuming`` found nothing to resume.
    """
    newest = RunFolder.newest(root) if resuming else None
    if newest is not None:
        newest.clear()
        return newest, (
            f"--ckpt_path last: {newest.path} has no completed round; starting it again at round 1"
        )
    run = RunFolder.create(root)
    if not resuming:
        return run, None
    runs = root / RUNS_FOLDER
    return run, f"--ckpt_path last: no run to resume in {runs}; starting {run.path} at round 1"
