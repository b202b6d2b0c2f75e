import torch

from fedrl_lightning import AgentPopulation, ReinforceModule
from fedrl_lightning.checkpoints import load_checkpoint
from fedrl_lightning.console import quiet_lightning
from fedrl_lightning.federation.client import AGENT_STATS_KEY, LocalFit, fit_agent

TRAINER_KWARGS = {
    "accelerator": "cpu",
    "devices": 1,
    "enable_progress_bar": False,
    "enable_model_summary": False,
}


def local_fit(tmp_path, global_state, agent_id=2, name="agent.ckpt"):
    task = LocalFit(
        agent_id=agent_id,
        round_idx=3,
        run_seed=7,
        module_class=ReinforceModule,
        model_hparams={"hidden_dim": 8, "lr": 0.01},
        global_state=global_state,
        num_episodes=3,
        checkpoint_path=tmp_path / name,
        trainer_kwargs=TRAINER_KWARGS,
    )
    with quiet_lightning(verbose=False):
        return fit_agent(task, AgentPopulation(num_agents=4))


def test_agent_checkpoint_holds_trained_weights_and_stats(tmp_path):
    torch.manual_seed(0)
    global_state = ReinforceModule(hidden_dim=8).state_dict()
    path = local_fit(tmp_path, global_state)

    checkpoint = load_checkpoint(path)
    stats = checkpoint[AGENT_STATS_KEY]
    assert stats["num_episodes"] == 3
    assert stats["num_steps"] == 300  # fedrl/Simple-v0 episodes last 100 steps
    assert 0.0 <= stats["mean_return"] <= 100.0
    assert any(not torch.equal(checkpoint["state_dict"][k], global_state[k]) for k in global_state)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind

    module = ReinforceModule.load_from_checkpoint(path)
    assert module.hparams.hidden_dim == 8 and module.hparams.lr == 0.01
    for key, value in checkpoint["state_dict"].items():
        assert torch.equal(module.state_dict()[key], value)


def test_local_fit_depends_only_on_its_task(tmp_path):
    torch.manual_seed(0)
    global_state = ReinforceModule(hidden_dim=8).state_dict()
    first = load_checkpoint(local_fit(tmp_path, global_state, name="a.ckpt"))
    local_fit(tmp_path, global_state, agent_id=1, name="other.ckpt")  # changes torch's RNG
    again = load_checkpoint(local_fit(tmp_path, global_state, name="b.ckpt"))
    assert first[AGENT_STATS_KEY] == again[AGENT_STATS_KEY]
    for key, value in first["state_dict"].items():
        assert torch.equal(again["state_dict"][key], value)
