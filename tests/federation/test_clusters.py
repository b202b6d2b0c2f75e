"""Clustered federation (IFCA): the agent's choice, cluster-wise aggregation, what agents deploy."""

import csv

import pytest
import torch
from conftest import TINY_IFCA_CONFIG, run_cli

from fedrl_lightning import AgentPopulation, FedAvg, FedAvgM, load_module
from fedrl_lightning.federation.local_fit import AGENT_STATS_KEY
from fedrl_lightning.federation.server.cluster_choice import choose_cluster
from fedrl_lightning.federation.server.clustered import (
    ChooseCluster,
    ClusteredModel,
    ClusterReply,
    global_cluster,
    initial_cluster_states,
)
from fedrl_lightning.federation.strategies import AgentUpdate
from fedrl_lightning.federation.updates import InvalidUpdate, read_update
from fedrl_lightning.learners import Reinforce
from fedrl_lightning.rollouts.evaluation import evaluate_agents
from fedrl_lightning.run.checkpoints import atomic_save, load_checkpoint, policy_checkpoint

RUN = "lightning_logs/version_0"
SIGNS = {"reward_sign": {"choices": [1, -1]}}  # agent 0: +1, agent 1: -1, ...


def oracle_state(sign: int) -> dict[str, torch.Tensor]:
    """A policy that picks the larger of state[0] and state[1] (sign 1), or the smaller (-1).

    Hidden unit 0 is relu(s0 - s1), unit 1 relu(s1 - s0); the head gives the action of the
    larger coordinate a logit 100 times the gap, so sampling hardly ever strays.
    """
    module = Reinforce(hidden_dim=2)
    state = {k: torch.zeros_like(v) for k, v in module.state_dict().items()}
    state["policy.hidden.weight"] = torch.tensor([[1.0, -1.0, 0, 0], [-1.0, 1.0, 0, 0]])
    eye = torch.eye(2) * 100.0
    state["policy.head.weight"] = eye if sign > 0 else eye.flip(0)
    return state


def test_each_agent_picks_the_oracle_of_its_own_task():
    """Two hand-set candidates, one the oracle of each sign: an agent of each sign picks its own."""
    population = AgentPopulation(num_agents=2, heterogeneity=SIGNS)
    module = Reinforce(hidden_dim=2)
    plus, minus = oracle_state(1), oracle_state(-1)
    for states, expected in (([plus, minus], [0, 1]), ([minus, plus], [1, 0])):
        for agent in (0, 1):
            choice = choose_cluster(module, states, population, agent, 10, 5, 3)
            assert choice.cluster == expected[agent], (agent, choice)
            # Its own task's oracle scores about 75, the other task's about 25.
            assert choice.returns[expected[agent]] > 60 > 40 > choice.returns[1 - expected[agent]]
            assert choice.steps == 2 * 10 * 100  # both models, 10 episodes of 100 steps


def test_a_tie_goes_to_the_lowest_index():
    population = AgentPopulation(num_agents=2, heterogeneity=SIGNS)
    module = Reinforce(hidden_dim=2)
    plus = oracle_state(1)
    choice = choose_cluster(module, [oracle_state(-1), plus, plus], population, 0, 4, 5, 3)
    assert choice.returns[1] == choice.returns[2]
    assert choice.cluster == 1


def test_the_choice_is_a_function_of_the_seeds():
    """Same (run seed, round, agent): the same returns; another round: other episodes."""
    population = AgentPopulation(num_agents=2, heterogeneity=SIGNS)
    module = Reinforce(hidden_dim=8)
    torch.manual_seed(0)
    states = [Reinforce(hidden_dim=8).state_dict() for _ in range(3)]
    first = choose_cluster(module, states, population, 1, 6, 11, 4)
    torch.manual_seed(123)  # scoring draws no torch random number
    assert choose_cluster(module, states, population, 1, 6, 11, 4) == first
    others = {
        choose_cluster(module, states, population, 1, 6, seed, r).returns
        for seed, r in ((12, 4), (11, 5))
    }
    assert first.returns not in others


def test_clusters_start_different_and_from_the_seed_only():
    torch.manual_seed(0)
    model = Reinforce(hidden_dim=8)
    states = initial_cluster_states(model, 3, seed=42)
    assert all(torch.equal(states[0][k], v) for k, v in model.state_dict().items())
    weight = "policy.hidden.weight"
    assert not torch.equal(states[1][weight], states[2][weight])
    assert not torch.equal(states[0][weight], states[1][weight])
    before = torch.random.get_rng_state()
    again = initial_cluster_states(model, 3, seed=42)
    assert torch.equal(torch.random.get_rng_state(), before)  # torch's generator untouched
    for state, same in zip(states, again, strict=True):
        assert all(torch.equal(same[k], v) for k, v in state.items())
    other = initial_cluster_states(model, 2, seed=43)
    assert not torch.equal(other[1][weight], states[1][weight])


