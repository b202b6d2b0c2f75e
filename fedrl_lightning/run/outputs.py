"""Where a command may write, and writing all or nothing.

Two promises hold for every file a command writes (``evaluate``'s CSV and videos,
``export``'s policy, ``report``'s figures):

- :func:`check_output` refuses, before any work is done, an output path that resolves
  (relative paths and symbolic links followed) to one of the command's own inputs, or to a
  file of a run folder: its checkpoints, config, metrics, TensorBoard events, or any other
  file already there that the command did not write itself.
- :class:`Outputs` records what each file held before the command wrote it; if the command
  fails after its first write, every file is put back as it was, and the folders it made
  are removed.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.run.checkpoints import atomic_write_bytes, atomic_write_text
from fedrl_lightning.run.run_folder import UNFINISHED_FILES, run_folder_of

__all__ = ["Outputs", "check_output", "check_output_folder", "run_folder_of", "unwritable"]


def _is_run_file(path: Path, run: Path) -> bool:
    """Whether ``path`` is named as the trainer names a file of run folder ``run``."""
    relative = path.relative_to(run)
    return any(relative.match(pattern) for pattern in UNFINISHED_FILES)


def check_output(
    path: str | Path, option: str, inputs: Iterable[Path] = (), own: Iterable[Path] = ()
) -> Path:
    """Refuse an output path that would overwrite an input of the command or a run's file.

    The paths are compared resolved, symbolic links and ``..`` included. A path inside a
    run folder is refused when a file is there already, or when it is named as the
    trainer's files are (``checkpoints/*.ckpt``, ``config.yaml``, ``metrics.csv``, ...);
    paths in ``own``, the names the command itself writes by default (``evaluate``'s
    ``evaluation.csv`` beside the checkpoint, say), may be written again.

    Args:
        path: The output path, as given.
        option: The option that gave it, for the message (``--out``).
        inputs: The files the command reads, such as the checkpoint.
        own: The paths the command may rewrite.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: Naming ``option`` and the file it would overwrite.
    """
    path = Path(path)
    resolved = path.resolve()
    if resolved.is_dir():
        raise ConfigError(f"{option} {path}: a folder, not a file")
    for given in inputs:
        if Path(given).resolve() == resolved:
            raise ConfigError(
                f"{option} {path}: that is {given}, which this command reads; "
                "write the output elsewhere"
            )
    if resolved in {Path(p).resolve() for p in own}:
        return path
    run = run_folder_of(resolved)
    if run is not None and (resolved.exists() or _is_run_file(resolved, run)):
        name = resolved.relative_to(run)
        what = "would overwrite" if resolved.exists() else "is the name of"
        raise ConfigError(
            f"{option} {path}: {what} {name} of the run in {run}; a command never writes over a "
            "run's files, so write the output elsewhere"
        )
    return path


def check_output_folder(path: str | Path, option: str) -> Path:
    """Refuse an output folder that is a file or that could not be created.

    Args:
        path: The folder, as given; created later, if missing.
        option: The option that gave it, for the message.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: Naming ``option``.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path}: a file, not a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{option} {path}: {existing} is a file, not a folder")
    problem = unwritable(existing)
    if problem is not None:
        raise ConfigError(f"{option} {path}: cannot write in {existing} ({problem})")
    return path


def unwritable(folder: Path) -> str | None:
    """Why nothing can be created in existing ``folder``, or ``None`` if something can.

    It creates an empty hidden folder there and removes it at once: permission bits say
    nothing for root, nor for read-only or virtual file systems such as ``/proc``.
    """
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".probe-", dir=folder))
    except OSError as err:
        return err.strerror or type(err).__name__
    return None


class Outputs:
    """The files a command writes, all or nothing: a failure puts back what was there.

    Use it as a context manager around every write of a command. Each file written through
    it, or :meth:`remember`-ed before something else writes it, is restored (its bytes and
    mode) or removed if an exception leaves the block, and the folders :meth:`make_folder`
    created are removed if they are empty then.
    """

    def __init__(self) -> None:
        self._before: dict[Path, tuple[bytes, int] | None] = {}
        self._made: list[Path] = []

    def __enter__(self) -> Outputs:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is not None:
            self.roll_back()

    def remember(self, path: Path) -> None:
        """Note what ``path`` holds now (nothing, if it is missing), to put it back on failure."""
        path = Path(path)
        if path in self._before:
            return
        if path.is_file():
            self._before[path] = (path.read_bytes(), stat.S_IMODE(path.stat().st_mode))
        else:
            self._before[path] = None

    def make_folder(self, folder: Path) -> None:
        """Create ``folder`` and its missing parents, to remove on failure."""
        missing = [p for p in [Path(folder), *Path(folder).parents] if not p.exists()]
        Path(folder).mkdir(parents=True, exist_ok=True)
        self._made += reversed(missing)

    def write_bytes(self, data: bytes, path: Path) -> None:
        """Write ``data`` to ``path`` atomically."""
        self.remember(path)
        atomic_write_bytes(data, path)

    def write_text(self, text: str, path: Path) -> None:
        """Write ``text`` to ``path`` atomically."""
        self.remember(path)
        atomic_write_text(text, path)

    def roll_back(self) -> None:
        """Put every remembered file back as it was, and remove the folders made."""
        for path, before in reversed(list(self._before.items())):
            try:
                if before is None:
                    path.unlink(missing_ok=True)
                elif not path.is_file() or path.read_bytes() != before[0]:
                    atomic_write_bytes(before[0], path)
                    os.chmod(path, before[1])
            except OSError:
                continue  # the original failure is the one to report
        for folder in reversed(self._made):
            try:
                folder.rmdir()
            except OSError:
                continue
        self._before, self._made = {}, []
