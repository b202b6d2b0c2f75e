"""``python -m fedrl_lightning report``: PNG figures of one or more runs, with matplotlib."""

from __future__ import annotations

from fedrl_lightning.commands.parser import CommandParser
from fedrl_lightning.errors import ConfigError

__all__ = ["DESCRIPTION", "build_parser", "run"]

DESCRIPTION = "Plot runs: learning curves, per-agent heatmaps, failures and traffic, as PNG."


def build_parser(prog: str) -> CommandParser:
    """The ``report`` command's options."""
    parser = CommandParser(prog, DESCRIPTION)
    parser.add_argument("runs", type=str, nargs="+", help="Run folders to plot.")
    parser.add_argument(
        "--out", type=str | None, default=None, help="Folder for the PNGs (default: the run's)."
    )
    return parser


def run(args: list[str], prog: str) -> None:
    """Draw the figures."""
    build_parser(prog).parse_args(args)
    raise ConfigError("report: not available yet")
