"""A one-line description of the machine a benchmark ran on."""

from __future__ import annotations

import os
import platform

import torch


def cpu_model() -> str:
    """The CPU's model name, as ``/proc/cpuinfo`` gives it (the platform's processor elsewhere).

    Float results are bit-identical on one kind of CPU, not across kinds: fingerprints and
    results files name it.
    """
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_kind() -> str:
    """The CPU's model and its widest vector instructions, such as ``AMD EPYC (avx512f, fma)``.

    Two machines of one kind compute the same floats; the same model name with other vector
    units need not, since math libraries pick their kernels by them.
    """
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    units = [unit for unit in ("avx512f", "avx2", "fma", "neon", "sve") if unit in flags]
    return f"{cpu_model()} ({', '.join(units) or 'no vector flags'})"


def describe_machine() -> str:
    """CPU model, core count, Python and torch versions, on one line."""
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}, {platform.system()} {platform.machine()}"
    )