STATE = {"w": torch.zeros(2), "b": torch.zeros(1)}


def update(agent, value, episodes, cluster):
    state = {name: torch.full_like(v, float(value)) for name, v in STATE.items()}
    reply = {"shared": ClusterReply(cluster, 7)}
    return AgentUpdate(agent, state, episodes, 10, 1.0, extras=reply)


def test_each_cluster_averages_over_the_agents_that_chose_it_by_hand():
    """Three clusters; FedAvg weights by episodes; nobody chooses cluster 2."""
    start = [{k: torch.full_like(v, float(c)) for k, v in STATE.items()} for c in (0, 1, 2)]
    shared = ClusteredModel(start, FedAvg(), eval_episodes=3)
    sent = [update(0, 1.0, 1, 1), update(1, 4.0, 3, 1), update(2, 10.0, 4, 0)]
    shared.aggregate(sent, 1)
    # Cluster 1: agents 0 and 1, weights 1 and 3: (1 + 12) / 4; cluster 0: agent 2 alone.
    assert torch.allclose(shared.states[1]["w"], torch.full((2,), 13 / 4))
    assert torch.allclose(shared.states[0]["b"], torch.full((1,), 10.0))
    assert torch.equal(shared.states[2]["w"], torch.full((2,), 2.0))  # stays as it was
    assert shared.assignments == {0: 1, 1: 1, 2: 0}
    # The largest cluster is the global one; agent 3, which never chose, deploys it.
    assert shared.global_cluster == 1
    assert torch.equal(shared.global_state["w"], shared.states[1]["w"])
    assert torch.equal(shared.deployed_state(3)["w"], shared.states[1]["w"])
    assert torch.equal(shared.deployed_state(2)["w"], shared.states[0]["w"])
    assert shared.round_columns() == {
        "cluster_assignments": "0:1 1:1 2:0",
        "agents_in_cluster/0": 1,
        "agents_in_cluster/1": 2,
        "agents_in_cluster/2": 0,
        "cluster_eval_steps": 21,
    }
    # Agent 1 moves to cluster 0: its last choice counts, and now cluster 0 is as large.
    shared.aggregate([update(1, 0.0, 1, 0)], 1)
    assert shared.assignments == {0: 1, 1: 0, 2: 0} and shared.global_cluster == 0
    assert shared.round_columns()["cluster_eval_steps"] == 28


def test_each_cluster_has_its_own_strategy_state():
    """FedAvgM's momentum: a cluster nobody chose keeps none, and resume restores each."""
    start = [dict(STATE), dict(STATE)]
    shared = ClusteredModel(start, FedAvgM(momentum=0.5), eval_episodes=3)
    shared.aggregate([update(0, 2.0, 1, 0)], 1)
    shared.aggregate([update(0, 2.0, 1, 0)], 1)
    # Momentum 0.5: a step of 2 to 2; then the change is 0, and the velocity 0.5 * 2 steps 1.
    assert torch.allclose(shared.states[0]["w"], torch.full((2,), 3.0))
    assert shared.strategies[1].state_dict() == FedAvgM(momentum=0.5).state_dict()
    restored = ClusteredModel(start, FedAvgM(momentum=0.5), eval_episodes=3)
    restored.load_state_dict(shared.state_dict())
    for model in (shared, restored):
        model.aggregate([update(0, 5.0, 1, 0)], 1)
    assert torch.equal(restored.states[0]["w"], shared.states[0]["w"])
    assert restored.assignments == shared.assignments


def test_global_cluster_is_the_largest_ties_to_the_lowest():
    assert global_cluster({}, 3) == 0
    assert global_cluster({0: 2, 1: 1, 5: 2, 7: 1}, 3) == 1
    assert global_cluster({0: 2, 1: 2, 5: 1}, 3) == 2


@pytest.mark.parametrize(
    ("stats", "reason"),
    [
        ({"cluster": 2, "cluster_eval_steps": 5}, "chose cluster 2, not one of the 2"),
        ({"cluster": -1, "cluster_eval_steps": 5}, "chose cluster -1"),
        ({"cluster": "0", "cluster_eval_steps": 5}, "not a number"),
        ({"cluster_eval_steps": 5}, "incomplete"),
    ],
)
def test_a_cluster_choice_out_of_range_fails_the_agent(tmp_path, stats, reason):
    path = tmp_path / "agent.ckpt"
    agent_stats = {"num_episodes": 1, "num_steps": 10, "mean_return": 1.0, **stats}
    atomic_save(policy_checkpoint(STATE, {}, "Reinforce", **{AGENT_STATS_KEY: agent_stats}), path)
    choose = {"shared": ChooseCluster((STATE, STATE), eval_episodes=1)}
    with pytest.raises(InvalidUpdate, match=reason):
        read_update(path, 0, STATE, extras=choose)
    assert read_update(path, 0, STATE).extras == {}  # a run without clusters ignores it


