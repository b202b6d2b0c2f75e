import subprocess
import sys
from pathlib import Path

import pytest

TINY_CONFIG = Path(__file__).parent / "configs" / "tiny.yaml"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``python -m fedrl_lightning`` as a user would, in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "fedrl_lightning", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One tiny fit through the real command line, shared by the tests that inspect it."""
    cwd = tmp_path_factory.mktemp("tiny")
    result = run_cli("fit", "--config", str(TINY_CONFIG), cwd=cwd)
    assert result.returncode == 0, result.stderr
    return cwd, result
