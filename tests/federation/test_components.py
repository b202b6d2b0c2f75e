"""A new round component plugs in through the protocol alone: no trainer or message change."""

from dataclasses import dataclass

import pytest
import torch

from fedrl_lightning import AgentPopulation, FederatedTrainer, Reinforce
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.components.base import FitPart, InvalidUpdate, RoundComponent
from fedrl_lightning.run.checkpoints import load_checkpoint
from fedrl_lightning.run.console import quiet_lightning

KEY = "first_observations"


@dataclass(frozen=True)
class SendFirstObservation(FitPart):
    """The agent's side: it reports the first observation it trained on, and the round."""

    round_idx: int

    def report(self, fit):
        return {KEY: fit.dataset.kept[0].observations[0] if fit.dataset.kept else torch.zeros(0)}

    def dataset_options(self):
        return {"keep_episodes": True}

    def read(self, checkpoint, stats, path):
        sent = checkpoint.get(KEY)
        if not isinstance(sent, torch.Tensor) or sent.shape != (4,):
            raise InvalidUpdate(f"{path}: no {KEY}")
        return (self.round_idx, sent)


class FirstObservations(RoundComponent):
    """The server's side: it counts the observations its agents sent, round by round."""

    name = "first_observations"

    def __init__(self):
        self.received = 0
        self.rounds = []

    def fit_inputs(self, agent, round_idx):
        return SendFirstObservation(round_idx)

    def aggregate(self, updates, round_idx):
        replies = [update.extras[self.name] for update in updates]
        assert all(sent_in == round_idx for sent_in, _ in replies)
        self.received += len(replies)
        self.rounds.append(round_idx)

    def round_columns(self):
        return {"observations_received": self.received}

    def metric_names(self):
        return ["observations_received"]

    def state_dict(self):
        return {"received": torch.tensor(self.received), "rounds": list(self.rounds)}


def test_a_component_of_its_own_gets_parts_replies_columns_and_state(tmp_path):
    agents = AgentPopulation("CartPole-v1", num_agents=3, max_episode_steps=20)
    torch.manual_seed(0)
    model = Reinforce.for_population(agents, hidden_dim=8)
    component = FirstObservations()
    trainer = FederatedTrainer(
        num_rounds=2,
        agents_per_round=2,
        episodes_per_round=1,
        eval_episodes=1,
        components=[component],
        default_root_dir=str(tmp_path),
        enable_progress_bar=False,
        seed=3,
    )
    with quiet_lightning(verbose=False):
        history = trainer.fit(model, agents)
    assert [row["observations_received"] for row in history] == [2, 4]
    assert "observations_received" in trainer.metric_names()
    state = load_checkpoint(trainer.run_dir / "checkpoints" / "last.ckpt")["fedrl"]
    assert int(state[component.name]["received"]) == 4 and state[component.name]["rounds"] == [1, 2]


@pytest.mark.parametrize("name", ["shared", "history", ""])
def test_a_component_may_not_take_a_name_of_the_round_state(tmp_path, name):
    component = FirstObservations()
    component.name = name
    with pytest.raises(ConfigError, match="trainer.components"):
        FederatedTrainer(components=[component], default_root_dir=str(tmp_path))
