"""``python -m fedrl_lightning evaluate`` (or ``test``): a trained policy on fresh episodes."""

from __future__ import annotations

from fedrl_lightning.commands.parser import CommandParser
from fedrl_lightning.errors import ConfigError

__all__ = ["DESCRIPTION", "build_parser", "run"]

DESCRIPTION = "Evaluate a trained policy on the run's agents, or on others, over fresh episodes."


def build_parser(prog: str) -> CommandParser:
    """The ``evaluate`` command's options."""
    return CommandParser(prog, DESCRIPTION)


def run(args: list[str], prog: str) -> None:
    """Evaluate."""
    raise ConfigError("evaluate: not available yet")
