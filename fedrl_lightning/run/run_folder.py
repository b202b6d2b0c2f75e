"""A run's folder, ``<root>/lightning_logs/version_N``: what it holds and how to find it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.run.checkpoints import atomic_write_bytes, atomic_write_text
from fedrl_lightning.run.metrics_csv import csv_text

__all__ = ["RUNS_FOLDER", "RunFolder", "resolve_checkpoint", "run_folder_of", "trained_checkpoint"]

RUNS_FOLDER = "lightning_logs"
VERSION_PATTERN = re.compile(r"version_(\d+)")
ROUND_PATTERN = re.compile(r"round-(\d+)\.ckpt")
AGENT_PATTERN = re.compile(r"round-(\d+)-agent-\d+\.ckpt")
# What a start that never completed a round may leave in its folder.
UNFINISHED_FILES = (
    "config.yaml",
    "agents.csv",
    "metrics.csv",
    "hparams.yaml",
    "events.out.tfevents.*",
    "checkpoints/*.ckpt",
    "agents/*.ckpt",
    "personal/*.ckpt",
    "memory/*.ckpt",
    "probe_states.pt",
)


class RunFolder:
    """The folder of one federated run and the names of the files in it.

    Args:
        path: The run's folder, normally ``<root>/lightning_logs/version_N``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.created = False
        """Whether :meth:`create` made the folder, in this process."""

    @property
    def version(self) -> int | None:
        """``N`` of ``version_N``, or ``None`` for a folder named otherwise."""
        match = VERSION_PATTERN.fullmatch(self.path.name)
        return int(match.group(1)) if match else None

    @property
    def config(self) -> Path:
        """The resolved config, ``config.yaml``."""
        return self.path / "config.yaml"

    @property
    def metrics(self) -> Path:
        """One row per round, ``metrics.csv``."""
        return self.path / "metrics.csv"

    @property
    def agents_table(self) -> Path:
        """Each agent's environment parameters, ``agents.csv``."""
        return self.path / "agents.csv"

    @property
    def checkpoints(self) -> Path:
        """The folder of round checkpoints."""
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        """The checkpoint of the newest completed round, ``checkpoints/last.ckpt``."""
        return self.checkpoints / "last.ckpt"

    @property
    def best_checkpoint(self) -> Path:
        """The round checkpoint with the highest ``eval_reward``, ``checkpoints/best.ckpt``."""
        return self.checkpoints / "best.ckpt"

    @property
    def personal(self) -> Path:
        """The agents' own parameters (agent-scoped), one file per agent."""
        return self.path / "personal"

    @property
    def memory(self) -> Path:
        """What off-policy agents keep between their rounds (replay, targets), one file each."""
        return self.path / "memory"

    @property
    def agents(self) -> Path:
        """The folder where agents' checkpoints land before aggregation."""
        return self.path / "agents"

    def round_checkpoint(self, round_idx: int) -> Path:
        """The checkpoint of round ``round_idx`` (1-based)."""
        return self.checkpoints / f"round-{round_idx:04d}.ckpt"

    def agent_checkpoint(self, round_idx: int, agent_id: int) -> Path:
        """Where agent ``agent_id`` saves its checkpoint in round ``round_idx``."""
        return self.agents / f"round-{round_idx:04d}-agent-{agent_id:04d}.ckpt"

    @property
    def round_checkpoints(self) -> dict[int, Path]:
        """The round checkpoints in the folder, by round."""
        if not self.checkpoints.is_dir():
            return {}
        found = ((ROUND_PATTERN.fullmatch(p.name), p) for p in self.checkpoints.iterdir())
        return {int(match.group(1)): path for match, path in found if match}

    @property
    def resumable_checkpoint(self) -> Path | None:
        """The checkpoint a resume continues from; ``None`` when no round was completed.

        That is ``last.ckpt``, or else the newest round checkpoint: a process killed between
        writing a round's checkpoint and ``last.ckpt`` has still completed that round.
        """
        if self.last_checkpoint.is_file():
            return self.last_checkpoint
        rounds = self.round_checkpoints
        return rounds[max(rounds)] if rounds else None

    def tidy(self) -> None:
        """Remove the ``agents/`` folder if it holds nothing, as when a run has ended."""
        if self.agents.is_dir() and not any(self.agents.iterdir()):
            self.agents.rmdir()

    def remove_agent_checkpoints(self, after_round: int) -> None:
        """Remove the agents' checkpoints of the rounds after ``after_round``.

        An interrupted run calls this for the round it did not finish, and a rewound run for
        the rounds it discards; a resumed run redoes them from the start.
        """
        for path in self.agents.glob("round-*-agent-*.ckpt"):
            match = AGENT_PATTERN.fullmatch(path.name)
            if match and int(match.group(1)) > after_round:
                path.unlink(missing_ok=True)

    def prepare(self) -> None:
        """Create the sub-folders and remove what an interrupted process left behind.

        A process killed mid-write leaves hidden ``.*.tmp`` files, never truncated outputs;
        agents' checkpoints of an unfinished round are redone on resume.
        """
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.agents.mkdir(exist_ok=True)
        for leftover in self.path.glob("**/.*.tmp"):
            leftover.unlink()

    def clear(self) -> None:
        """Remove what a start that completed no round left, to start the run again at round 1.

        That is its config, metrics, TensorBoard events, checkpoints and agents' files.
        """
        for pattern in UNFINISHED_FILES:
            for path in self.path.glob(pattern):
                path.unlink()
        for leftover in self.path.glob("**/.*.tmp"):
            leftover.unlink()

    def rewind(self, checkpoint: Path, history: Sequence[dict[str, Any]]) -> list[int]:
        """Make the folder describe the round of ``checkpoint``, discarding any later rounds.

        ``last.ckpt`` becomes ``checkpoint``, ``metrics.csv`` holds ``history``, and the later
        rounds' checkpoints and agents' files are removed (``best.ckpt`` is the
        ``BestCheckpoint`` callback's to mend). Every write is atomic, and ``last.ckpt`` is
        written first: a process killed at any moment leaves either the folder as it was, or
        a folder whose ``last.ckpt`` is ``checkpoint``, whose own resume finishes the job.

        Args:
            checkpoint: The round checkpoint being resumed, in this folder or elsewhere.
            history: The metrics of the rounds up to and including that round.

        Returns:
            The later rounds whose checkpoints were removed, in order.
        """
        done = int(history[-1]["round"])
        self._replace(self.last_checkpoint, checkpoint.read_bytes())
        atomic_write_text(csv_text(list(history)), self.metrics)
        later = sorted(r for r in self.round_checkpoints if r > done)
        for round_idx in reversed(later):
            self.round_checkpoint(round_idx).unlink(missing_ok=True)
        self.remove_agent_checkpoints(after_round=done)
        return later

    @staticmethod
    def _replace(path: Path, data: bytes) -> None:
        """Write ``data`` to ``path`` atomically, unless it already holds exactly that."""
        if not path.is_file() or path.read_bytes() != data:
            atomic_write_bytes(data, path)

    @classmethod
    def create(cls, root: Path) -> RunFolder:
        """Make the next free ``version_N`` under ``<root>/lightning_logs``."""
        runs = Path(root) / RUNS_FOLDER
        inside = run_folder_of(runs.resolve() / "version_0")
        if inside is not None:
            raise ConfigError(
                f"trainer.default_root_dir {str(root)!r}: inside the run in {inside}; a new "
                "run there would change that run's folder, so give another folder"
            )
        try:
            runs.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(
                f"trainer.default_root_dir {str(root)!r}: cannot create {runs} ({err.strerror})"
            ) from None
        version = max(cls._versions(runs), default=-1) + 1
        while True:
            path = runs / f"version_{version}"
            try:
                path.mkdir()  # claims the version even if another run starts at the same time
            except FileExistsError:
                version += 1
                continue
            run = cls(path)
            run.created = True
            return run

    @classmethod
    def newest(cls, root: Path) -> RunFolder | None:
        """The run with the highest version under ``<root>/lightning_logs``, if any."""
        runs = Path(root) / RUNS_FOLDER
        versions = list(cls._versions(runs)) if runs.is_dir() else []
        return cls(runs / f"version_{max(versions)}") if versions else None

    @classmethod
    def of_checkpoint(cls, checkpoint: Path) -> RunFolder | None:
        """The run folder a round checkpoint was saved in, or ``None`` if it is elsewhere."""
        checkpoint = Path(checkpoint)
        if checkpoint.parent.name != "checkpoints":
            return None
        return cls(checkpoint.parent.parent)

    @staticmethod
    def _versions(runs: Path) -> list[int]:
        found = (VERSION_PATTERN.fullmatch(p.name) for p in runs.iterdir() if p.is_dir())
        return [int(match.group(1)) for match in found if match]


