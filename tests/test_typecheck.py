"""mypy finds no error in the package, under pyproject.toml's [tool.mypy] settings.

mypy's cache is kept in the repository's ``.mypy_cache`` (git ignores it), so only the first
run, or one after an upgrade of a dependency, checks everything from scratch.
"""

from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parent.parent


def test_the_package_type_checks():
    stdout, stderr, status = api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            "--no-pretty",
            "--no-error-summary",
            str(ROOT / "fedrl_lightning"),
        ]
    )
    assert status == 0, f"mypy found errors (exit status {status}):\n{stdout}{stderr}"
