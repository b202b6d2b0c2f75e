import os

import pytest
import torch
from conftest import TINY_CONFIG, run_cli

from fedrl_lightning import Reinforce
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.updates import InvalidUpdate, read_update
from fedrl_lightning.run.checkpoints import load_checkpoint


class CreatesAFile:
    """Unpickling this object would create ``path``: what a malicious checkpoint could do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def malicious_checkpoint(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    state_dict = Reinforce(hidden_dim=16).state_dict()
    torch.save(
        {"state_dict": state_dict, "fedrl": {"round": 1}, "agent_stats": CreatesAFile(marker)}, path
    )
    return path, marker


def test_load_checkpoint_refuses_code_in_a_pickle(tmp_path):
    path, marker = malicious_checkpoint(tmp_path)
    with pytest.raises(ConfigError, match=r"evil\.ckpt: refused to load"):
        load_checkpoint(path)
    assert not marker.exists()


def test_a_malicious_agent_checkpoint_is_an_invalid_update(tmp_path):
    path, marker = malicious_checkpoint(tmp_path)
    reference = Reinforce(hidden_dim=16).state_dict()
    with pytest.raises(InvalidUpdate, match=r"evil\.ckpt"):
        read_update(path, agent_id=0, reference=reference)
    assert not marker.exists()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("finished")
    assert run_cli("fit", "--config", str(TINY_CONFIG), cwd=cwd).returncode == 0
    return cwd / "lightning_logs/version_0/checkpoints/last.ckpt"


def truncated(tmp_path, finished_run):
    data = finished_run.read_bytes()
    path = tmp_path / "truncated.ckpt"
    path.write_bytes(data[: len(data) // 2])
    return path


def random_bytes(tmp_path, finished_run):
    path = tmp_path / "random.ckpt"
    path.write_bytes(os.urandom(4096))
    return path


def other_shape(tmp_path, finished_run):
    checkpoint = torch.load(finished_run, weights_only=True)
    checkpoint["state_dict"]["policy.hidden.weight"] = torch.zeros(32, 4)
    path = tmp_path / "other_shape.ckpt"
    torch.save(checkpoint, path)
    return path


def missing(tmp_path, finished_run):
    return tmp_path / "missing.ckpt"


def agent_checkpoint(tmp_path, finished_run):
    checkpoint = torch.load(finished_run, weights_only=True)
    del checkpoint["fedrl"]
    path = tmp_path / "agent.ckpt"
    torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (truncated, "not a readable checkpoint"),
        (random_bytes, "not a readable checkpoint"),
        (other_shape, "its weights do not fit the model"),
        (missing, "no such file"),
        (agent_checkpoint, "not a round checkpoint"),
    ],
)
def test_bad_ckpt_path_gets_one_line_that_names_the_file(tmp_path, finished_run, make, reason):
    path = make(tmp_path, finished_run)
    result = run_cli("fit", "--ckpt_path", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: checkpoint {path}")
    assert reason in result.stderr
    assert not (tmp_path / "lightning_logs").exists()


def test_malicious_ckpt_path_is_refused_and_runs_nothing(tmp_path):
    path, marker = malicious_checkpoint(tmp_path)
    result = run_cli("fit", "--ckpt_path", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: checkpoint {path}: refused to load")
    assert not marker.exists()
