"""An :class:`~fedrl_lightning.deploy.exported_policy.ExportedPolicy` as TorchScript or ONNX bytes.

- TorchScript: ``torch.jit.script``; ``forward(observations, noise=None)`` keeps noise optional.
- ONNX: torch's ``torch.export``-based exporter (``dynamo=True``, torch's default since 2.9;
  the TorchScript-based one is deprecated and slated for removal), which needs ``onnx`` and
  ``onnxscript``. ONNX has no optional inputs that every runtime honours, so the graph has
  one input, ``observations``, or with ``noise_input`` a second, required one, ``noise``
  (zeros give the deterministic actions). The batch axis is dynamic, named ``batch``.

Both files carry :func:`describe`'s JSON under :data:`METADATA_KEY`: a TorchScript extra file,
an ONNX metadata property.
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from fedrl_lightning.deploy.exported_policy import (
    ExportedCategoricalPolicy,
    ExportedContinuousPolicy,
    ExportedPolicy,
)
from fedrl_lightning.errors import ConfigError

__all__ = ["METADATA_KEY", "MIN_OPSET", "describe", "onnx_bytes", "torchscript_bytes"]

METADATA_KEY = "fedrl_lightning"
"""The name of the JSON that describes the policy, in a TorchScript or an ONNX file."""

MIN_OPSET = 18
"""The oldest ONNX opset that torch's ``torch.export``-based exporter writes."""


def describe(policy: ExportedPolicy, **provenance: Any) -> dict[str, Any]:
    """What the file computes, for whoever deploys it, as plain JSON values.

    Args:
        policy: The exported policy.
        **provenance: More entries, such as the learner, checkpoint and environment.

    Returns:
        ``provenance`` with the observation size, whether observations are normalised, and the
        actions: ``discrete`` with ``num_actions`` and Gumbel noise, or ``continuous`` with
        ``action_dim``, the bounds and standard normal noise.
    """
    description: dict[str, Any] = {
        **provenance,
        "observation_dim": policy.observation_dim,
        "normalizes_observations": policy.normalizes,
    }
    if isinstance(policy, ExportedCategoricalPolicy):
        description.update(action="discrete", num_actions=policy.output_dim, noise="gumbel")
    else:
        assert isinstance(policy, ExportedContinuousPolicy)  # the other kind there is
        description.update(
            action="continuous",
            action_dim=policy.output_dim,
            action_low=policy.low.tolist(),
            action_high=policy.high.tolist(),
            noise="normal",
        )
    return description


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


def torchscript_bytes(policy: ExportedPolicy, metadata: dict[str, Any]) -> bytes:
    """The scripted policy as ``torch.jit.save`` writes it, ``metadata`` as an extra file.

    Args:
        policy: The exported policy.
        metadata: JSON values, saved as the extra file :data:`METADATA_KEY`.

    Returns:
        What ``torch.jit.load`` reads.
    """
    buffer = io.BytesIO()
    with _quiet_exporter():  # TorchScript is deprecated in torch 2.13, not removed
        scripted = torch.jit.script(policy)
        torch.jit.save(scripted, buffer, _extra_files={METADATA_KEY: json.dumps(metadata)})
    return buffer.getvalue()


def onnx_bytes(
    policy: ExportedPolicy,
    metadata: dict[str, Any],
    noise_input: bool = False,
    opset_version: int | None = None,
) -> tuple[bytes, int]:
    """The policy as a checked ONNX model, ``metadata`` as a metadata property.

    Args:
        policy: The exported policy.
        metadata: JSON values, saved as the metadata property :data:`METADATA_KEY`.
        noise_input: Give the graph a second, required input, ``noise``, to sample actions.
        opset_version: The ONNX opset, :data:`MIN_OPSET` or later; ``None``: the exporter's.

    Returns:
        The model's bytes, and its opset.

    Raises:
        ConfigError: If the exporter did not write the opset asked for.
    """
    import onnx

    batch = torch.export.Dim("batch")
    args: tuple[torch.Tensor, ...] = (torch.zeros(2, policy.observation_dim),)
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
    assert program is not None  # with dynamo=True, torch.onnx.export returns the program
    model = program.model_proto
    model.doc_string = (
        "fedrl_lightning policy: raw observations to environment actions, deterministic"
        + (" unless given noise (zeros: deterministic)" if noise_input else "")
    )
    onnx.helper.set_model_props(model, {METADATA_KEY: json.dumps(metadata)})
    onnx.checker.check_model(model)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset_version is not None and opset != opset_version:  # the exporter falls back silently
        raise ConfigError(f"opset_version {opset_version}: the exporter wrote opset {opset}")
    return model.SerializeToString(), opset
