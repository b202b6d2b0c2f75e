"""load_module: the right learner from any checkpoint, in eval mode, never importing a name."""

import sys

import pytest
import torch
from conftest import TINY_CONFIG, run_cli

from fedrl_lightning import A2C, PPO, Reinforce, load_module
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.run.checkpoints import LEARNER_KEY, atomic_save, load_checkpoint


@pytest.mark.parametrize("learner", [Reinforce, A2C, PPO])
def test_load_module_returns_the_learner_of_a_round_checkpoint(tmp_path, learner):
    result = run_cli(
        "fit",
        "--config",
        str(TINY_CONFIG),
        "--trainer.num_rounds",
        "1",
        "--model",
        learner.__name__,
        "--trainer.keep_agent_checkpoints",
        "true",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    run = tmp_path / "lightning_logs/version_0"
    agent_checkpoint = next((run / "agents").iterdir())
    for path in (run / "checkpoints/last.ckpt", agent_checkpoint):
        module = load_module(path)
        assert type(module) is learner
        assert not module.training
        saved = load_checkpoint(path)["state_dict"]
        for key, value in module.state_dict().items():
            assert torch.equal(value, saved[key])
        assert isinstance(module.act(torch.zeros(4).numpy()), int)


def test_load_module_refuses_a_learner_it_does_not_know(tmp_path):
    class Mine(Reinforce):
        pass

    path = tmp_path / "mine.ckpt"
    checkpoint = {
        "state_dict": Mine(hidden_dim=8).state_dict(),
        "hyper_parameters": {"hidden_dim": 8},
        LEARNER_KEY: "Mine",
    }
    atomic_save(checkpoint, path)
    with pytest.raises(ConfigError, match="its learner 'Mine' is not one fedrl_lightning ships"):
        load_module(path)
    assert type(load_module(path, learners=[Mine])) is Mine
    # A dotted path is a name like any other: it is never imported.
    checkpoint[LEARNER_KEY] = "os.system"
    atomic_save(checkpoint, path)
    modules = set(sys.modules)
    with pytest.raises(ConfigError, match="'os.system' is not one"):
        load_module(path)
    assert set(sys.modules) == modules


def test_checkpoints_from_before_learners_were_named_load_as_reinforce(tmp_path):
    path = tmp_path / "old.ckpt"
    atomic_save(
        {"state_dict": Reinforce(hidden_dim=8).state_dict(), "hyper_parameters": {"hidden_dim": 8}},
        path,
    )
    assert type(load_module(path)) is Reinforce
