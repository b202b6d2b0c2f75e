"""``python -m fedrl_lightning export``: a trained policy as a TorchScript or ONNX file.

The file holds an :class:`~fedrl_lightning.exported_policy.ExportedPolicy`: raw observations
``float32 [batch, observation_dim]`` in, environment actions out, observation normalisation
included. It is deterministic unless given noise:

- TorchScript: ``forward(observations, noise=None)``; ``noise`` is optional.
- ONNX: one input, ``observations``, by default; with ``--noise_input true`` a second,
  required input ``noise`` (zeros give the deterministic actions). ONNX has no optional
  inputs that every runtime honours, so the choice is made once, when exporting.

ONNX files are made with torch's ``torch.export``-based exporter (``dynamo=True``, the
default since torch 2.9), which needs ``onnx`` and ``onnxscript``: the ``export`` extra.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import torch
import yaml

from fedrl_lightning.checkpoints import atomic_write_bytes, load_checkpoint
from fedrl_lightning.commands.parser import CommandParser
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.exported_policy import (
    ExportedCategoricalPolicy,
    ExportedPolicy,
    exported_policy,
)
from fedrl_lightning.federation.run_folder import trained_checkpoint
from fedrl_lightning.federation.trainer import FEDRL_KEY
from fedrl_lightning.loading import load_module

__all__ = ["DESCRIPTION", "METADATA_KEY", "build_parser", "run"]

DESCRIPTION = "Export a trained policy to TorchScript or ONNX, observation normalisation included."

METADATA_KEY = "fedrl_lightning"
"""The JSON that describes the policy: a TorchScript extra file, an ONNX metadata property."""

ONNX_PACKAGES = ("onnx", "onnxscript")
MIN_OPSET = 18  # the oldest opset torch's torch.export-based exporter writes


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
    module = load_module(path)
    policy = exported_policy(module.policy)
    metadata = _metadata(policy, path, type(module).__name__)
    if onnx:
        data, written = _onnx_bytes(policy, config.noise_input, config.opset_version, metadata)
    else:
        data, written = _torchscript_bytes(policy, metadata), "TorchScript"
    try:
        atomic_write_bytes(data, out)
    except OSError as err:
        raise ConfigError(f"--out {out}: cannot write it ({err.strerror or err})") from None
    print(
        f"Wrote {out} ({written}, {_size(len(data))}): {_signature(policy, config.noise_input)}; "
        f"{metadata['learner']} policy from {path}"
    )


def _signature(policy: ExportedPolicy, noise_input: bool) -> str:
    """The file's inputs and output, with dtypes and shapes, for the summary line."""
    inputs = [f"observations float32 [batch, {policy.observation_dim}]"]
    if noise_input:
        inputs.append(f"noise float32 [batch, {policy.output_dim}]")
    if isinstance(policy, ExportedCategoricalPolicy):
        actions = "actions int64 [batch]"
    else:
        actions = f"actions float32 [batch, {policy.output_dim}]"
    return f"{', '.join(inputs)} -> {actions}"


def _require_onnx() -> None:
    """Refuse ``--format onnx`` when a package it needs is missing, naming the extra."""
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"--format onnx needs {' and '.join(missing)}: pip install 'fedrl_lightning[export]'"
        )


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


def _metadata(policy: ExportedPolicy, path: Path, learner: str) -> dict[str, Any]:
    """What the file computes, for whoever deploys it: sizes, bounds, noise, provenance."""
    checkpoint = load_checkpoint(path)
    state = checkpoint.get(FEDRL_KEY)
    state = state if isinstance(state, dict) else {}  # an agent's checkpoint has none
    metadata: dict[str, Any] = {
        "learner": learner,
        "checkpoint": str(path),
        "round": state.get("round"),
        "env_id": _env_id(state.get("config")),
        "observation_dim": policy.observation_dim,
        "normalizes_observations": policy.normalizes,
    }
    if isinstance(policy, ExportedCategoricalPolicy):
        metadata.update(action="discrete", num_actions=policy.output_dim, noise="gumbel")
    else:
        metadata.update(
            action="continuous",
            action_dim=policy.output_dim,
            action_low=policy.low.tolist(),
            action_high=policy.high.tolist(),
            noise="normal",
        )
    return metadata


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


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Hide the exporters' deprecation warnings and log lines, which say nothing to a user."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _torchscript_bytes(policy: ExportedPolicy, metadata: dict[str, Any]) -> bytes:
    """The scripted policy as ``torch.jit.save`` writes it, with the metadata as an extra file."""
    with _quiet_exporter():  # torch.jit.script is deprecated from torch 2.10, not yet removed
        scripted = torch.jit.script(policy)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer, _extra_files={METADATA_KEY: json.dumps(metadata)})
    return buffer.getvalue()


def _onnx_bytes(
    policy: ExportedPolicy, noise_input: bool, opset_version: int | None, metadata: dict[str, Any]
) -> tuple[bytes, str]:
    """The policy as an ONNX model with a dynamic batch axis, the metadata as a property.

    Returns:
        The model's bytes, and ``ONNX opset N`` for the summary line.
    """
    import onnx

    batch = torch.export.Dim("batch")
    args = (torch.zeros(2, policy.observation_dim),)
    input_names = ["observations"]
    dynamic_shapes: dict[str, Any] = {"observations": {0: batch}}
    if noise_input:
        args += (torch.zeros(2, policy.output_dim),)
        input_names.append("noise")
        dynamic_shapes["noise"] = {0: batch}
    with _quiet_exporter():
        program = torch.onnx.export(
            policy,
            args,
            dynamo=True,
            input_names=input_names,
            output_names=["actions"],
            dynamic_shapes=dynamic_shapes,
            opset_version=opset_version,
            verbose=False,
        )
    model = program.model_proto
    model.doc_string = (
        "fedrl_lightning policy: raw observations to environment actions, deterministic"
        + (" unless given noise (zeros: deterministic)" if noise_input else "")
    )
    onnx.helper.set_model_props(model, {METADATA_KEY: json.dumps(metadata)})
    onnx.checker.check_model(model)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset_version is not None and opset != opset_version:  # the exporter falls back silently
        raise ConfigError(f"--opset_version {opset_version}: the exporter wrote opset {opset}")
    return model.SerializeToString(), f"ONNX opset {opset}"


def _size(num_bytes: int) -> str:
    """A file size as people read it: ``812 B``, ``14.2 kB``, ``3.1 MB``."""
    if num_bytes < 1000:
        return f"{num_bytes} B"
    if num_bytes < 1_000_000:
        return f"{num_bytes / 1000:.1f} kB"
    return f"{num_bytes / 1_000_000:.1f} MB"
