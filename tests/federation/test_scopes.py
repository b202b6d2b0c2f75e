"""Sharing scopes: matching by hand, task-scoped aggregation by hand, the personal store."""

import csv
import shutil

import pytest
import torch
from conftest import TINY_PERSONAL_CONFIG, run_cli

from fedrl_lightning import AgentPopulation, FedAvg, load_module
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.server.personal_store import PersonalStore
from fedrl_lightning.federation.server.scopes import SharingScopes
from fedrl_lightning.federation.server.shared import SharedModel
from fedrl_lightning.federation.strategies import AgentUpdate
from fedrl_lightning.rollouts.evaluation import evaluate_agents
from fedrl_lightning.run.checkpoints import load_checkpoint

RUN = "lightning_logs/version_0"
STATE = {
    "policy.hidden.weight": torch.zeros(2, 2),
    "policy.hidden.bias": torch.zeros(2),
    "policy.head.weight": torch.zeros(1, 2),
    "policy.head.bias": torch.zeros(1),
    "critic.0.weight": torch.zeros(1, 2),
}


def test_scopes_match_names_by_pattern_and_the_rest_is_global():
    scopes = SharingScopes({"agent": ["policy.head.*"], "task": ["critic.*"]})
    assert [scopes.scope_of(name) for name in STATE] == [
        "global",
        "global",
        "agent",
        "agent",
        "task",
    ]
    parts = scopes.split(STATE)
    assert list(parts["agent"]) == ["policy.head.weight", "policy.head.bias"]
    assert list(parts["task"]) == ["critic.0.weight"]
    assert list(parts["global"]) == ["policy.hidden.weight", "policy.hidden.bias"]
    assert bool(scopes) and not SharingScopes()
    assert SharingScopes({"global": ["*"]}).scope_of("policy.head.bias") == "global"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"agnet": ["policy.head.*"]}, "'agnet' is not a scope"),
        ({"agent": "policy.head.*"}, "trainer.server.agent: give a list"),
        ({"agent": ["policy.hed.*"]}, "'policy.hed.*' matches no parameter of M"),
        ({"agent": ["policy.*"], "task": ["*.bias"]}, "matches patterns of two scopes"),
        ({"agent": ["policy.normalizer.*"]}, "holds running statistics"),
    ],
)
def test_bad_scopes_are_refused_by_name(spec, message):
    state = {**STATE, "policy.normalizer.count": torch.zeros(())}
    with pytest.raises(ConfigError, match=message):
        SharingScopes(spec).check(list(state), ["policy.normalizer.count"], "M")


def update(agent, value, episodes, names):
    state = {name: torch.full_like(STATE[name], float(value)) for name in names}
    return AgentUpdate(agent, state, num_episodes=episodes, num_steps=10, mean_return=1.0)


def test_task_scoped_entries_average_over_their_task_only_by_hand():
    """Tasks of 2 and 2 agents; FedAvg weights by episodes."""
    scopes = SharingScopes({"task": ["critic.*"], "agent": ["policy.head.*"]})
    shared = SharedModel(scopes, STATE, task_sizes=[2, 2], strategy=FedAvg())
    names = shared.sent_names()
    sent = [update(0, 1.0, 1, names), update(1, 4.0, 3, names), update(2, 10.0, 4, names)]
    shared.aggregate(sent, 1)
    # Global: all three, weights 1, 3, 4 of 8: (1 + 12 + 40) / 8.
    assert torch.allclose(shared.global_state["policy.hidden.bias"], torch.full((2,), 53 / 8))
    # Task 0: agents 0 and 1, weights 1 and 3: (1 + 12) / 4; task 1: agent 2 alone.
    assert torch.allclose(shared.task_states[0]["critic.0.weight"], torch.full((1, 2), 13 / 4))
    assert torch.allclose(shared.task_states[1]["critic.0.weight"], torch.full((1, 2), 10.0))
    # The agent-scoped head is nobody's to aggregate: the global values stay as they were.
    assert torch.equal(shared.global_state["policy.head.weight"], STATE["policy.head.weight"])
    assert "policy.head.weight" not in shared.sent_names()
    # Agent 3, of task 1, never trained: task 1's critic, the global rest.
    deployed = shared.deployed_state(3)
    assert torch.allclose(deployed["critic.0.weight"], torch.full((1, 2), 10.0))
    assert torch.equal(deployed["policy.head.bias"], STATE["policy.head.bias"])


def test_the_store_commits_recovers_and_refuses_to_go_back(tmp_path):
    store = PersonalStore(tmp_path)
    head = {"policy.head.bias": torch.tensor([3.0])}
    store.save(store.pending_path(1, 4), 4, head)
    store.save(store.pending_path(2, 4), 4, head)
    # On Ray, agent 1's fit of round 5 may end before round 4 is evaluated and committed.
    store.save(store.pending_path(1, 5), 5, {"policy.head.bias": torch.tensor([9.0])})
    assert torch.equal(store.load(1, 4)["policy.head.bias"], torch.tensor([3.0]))
    store.commit({1: 4})
    assert torch.equal(store.load(1)["policy.head.bias"], torch.tensor([3.0]))
    assert store.load(2) is None  # not committed: the round's checkpoint did not name it
    # Killed after the checkpoint that names agent 2's round 4, before the commit:
    store.recover({1: 4, 2: 4}, completed_round=4)
    assert store.load(2) is not None and not store.pending_path(2, 4).exists()
    # A pending file of a round the run did not complete is dropped.
    assert not store.pending_path(1, 5).exists()
    store.save(store.pending_path(1, 5), 5, {"policy.head.bias": torch.tensor([9.0])})
    store.recover({1: 4, 2: 4}, completed_round=4)
    assert not store.pending_path(1, 5).exists()
    assert torch.equal(store.load(1)["policy.head.bias"], torch.tensor([3.0]))
    with pytest.raises(ConfigError, match="agent 1's personal parameters .* from round 4"):
        store.recover({1: 2, 2: 2}, completed_round=2)


