"""``python -m fedrl_lightning export``: a trained policy as a TorchScript or ONNX file."""

from __future__ import annotations

from typing import Literal

from fedrl_lightning.commands.parser import CommandParser
from fedrl_lightning.errors import ConfigError

__all__ = ["DESCRIPTION", "build_parser", "run"]

DESCRIPTION = "Export a trained policy to TorchScript or ONNX, observation normalisation included."


def build_parser(prog: str) -> CommandParser:
    """The ``export`` command's options."""
    parser = CommandParser(prog, DESCRIPTION)
    parser.add_argument(
        "--ckpt_path",
        type=str,
        default="last",
        help="last or best (of the newest run), a run folder, or a checkpoint file.",
    )
    parser.add_argument(
        "--format", type=Literal["torchscript", "onnx"], default="torchscript", help="File format."
    )
    parser.add_argument("--out", type=str, required=True, help="The file to write.")
    parser.add_argument(
        "--default_root_dir", type=str, default=".", help="Where last and best look for runs."
    )
    return parser


def run(args: list[str], prog: str) -> None:
    """Export the checkpoint's policy."""
    build_parser(prog).parse_args(args)
    raise ConfigError("export: not available yet")