def run_folder_of(path: Path) -> Path | None:
    """The run folder that ``path`` lies in (at any depth), or ``None``.

    A run folder is one that holds both a ``checkpoints/`` folder and a ``metrics.csv``, as
    every run that completed a round does (a project folder with a ``checkpoints/`` of its
    own is not one).

    Args:
        path: A resolved path; it need not exist.
    """
    for folder in path.parents:
        if (folder / "checkpoints").is_dir() and (folder / "metrics.csv").is_file():
            return folder
    return None


def resolve_checkpoint(ckpt_path: str | Path, root: str | Path) -> Path | None:
    """Turn ``--ckpt_path`` into the checkpoint to resume.

    As in Lightning, ``last`` with nothing to resume is no error: it gives ``None``, and the
    run starts at round 1.

    Args:
        ckpt_path: ``"last"``, the newest run under ``root``; a run folder
            (``lightning_logs/version_3``), for its ``last.ckpt``; or a round checkpoint.
        root: The ``default_root_dir`` whose ``lightning_logs`` ``last`` searches.

    Returns:
        The checkpoint file, or ``None`` when ``last`` finds no run, or a newest run that
        completed no round.

    Raises:
        ConfigError: If a run folder given by path completed no round.
    """
    if str(ckpt_path) == "last":
        run = RunFolder.newest(Path(root))
        return run.resumable_checkpoint if run is not None else None
    path = Path(ckpt_path)
    if not path.is_dir():
        return path
    checkpoint = RunFolder(path).resumable_checkpoint
    if checkpoint is None:
        raise ConfigError(
            f"--ckpt_path {path}: a folder with no completed round to resume "
            f"(no {RunFolder(path).last_checkpoint})"
        )
    return checkpoint


