"""The subcommands beside ``fit``: ``evaluate`` (and its alias ``test``), ``report``, ``export``.

Each subcommand is one module with a ``DESCRIPTION``, a ``build_parser(prog)`` that returns
its :class:`~fedrl_lightning.cli.commands.parser.CommandParser` (for ``--help``), and a
``run(args, prog)`` that parses its arguments with it, does the work and raises
:class:`~fedrl_lightning.errors.ConfigError` for bad input. Modules are
imported only when their command runs, so ``fit`` never imports matplotlib or onnx.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["ALIASES", "COMMANDS", "command_module", "run_command"]

COMMANDS: dict[str, str] = {
    "evaluate": "fedrl_lightning.cli.commands.evaluate",
    "test": "fedrl_lightning.cli.commands.evaluate",
    "report": "fedrl_lightning.cli.commands.report",
    "export": "fedrl_lightning.cli.commands.export",
}
"""Each subcommand's module, by name."""

ALIASES: dict[str, str] = {"test": "evaluate"}
"""Subcommands that are another's second name: ``test`` is ``evaluate``, as in Lightning."""


def command_module(name: str) -> ModuleType:
    """The module of subcommand ``name``."""
    return importlib.import_module(COMMANDS[name])


def run_command(name: str, args: list[str], prog: str) -> None:
    """Parse ``args`` with subcommand ``name``'s parser and run it.

    Args:
        name: A key of :data:`COMMANDS`.
        args: The arguments after the subcommand's name.
        prog: The program's name in usage lines, such as ``python -m fedrl_lightning``.

    Raises:
        ConfigError: For bad input, as one line naming the option or file.
    """
    command_module(name).run(args, f"{prog} {name}")
