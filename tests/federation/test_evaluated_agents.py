import numpy as np
import torch

from fedrl_lightning import AgentPopulation, FederatedTrainer, Reinforce
from fedrl_lightning.federation.evaluation import evaluated_agents
from fedrl_lightning.run.console import quiet_lightning


def test_evaluated_agents_are_evenly_spaced_and_include_both_ends():
    assert evaluated_agents(30, 4) == [0, 10, 19, 29]
    assert evaluated_agents(1000, 10) == [0, 111, 222, 333, 444, 555, 666, 777, 888, 999]
    assert evaluated_agents(5, 10) == [0, 1, 2, 3, 4]
    assert evaluated_agents(5, None) == [0, 1, 2, 3, 4]


def test_a_large_population_is_evaluated_on_a_fixed_subset(tmp_path):
    torch.manual_seed(0)
    trainer = FederatedTrainer(
        num_rounds=2,
        agents_per_round=3,
        episodes_per_round=1,
        eval_episodes=2,
        eval_agents=4,
        default_root_dir=str(tmp_path),
        enable_progress_bar=False,
    )
    with quiet_lightning(verbose=False):
        history = trainer.fit(Reinforce(hidden_dim=8), AgentPopulation(num_agents=1000))
    for row in history:
        per_agent = {k: v for k, v in row.items() if k.startswith("eval_reward_per_agent/")}
        assert list(per_agent) == [f"eval_reward_per_agent/{a}" for a in (0, 333, 666, 999)]
        assert row["eval_reward"] == np.mean(list(per_agent.values()))