def trained_checkpoint(ckpt_path: str | Path, root: str | Path) -> Path:
    """The checkpoint a command that uses a trained policy (``evaluate``, ``export``) reads.

    Args:
        ckpt_path: ``last`` or ``best``, that checkpoint of the newest run under ``root``; a
            run folder, for its ``last.ckpt``; or a checkpoint file.
        root: The folder whose ``lightning_logs`` ``last`` and ``best`` search.

    Returns:
        An existing checkpoint file.

    Raises:
        ConfigError: Naming ``--ckpt_path`` when it leads to no checkpoint.
    """
    if str(ckpt_path) in ("last", "best"):
        run = RunFolder.newest(Path(root))
        if run is None:
            raise ConfigError(f"--ckpt_path {ckpt_path}: no run in {Path(root) / RUNS_FOLDER}")
        path = run.best_checkpoint if str(ckpt_path) == "best" else run.resumable_checkpoint
        if path is None or not path.is_file():
            raise ConfigError(f"--ckpt_path {ckpt_path}: {run.path} has no {ckpt_path}.ckpt")
        return path
    path = Path(ckpt_path)
    if path.is_dir():
        checkpoint = RunFolder(path).resumable_checkpoint
        if checkpoint is None:
            raise ConfigError(f"--ckpt_path {path}: a run folder with no completed round")
        return checkpoint
    if not path.is_file():
        raise ConfigError(f"--ckpt_path {path}: no such file or run folder")
    return path