@pytest.fixture(scope="module")
def personal_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("personal")
    result = run_cli("fit", "--config", str(TINY_PERSONAL_CONFIG), cwd=cwd)
    assert result.returncode == 0, result.stderr
    return cwd


def test_an_agent_scoped_parameter_never_leaves_its_agent(personal_run, tmp_path):
    """The bytes an agent sends hold no head; its own file does, and traffic counts less."""
    kept = tmp_path / "kept"
    kept.mkdir()
    result = run_cli(
        "fit",
        "--config",
        str(TINY_PERSONAL_CONFIG),
        "--trainer.keep_agent_checkpoints",
        "true",
        cwd=kept,
    )
    assert result.returncode == 0, result.stderr
    for sent in (kept / RUN / "agents").glob("round-0003-agent-*.ckpt"):
        agent = int(sent.stem.rsplit("-", 1)[1])
        checkpoint = load_checkpoint(sent)
        assert not any(name.startswith("policy.head.") for name in checkpoint["state_dict"])
        head = load_checkpoint(kept / RUN / f"personal/agent-{agent:04d}.ckpt")["state_dict"]
        assert head.keys() == {"policy.head.weight", "policy.head.bias"}
        assert head["policy.head.weight"].numpy().tobytes() not in sent.read_bytes()
    with open(personal_run / RUN / "metrics.csv") as f:
        personal = next(csv.DictReader(f))
    shared = tmp_path / "shared"
    shared.mkdir()
    everything = run_cli(
        "fit", "--config", str(TINY_PERSONAL_CONFIG), "--trainer.server", "null", cwd=shared
    )
    assert everything.returncode == 0, everything.stderr
    with open(shared / RUN / "metrics.csv") as f:
        plain = next(csv.DictReader(f))
    assert "eval_reward_personalized" not in plain
    head_bytes = (16 * 2 + 2) * 4  # the head's weight and bias, float32
    assert int(plain["bytes_sent"]) - int(personal["bytes_sent"]) >= 2 * head_bytes


def test_load_module_for_an_agent_gives_its_own_parameters(personal_run):
    last = personal_run / RUN / "checkpoints/last.ckpt"
    global_model = load_module(last)
    store = PersonalStore(personal_run / RUN / "personal")
    trained = [a for a in range(4) if store.load(a) is not None]
    assert trained and len(trained) < 4  # some agents trained, one never did
    for agent in range(4):
        module = load_module(last, agent=agent)
        own = store.load(agent)
        for name, value in module.state_dict().items():
            expected = own[name] if own and name in own else global_model.state_dict()[name]
            assert torch.equal(value, expected), (agent, name)
    a, b = trained[0], trained[-1]
    assert not torch.equal(
        load_module(last, agent=a).state_dict()["policy.head.weight"],
        load_module(last, agent=b).state_dict()["policy.head.weight"],
    )


def test_evaluation_reports_each_agents_own_policy(personal_run):
    with open(personal_run / RUN / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        own = [float(row[f"eval_reward_personalized_per_agent/{a}"]) for a in range(4)]
        assert float(row["eval_reward_personalized"]) == pytest.approx(sum(own) / 4)
        assert float(row["eval_reward_personalized_min"]) == min(own)


def test_resuming_an_earlier_round_of_a_personal_run_is_refused(personal_run, tmp_path):
    shutil.copytree(personal_run / "lightning_logs", tmp_path / "lightning_logs")
    before = {p: p.read_bytes() for p in (tmp_path / RUN).rglob("*") if p.is_file()}
    result = run_cli("fit", "--ckpt_path", f"{RUN}/checkpoints/round-0001.ckpt", cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "resumes only from its last round" in result.stderr
    assert {p: p.read_bytes() for p in (tmp_path / RUN).rglob("*") if p.is_file()} == before


def test_evaluate_personalized_plays_each_agents_own_policy(personal_run):
    """``evaluate --personalized true``: agent k's numbers are those of load_module(agent=k)."""
    result = run_cli(
        "evaluate",
        "--personalized",
        "true",
        "--episodes",
        "5",
        "--out",
        "own.csv",
        cwd=personal_run,
    )
    assert result.returncode == 0, result.stderr
    assert "each agent's own policy" in result.stdout
    with open(personal_run / "own.csv") as f:
        rows = list(csv.DictReader(f))
    population = personal_population()
    last = personal_run / RUN / "checkpoints/last.ckpt"
    for row in rows:
        agent = int(row["agent"])
        own = evaluate_agents(load_module(last, agent=agent).policy, population, [agent], 5, 0)
        assert float(row["mean_return"]) == own[0].mean


def personal_population():
    """The tiny personal config's four agents, half on the opposite task."""
    return AgentPopulation(num_agents=4, heterogeneity={"reward_sign": {"choices": [1, -1]}})
