import torch
from conftest import fit_one_agent

from fedrl_lightning import Reinforce
from fedrl_lightning.federation.local_fit import AGENT_STATS_KEY
from fedrl_lightning.run.checkpoints import load_checkpoint


def test_agent_checkpoint_holds_trained_weights_and_stats(tmp_path):
    torch.manual_seed(0)
    global_state = Reinforce(hidden_dim=8).state_dict()
    path = fit_one_agent(tmp_path, global_state)

    checkpoint = load_checkpoint(path)
    stats = checkpoint[AGENT_STATS_KEY]
    assert stats["num_episodes"] == 3
    assert stats["num_steps"] == 300  # fedrl/Simple-v0 episodes last 100 steps
    assert 0.0 <= stats["mean_return"] <= 100.0
    assert any(not torch.equal(checkpoint["state_dict"][k], global_state[k]) for k in global_state)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind

    module = Reinforce.load_from_checkpoint(path)
    assert module.hparams.hidden_dim == 8 and module.hparams.lr == 0.01
    for key, value in checkpoint["state_dict"].items():
        assert torch.equal(module.state_dict()[key], value)


def test_local_fit_depends_only_on_its_task(tmp_path):
    torch.manual_seed(0)
    global_state = Reinforce(hidden_dim=8).state_dict()
    first = load_checkpoint(fit_one_agent(tmp_path, global_state, name="a.ckpt"))
    fit_one_agent(tmp_path, global_state, agent_id=1, name="other.ckpt")  # changes torch's RNG
    again = load_checkpoint(fit_one_agent(tmp_path, global_state, name="b.ckpt"))
    assert first[AGENT_STATS_KEY] == again[AGENT_STATS_KEY]
    for key, value in first["state_dict"].items():
        assert torch.equal(again["state_dict"][key], value)