@pytest.fixture(scope="module")
def ifca_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("ifca")
    result = run_cli("fit", "--config", str(TINY_IFCA_CONFIG), cwd=cwd)
    assert result.returncode == 0, result.stderr
    return cwd


def metrics(cwd):
    with open(cwd / RUN / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_rounds_log_their_assignments_and_count_the_scoring_steps(ifca_run):
    shared = load_checkpoint(ifca_run / RUN / "checkpoints/last.ckpt")["fedrl"]["shared"]
    assignments: dict[int, int] = {}
    for row in metrics(ifca_run):
        listed = dict(pair.split(":") for pair in row["cluster_assignments"].split())
        assert len(listed) == 2  # the round's two agents
        for k in (0, 1):
            assert int(row[f"agents_in_cluster/{k}"]) == list(listed.values()).count(str(k))
        assignments |= {int(a): int(c) for a, c in listed.items()}
        # 2 agents x 2 clusters x 3 episodes x 100 steps a round, apart from training's.
        assert int(row["cluster_eval_steps"]) == int(row["round"]) * 2 * 2 * 3 * 100
        assert int(row["env_steps"]) == int(row["round"]) * 2 * 2 * 100
    assert shared["assignments"] == assignments
    assert len(shared["clusters"]) == 2


def test_load_module_for_an_agent_gives_its_clusters_model(ifca_run):
    last = ifca_run / RUN / "checkpoints/last.ckpt"
    shared = load_checkpoint(last)["fedrl"]["shared"]
    assignments = shared["assignments"]
    never = [a for a in range(4) if a not in assignments]
    assert never and len(never) < 4  # some agents chose, one never did
    largest = global_cluster(assignments, 2)
    for name, value in load_module(last).state_dict().items():  # the global model
        assert torch.equal(value, shared["clusters"][largest][name]), name
    for agent in range(4):
        cluster = assignments.get(agent, largest)
        for name, value in load_module(last, agent=agent).state_dict().items():
            assert torch.equal(value, shared["clusters"][cluster][name]), (agent, name)
    assert set(assignments.values()) == {0, 1}  # both clusters have agents
    weight = "policy.hidden.weight"
    assert not torch.equal(shared["clusters"][0][weight], shared["clusters"][1][weight])


def test_evaluate_personalized_plays_each_agents_cluster(ifca_run):
    """``evaluate --personalized true``: agent k's numbers are its cluster model's."""
    args = ["--personalized", "true", "--episodes", "5", "--out", "own.csv"]
    result = run_cli("evaluate", *args, cwd=ifca_run)
    assert result.returncode == 0, result.stderr
    with open(ifca_run / "own.csv") as f:
        rows = list(csv.DictReader(f))
    population = AgentPopulation(num_agents=4, heterogeneity=SIGNS)
    last = ifca_run / RUN / "checkpoints/last.ckpt"
    for row in rows:
        agent = int(row["agent"])
        own = evaluate_agents(load_module(last, agent=agent).policy, population, [agent], 5, 0)
        assert float(row["mean_return"]) == own[0].mean


def test_each_agent_is_sent_every_clusters_model(ifca_run, tmp_path):
    """Traffic: two models sent per agent, twice one's; one cluster trains as a plain run."""
    one = run_cli("fit", "--config", str(TINY_IFCA_CONFIG), "--trainer.server.k", "1", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    for two_clusters, one_cluster in zip(metrics(ifca_run), metrics(tmp_path), strict=True):
        assert int(two_clusters["bytes_sent"]) == 2 * int(one_cluster["bytes_sent"])
    plain = tmp_path / "plain"
    plain.mkdir()
    overrides = ["--trainer.server", "null"]
    result = run_cli("fit", "--config", str(TINY_IFCA_CONFIG), *overrides, cwd=plain)
    assert result.returncode == 0, result.stderr
    # Scoring one model draws nothing from the fit's streams: the weights are a plain run's.
    trained = load_module(tmp_path / RUN / "checkpoints/last.ckpt").state_dict()
    for name, value in load_module(plain / RUN / "checkpoints/last.ckpt").state_dict().items():
        assert torch.equal(trained[name], value), name
    assert [r["train_reward"] for r in metrics(tmp_path)] == [
        r["train_reward"] for r in metrics(plain)
    ]
