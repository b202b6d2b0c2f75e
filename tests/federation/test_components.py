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

    def load_state_dict(self, state):
        self.received, self.rounds = int(state["received"]), list(state["rounds"])


def fit_with_component(root, num_rounds, ckpt_path=None):
    agents = AgentPopulation("CartPole-v1", num_agents=3, max_episode_steps=20)
    torch.manual_seed(0)
    model = Reinforce.for_population(agents, hidden_dim=8)
    component = FirstObservations()
    trainer = FederatedTrainer(
        num_rounds=num_rounds,
        agents_per_round=2,
        episodes_per_round=1,
        eval_episodes=1,
        components=[component],
        default_root_dir=str(root),
        enable_progress_bar=False,
        seed=3,
    )
    with quiet_lightning(verbose=False):
        history = trainer.fit(model, agents, ckpt_path=ckpt_path)
    return trainer, component, history


def test_a_component_of_its_own_gets_parts_replies_columns_and_state(tmp_path):
    trainer, component, history = fit_with_component(tmp_path, num_rounds=2)
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


def test_a_component_of_its_own_resumes_with_the_run(tmp_path):
    """Its state travels in the round checkpoint: a resumed run ends as the whole run does."""
    whole, whole_component, _ = fit_with_component(tmp_path / "whole", num_rounds=3)
    first, _, _ = fit_with_component(tmp_path / "resumed", num_rounds=2)
    last = first.run_dir / "checkpoints" / "last.ckpt"
    resumed, component, history = fit_with_component(
        tmp_path / "resumed", num_rounds=3, ckpt_path=str(last)
    )
    assert [row["observations_received"] for row in history][-1] == 6
    assert (component.received, component.rounds) == (6, [1, 2, 3])
    assert (component.received, component.rounds) == (
        whole_component.received,
        whole_component.rounds,
    )
    expected = load_checkpoint(whole.run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    actual = load_checkpoint(resumed.run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[key], actual[key]) for key in expected)
