"""The argument parser of the subcommands: jsonargparse's, with errors as one line."""

from __future__ import annotations

import re
from typing import Any, NoReturn

from jsonargparse import ArgumentParser

from fedrl_lightning.cli.parse_errors import one_line
from fedrl_lightning.errors import ConfigError

__all__ = ["CommandParser", "agent_ids"]

REQUIRED = re.compile(r"the following arguments are required: (.+)")


class CommandParser(ArgumentParser):
    """A jsonargparse parser whose errors raise :class:`ConfigError` instead of printing usage.

    Args:
        prog: The command in usage lines, such as ``python -m fedrl_lightning export``.
        description: What the command does, for ``--help``.
        **kwargs: More arguments for jsonargparse's ``ArgumentParser``.
    """

    def __init__(
        self, prog: str | None = None, description: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(prog=prog, description=description, allow_abbrev=False, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        """Raise the parse error as one line; missing arguments are named as options."""
        missing = REQUIRED.fullmatch(message.strip())
        if missing:
            names = [name.strip() for name in missing.group(1).split(",")]
            options = [name if name in self._positionals_names() else f"--{name}" for name in names]
            raise ConfigError(f"{', '.join(options)}: required (see --help)")
        raise ConfigError(one_line(message))

    def add_checkpoint_arguments(self) -> None:
        """``--ckpt_path`` and ``--default_root_dir``: which trained policy a command reads.

        :func:`~fedrl_lightning.run.run_folder.trained_checkpoint` resolves them.
        """
        self.add_argument(
            "--ckpt_path",
            type=str,
            default="last",
            help="last or best (of the newest run), a run folder (its last.ckpt), or a "
            "checkpoint file.",
        )
        self.add_argument(
            "--default_root_dir", type=str, default=".", help="Where last and best look for runs."
        )

    def _positionals_names(self) -> set[str]:
        """The names of the positional arguments, which the command line gives without dashes."""
        return {action.dest for action in self._actions if not action.option_strings}


def agent_ids(value: str | None, option: str, num_agents: int) -> list[int] | None:
    """Agent ids given as ``0,3,9`` (or ``[0, 3, 9]``), checked against the population.

    Args:
        value: The option's text; ``None`` when not given.
        option: The option's name, for the message.
        num_agents: Agents in the population; ids must be below it.

    Returns:
        The ids in the order given, or ``None`` when ``value`` is ``None``.

    Raises:
        ConfigError: For anything but distinct integers in ``[0, num_agents)``.
    """
    if value is None:
        return None
    text = value.strip().removeprefix("[").removesuffix("]")
    try:
        ids = [int(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(f"{option}: expected agent ids such as 0,3,9, got {value!r}") from None
    outside = [i for i in ids if not 0 <= i < num_agents]
    if outside:
        raise ConfigError(
            f"{option}: agent {outside[0]} is not in the population of {num_agents} agents "
            f"(ids 0-{num_agents - 1})"
        )
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{option}: {value!r} names an agent twice")
    return ids
