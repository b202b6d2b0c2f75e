"""A run's folder, ``<root>/lightning_logs/version_N``: what it holds and how to find it."""

from __future__ import annotations

import re
from pathlib import Path

from fedrl_lightning.errors import ConfigError

__all__ = ["RUNS_FOLDER", "RunFolder", "resolve_checkpoint"]

RUNS_FOLDER = "lightning_logs"
VERSION_PATTERN = re.compile(r"version_(\d+)")
AGENT_CHECKPOINT_PATTERN = re.compile(r"round-(\d+)-agent-(\d+)\.ckpt")


class RunFolder:
    """The folder of one federated run and the names of the files in it.

    Args:
        path: The run's folder, normally ``<root>/lightning_logs/version_N``.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

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
    def agents(self) -> Path:
        """The folder where agents' checkpoints land before aggregation."""
        return self.path / "agents"

    def round_checkpoint(self, round_idx: int) -> Path:
        """The checkpoint of round ``round_idx`` (1-based)."""
        return self.checkpoints / f"round-{round_idx:04d}.ckpt"

    def agent_checkpoint(self, round_idx: int, agent_id: int) -> Path:
        """Where agent ``agent_id`` saves its checkpoint in round ``round_idx``."""
        return self.agents / f"round-{round_idx:04d}-agent-{agent_id:04d}.ckpt"

    def remove_agent_checkpoints(self, after_round: int) -> None:
        """Remove the agents' checkpoints of the rounds after ``after_round``.

        An interrupted run calls this for the round it did not finish, which a resumed run
        redoes from the start.
        """
        for path in self.agents.glob("round-*-agent-*.ckpt"):
            match = AGENT_CHECKPOINT_PATTERN.fullmatch(path.name)
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

    @classmethod
    def create(cls, root: Path) -> RunFolder:
        """Make the next free ``version_N`` under ``<root>/lightning_logs``."""
        runs = Path(root) / RUNS_FOLDER
        runs.mkdir(parents=True, exist_ok=True)
        version = max(cls._versions(runs), default=-1) + 1
        while True:
            path = runs / f"version_{version}"
            try:
                path.mkdir()  # claims the version even if another run starts at the same time
            except FileExistsError:
                version += 1
                continue
            return cls(path)

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


def resolve_checkpoint(ckpt_path: str | Path, root: str | Path) -> Path:
    """Turn ``--ckpt_path`` into a file: ``last`` is the newest run's ``last.ckpt``.

    Args:
        ckpt_path: ``"last"`` or a path to a round checkpoint.
        root: The ``default_root_dir`` whose ``lightning_logs`` ``last`` searches.

    Raises:
        ConfigError: If ``last`` finds no run, or a run with no completed round.
    """
    if str(ckpt_path) != "last":
        return Path(ckpt_path)
    run = RunFolder.newest(Path(root))
    if run is None:
        raise ConfigError(f"--ckpt_path last: no run to resume in {Path(root) / RUNS_FOLDER}")
    if not run.last_checkpoint.is_file():
        raise ConfigError(
            f"--ckpt_path last: {run.path} has no completed round to resume "
            f"({run.last_checkpoint} is missing)"
        )
    return run.last_checkpoint
