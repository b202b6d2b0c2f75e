import pytest
import torch
from conftest import TRAINER_KWARGS

from fedrl_lightning import AgentPopulation, Reinforce
from fedrl_lightning.federation.local_fit import LocalFit, fit_agent
from fedrl_lightning.run.console import quiet_lightning

WARMUP = 100
FITS = 500


def resident_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


@pytest.mark.slow
def test_fresh_trainers_do_not_leak(tmp_path):
    """500 local fits, each with its own module, environment and Trainer, after a warm-up."""
    population = AgentPopulation(num_agents=10, max_episode_steps=1)
    global_state = Reinforce(hidden_dim=16).state_dict()
    memory = []
    with quiet_lightning(verbose=False):
        for i in range(WARMUP + FITS):
            task = LocalFit(
                agent_id=i % 10,
                round_idx=i,
                run_seed=0,
                module_class=Reinforce,
                model_hparams={"hidden_dim": 16},
                global_state=global_state,
                num_episodes=1,
                checkpoint_path=tmp_path / "agent.ckpt",
                trainer_kwargs=TRAINER_KWARGS,
            )
            fit_agent(task, population)
            memory.append(resident_mb())
    growth = memory[-1] - memory[WARMUP - 1]
    assert growth <= 50, f"resident memory grew by {growth:.1f} MB over {FITS} local fits"
    assert torch.load(tmp_path / "agent.ckpt", weights_only=True)["agent_stats"]["num_steps"] == 1
