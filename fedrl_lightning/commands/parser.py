"""The argument parser of the subcommands: jsonargparse's, with errors as one line."""

from __future__ import annotations

from typing import Any, NoReturn

from jsonargparse import ArgumentParser

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.parse_errors import one_line

__all__ = ["CommandParser"]


class CommandParser(ArgumentParser):
    """A jsonargparse parser whose errors raise :class:`ConfigError` instead of printing usage.

    Args:
        prog: The command in usage lines, such as ``python -m fedrl_lightning export``.
        description: What the command does, for ``--help``.
        **kwargs: More arguments for jsonargparse's ``ArgumentParser``.
    """

    def __init__(self, prog: str, description: str, **kwargs: Any) -> None:
        super().__init__(prog=prog, description=description, allow_abbrev=False, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        """Raise the parse error as one line."""
        raise ConfigError(one_line(message))
