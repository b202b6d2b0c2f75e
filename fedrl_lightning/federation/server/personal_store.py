"""Each agent's own parameters, kept in the run folder: one small file per agent."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.run.checkpoints import atomic_save, load_checkpoint, load_plain
from fedrl_lightning.run.run_folder import RunFolder

__all__ = ["PersonalStore", "personal_file", "recover_run_store"]

FILE = re.compile(r"agent-(\d+)(\.round-\d+\.pending)?\.ckpt")


def personal_file(round_idx: int, state: Any, key: str = "state_dict") -> dict[str, Any]:
    """What an agent's file holds: the round that wrote it, and its values under ``key``.

    ``state_dict`` for parameters (named tensors, checked as such when loaded), ``memory``
    for an off-policy agent's memory (tensors and plain values).
    """
    return {"round": round_idx, key: state}


class PersonalStore:
    """The agent-scoped parameters of every agent, in ``<run>/personal/agent-NNNN.ckpt``.

    Nothing is held in memory: an agent's file is read when the agent is sampled or evaluated,
    so 1,000 agents cost what 10 do. Files are written atomically and loaded with
    ``weights_only=True``.

    A round's local fits write their agents' new values beside the old ones, as
    ``agent-NNNN.round-RRRR.pending.ckpt``; :meth:`commit` makes them the agents' values once
    the round's checkpoint, which records the round each agent's values come from, is saved.
    Each round's pending file has a name of its own: on Ray, the next round's fit of an agent
    may write its values while this round's are still to be evaluated and committed. A run killed
    in between has them committed by :meth:`recover` when it resumes, and a run killed before
    has them discarded, so a resumed run starts every agent from exactly the values of the
    round it resumes.

    Args:
        folder: The store's folder, ``<run>/personal`` (or ``<run>/memory``).
        key: Where each file holds the agent's values: ``state_dict`` for parameters,
            ``memory`` for an off-policy agent's memory.
    """

    def __init__(self, folder: Path, key: str = "state_dict") -> None:
        self.folder = Path(folder)
        self.key = key

    def path(self, agent: int) -> Path:
        """Agent ``agent``'s committed file."""
        return self.folder / f"agent-{agent:04d}.ckpt"

    def pending_path(self, agent: int, round_idx: int) -> Path:
        """Where agent ``agent``'s local fit of round ``round_idx`` writes its new values."""
        return self.folder / f"agent-{agent:04d}.round-{round_idx:04d}.pending.ckpt"

    def load(self, agent: int, round_idx: int | None = None) -> dict[str, torch.Tensor] | None:
        """Agent ``agent``'s values, or ``None`` for an agent that has none yet.

        Args:
            agent: The agent.
            round_idx: The round whose values to read, when they may still be pending (the
                next round's fits start before the round that wrote them is saved); ``None``:
                the committed ones.
        """
        if round_idx is not None and self.pending_path(agent, round_idx).is_file():
            written, state = self._read(self.pending_path(agent, round_idx))
            if written == round_idx:
                return state
        path = self.path(agent)
        if not path.is_file():
            return None
        return self._read(path)[1]

    def commit(self, agents: dict[int, int]) -> None:
        """Make each agent's pending values of round ``agents[agent]`` its values."""
        for agent, round_idx in agents.items():
            pending = self.pending_path(agent, round_idx)
            if pending.is_file() and self._read(pending)[0] == round_idx:
                os.replace(pending, self.path(agent))

    def recover(self, versions: dict[int, int], completed_round: int) -> None:
        """Bring the folder to the checkpoint that says agent ``a`` holds round ``versions[a]``.

        Pending files of that round are committed (a kill came between the checkpoint and
        :meth:`commit`); other pending files, of a round the run did not complete, are
        removed.

        Raises:
            ConfigError: If an agent's committed values are newer than the checkpoint's,
                which happens when resuming an earlier round: the store keeps only the newest.
        """
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.iterdir()):
            match = FILE.fullmatch(path.name)
            if match is None:
                continue
            agent, pending = int(match.group(1)), bool(match.group(2))
            round_idx = self._read(path)[0]
            if pending:
                if round_idx == versions.get(agent) and round_idx <= completed_round:
                    os.replace(path, self.path(agent))
                else:
                    path.unlink()
            elif round_idx > versions.get(agent, 0):
                raise ConfigError(
                    f"--ckpt_path: agent {agent}'s personal parameters in {path} are from round "
                    f"{round_idx}, after the checkpoint's round {completed_round}; a run whose "
                    "agents keep parameters of their own resumes only from its last round"
                )

    def discard_pending(self) -> None:
        """Remove every pending file: an interrupted round's, redone on resume."""
        if self.folder.is_dir():
            for path in self.folder.glob("agent-*.pending.ckpt"):
                path.unlink(missing_ok=True)

    @staticmethod
    def save(path: Path, round_idx: int, state: Any, key: str = "state_dict") -> None:
        """Write an agent's values of round ``round_idx`` to ``path`` under ``key``, atomically."""
        atomic_save(personal_file(round_idx, state, key), path)

    def _read(self, path: Path) -> tuple[int, Any]:
        if self.key == "state_dict":  # parameters: checked as named tensors
            checkpoint: Any = load_checkpoint(path)
        else:
            checkpoint = load_plain(path)
            if not isinstance(checkpoint, dict) or self.key not in checkpoint:
                raise ConfigError(f"{path}: damaged (no {self.key!r} entry)")
        return int(checkpoint.get("round", 0)), checkpoint[self.key]


def recover_run_store(
    checkpoint: Path,
    versions: dict[int, int],
    completed_round: int,
    kept: str,
    folder: str = "personal",
    key: str = "state_dict",
) -> None:
    """Bring the store in ``checkpoint``'s run folder (its ``folder``) to that checkpoint.

    Args:
        checkpoint: The round checkpoint being resumed.
        versions: The round each agent's values are from, as the checkpoint records.
        completed_round: The checkpoint's round.
        kept: What the agents keep in the store, for the error message.
        folder: The store's folder in the run folder: ``personal`` or ``memory``.
        key: Where its files hold the agents' values (see :class:`PersonalStore`).

    Raises:
        ConfigError: If the checkpoint lies outside its run folder, or the agents' values
            are newer than it.
    """
    run = RunFolder.of_checkpoint(checkpoint)
    if run is None:
        raise ConfigError(
            f"--ckpt_path {checkpoint}: its agents keep {kept} in their run folder's "
            f"{folder}/; resume from the checkpoint inside that folder"
        )
    PersonalStore(run.path / folder, key).recover(versions, completed_round)
