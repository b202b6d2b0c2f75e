"""``python -m fedrl_lightning export``: a trained policy as a TorchScript or ONNX file.

The file holds an :class:`~fedrl_lightning.deploy.exported_policy.ExportedPolicy`: raw observations
``float32 [batch, observation_dim]`` in, environment actions out, observation normalisation
included. It is deterministic unless given noise:

- TorchScript: ``forward(observations, noise=None)``; ``noise`` is optional.
- ONNX: one input, ``observations``, by default; with ``--noise_input true`` a second,
  required input ``noise`` (zeros give the deterministic actions). ONNX has no optional
  inputs that every runtime honours, so the choice is made once, when exporting.

:mod:`fedrl_lightning.deploy.export_formats` writes the bytes; ONNX needs ``onnx`` and
``onnxscript``, the ``export`` extra.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Literal

import yaml

from fedrl_lightning.cli.commands.parser import CommandParser
from fedrl_lightning.deploy.export_formats import MIN_OPSET, describe, onnx_bytes, torchscript_bytes
from fedrl_lightning.deploy.exported_policy import (
    ExportedCategoricalPolicy,
    ExportedPolicy,
    exported_policy,
)
from fedrl_lightning.deploy.loading import load_module
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.extras import missing_extra
from fedrl_lightning.federation.trainer import FEDRL_KEY
from fedrl_lightning.run.checkpoints import atomic_write_bytes, load_checkpoint
from fedrl_lightning.run.outputs import check_output
from fedrl_lightning.run.run_folder import trained_checkpoint

__all__ = ["DESCRIPTION", "build_parser", "run"]

DESCRIPTION = "Export a trained policy to TorchScript or ONNX, observation normalisation included."

ONNX_PACKAGES = ("onnx", "onnxscript")


def build_parser(prog: str) -> CommandParser:
    """The ``export`` command's options."""
    parser = CommandParser(prog, DESCRIPTION)
    parser.add_checkpoint_arguments()
    parser.add_argument(
        "--format", type=Literal["torchscript", "onnx"], default="torchscript", help="File format."
    )
    # Checked in run(), not by the parser, whose message would name "out" without its dashes.
    parser.add_argument(
        "--out", type=str | None, default=None, help="The file to write (required)."
    )
    parser.add_argument(
        "--noise_input",
        type=bool,
        default=False,
        help="ONNX only: add a required input 'noise' [batch, noise_dim] to sample actions "
        "(standard Gumbel for discrete, standard normal for continuous; zeros: deterministic). "
        "TorchScript's forward always takes noise as an optional second argument.",
    )
    parser.add_argument(
        "--opset_version",
        type=int | None,
        default=None,
        help=f"ONNX only: the opset, at least {MIN_OPSET} (default: the exporter's own).",
    )
    return parser


def run(args: list[str], prog: str) -> None:
    """Export the checkpoint's policy and print one line saying what was written."""
    config = build_parser(prog).parse_args(args)
    if config.out is None:
        raise ConfigError("--out is required: the file to write, such as --out policy.onnx")
    onnx = config.format == "onnx"
    if not onnx and (config.noise_input or config.opset_version is not None):
        given = "--noise_input" if config.noise_input else "--opset_version"
        raise ConfigError(
            f"{given} applies to --format onnx; a TorchScript file's forward always takes noise "
            "as an optional second argument"
        )
    if onnx:
        _require_onnx()
        _check_opset(config.opset_version)
    out = _check_out(Path(config.out))
    path = trained_checkpoint(config.ckpt_path, config.default_root_dir)
    check_output(out, "--out", inputs=[path])
    module = load_module(path)
    try:
        policy = exported_policy(module.policy)
    except TypeError as err:
        raise ConfigError(f"checkpoint {path}: {err}") from None
    metadata = describe(policy, **_provenance(path, type(module).__name__))
    if onnx:
        data, opset = onnx_bytes(policy, metadata, config.noise_input, config.opset_version)
        written = f"ONNX opset {opset}"
    else:
        data, written = torchscript_bytes(policy, metadata), "TorchScript"
    try:
        atomic_write_bytes(data, out)
    except OSError as err:
        raise ConfigError(f"--out {out}: cannot write it ({err.strerror or err})") from None
    noise = "required" if config.noise_input else None if onnx else "optional"
    print(
        f"Wrote {out} ({written}, {_size(len(data))}): {_signature(policy, noise)}; "
        f"{metadata['learner']} policy from {path}"
    )


def _signature(policy: ExportedPolicy, noise: str | None) -> str:
    """The file's inputs and output, with dtypes and shapes, for the summary line.

    Args:
        policy: The exported policy.
        noise: ``"required"`` or ``"optional"`` for a noise input; ``None`` for none.
    """
    inputs = [f"observations float32 [batch, {policy.observation_dim}]"]
    if noise is not None:
        inputs.append(f"noise float32 [batch, {policy.output_dim}] ({noise})")
    if isinstance(policy, ExportedCategoricalPolicy):
        actions = "actions int64 [batch]"
    else:
        actions = f"actions float32 [batch, {policy.output_dim}]"
    return f"{', '.join(inputs)} -> {actions}"


def _require_onnx() -> None:
    """Refuse ``--format onnx`` when a package it needs is missing, naming the extra."""
    for name in ONNX_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError as err:
            reason = " ".join(str(err).split())
            raise missing_extra("--format onnx", name, "export", reason=reason) from None


def _check_opset(opset_version: int | None) -> None:
    """Refuse an opset that the exporter cannot write with the installed ``onnx``."""
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if opset_version is not None and not MIN_OPSET <= opset_version <= newest:
        raise ConfigError(
            f"--opset_version must be in [{MIN_OPSET}, {newest}] (onnx {onnx.__version__}), "
            f"got {opset_version}"
        )


def _check_out(out: Path) -> Path:
    """Refuse an ``--out`` that cannot be written before any work is done."""
    if out.is_dir():
        raise ConfigError(f"--out {out}: a folder, not a file")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: no folder {out.parent} to write it in")
    return out


def _provenance(path: Path, learner: str) -> dict[str, Any]:
    """Where the policy comes from: its learner, checkpoint, round and environment."""
    checkpoint = load_checkpoint(path)
    state = checkpoint.get(FEDRL_KEY)
    state = state if isinstance(state, dict) else {}  # an agent's checkpoint has none
    return {
        "learner": learner,
        "checkpoint": str(path),
        "round": state.get("round"),
        "env_id": _env_id(state.get("config")),
    }


def _env_id(config: object) -> str | None:
    """``data.env_id`` of a run's saved config, if it has one."""
    if not isinstance(config, str):
        return None
    try:
        parsed = yaml.safe_load(config)
    except yaml.YAMLError:
        return None
    data = parsed.get("data") if isinstance(parsed, dict) else None
    env_id = data.get("env_id") if isinstance(data, dict) else None
    return env_id if isinstance(env_id, str) else None


def _size(num_bytes: int) -> str:
    """A file size as people read it: ``812 B``, ``14.2 kB``, ``3.1 MB``."""
    if num_bytes < 1000:
        return f"{num_bytes} B"
    if num_bytes < 1_000_000:
        return f"{num_bytes / 1000:.1f} kB"
    return f"{num_bytes / 1_000_000:.1f} MB"
