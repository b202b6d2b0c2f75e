"""Policy distillation (FedHPD): the consensus, the KL term, what leaves an agent, own models."""

import csv

import pytest
import torch
from conftest import TINY_DISTILL_CONFIG, run_cli

from fedrl_lightning import AgentPopulation, load_module
from fedrl_lightning.federation.local_fit import AGENT_STATS_KEY
from fedrl_lightning.federation.server.distillation import (
    DistillationSettings,
    ProbeExchange,
    consensus_of,
    distill_student,
    draw_probe_states,
    strategy_consensus,
)
from fedrl_lightning.federation.server.distilled import (
    DISTRIBUTION_KEY,
    PROBE_STATES_FILE,
    DistilledModels,
    ExchangeDistributions,
)
from fedrl_lightning.federation.strategies import AgentUpdate, FedAvg, FedMedian
from fedrl_lightning.federation.updates import InvalidUpdate, read_update
from fedrl_lightning.learners import Reinforce
from fedrl_lightning.learners.distillation_term import DistillationTarget, consensus_kl
from fedrl_lightning.run.checkpoints import atomic_save, load_checkpoint, policy_checkpoint

RUN = "lightning_logs/version_0"
STATS = {"num_episodes": 2, "num_steps": 10, "mean_return": 5.0}


@pytest.fixture(scope="module")
def distilled_run(tmp_path_factory):
    """The tiny distillation config through the command line, agents' checkpoints kept."""
    cwd = tmp_path_factory.mktemp("distill")
    args = ["fit", "--config", str(TINY_DISTILL_CONFIG), "--trainer.keep_agent_checkpoints=true"]
    result = run_cli(*args, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return cwd / RUN, result


def tensors_in(value, where=""):
    """Every tensor anywhere in ``value``, by its path of keys and indices."""
    if isinstance(value, torch.Tensor):
        return {where: value}
    found = {}
    items = value.items() if isinstance(value, dict) else []
    if isinstance(value, list | tuple):
        items = [(f"[{i}]", item) for i, item in enumerate(value)]
    for key, item in items:
        found |= tensors_in(item, f"{where}.{key}" if isinstance(value, dict) else where + key)
    return found


def update(agent, distribution):
    return AgentUpdate(agent, {}, 2, 10, 5.0, extras={"shared": torch.tensor(distribution)})


def sent(updates):
    return [u.extras["shared"] for u in updates]


def test_the_consensus_of_two_agents_is_their_mean_state_by_state():
    # Two probe states, two actions: agent 0 says (0.2, 0.8) and (1, 0); agent 1 (0.6, 0.4)
    # and (0.5, 0.5). By hand: (0.4, 0.6) and (0.75, 0.25).
    first, second = [[0.2, 0.8], [1.0, 0.0]], [[0.6, 0.4], [0.5, 0.5]]
    expected = torch.tensor([[0.4, 0.6], [0.75, 0.25]])
    assert torch.allclose(consensus_of([torch.tensor(first), torch.tensor(second)]), expected)
    # The server's side averages them the same way, whatever the strategy, and records it.
    settings = DistillationSettings(probe_states=2, student_steps=0)
    module = Reinforce(hidden_dim=4)
    server = DistilledModels(
        settings, Reinforce, module.state_dict(), dict(module.hparams), [{}] * 2,
        torch.zeros(2, 4), seed=0,
    )  # fmt: skip
    server.aggregate([update(0, first), update(1, second)], 1)
    assert torch.allclose(server.consensus, expected)
    assert server.round_columns()["distributions_averaged"] == 2
    assert server.consensus_round == server.round == 1  # round 2's fits are pulled to it
    assert server.versions == {0: 1, 1: 1}  # the agents hold their models of round 1


def test_a_strategy_consensus_is_the_robust_combination_renormalised():
    """``consensus: strategy`` with FedMedian: the median state by state, then a distribution."""
    rows = [[0.6, 0.3, 0.1], [0.1, 0.6, 0.3], [0.3, 0.1, 0.6], [0.0, 0.0, 1.0]]
    first = [update(agent, [row]) for agent, row in enumerate(rows[:3])]
    # Medians [0.3, 0.3, 0.3] sum to 0.9, renormalised to a third each.
    consensus = strategy_consensus(FedMedian(), first, sent(first), None)
    assert torch.allclose(consensus, torch.full((1, 3), 1 / 3))
    # One agent of three sending a point mass moves the median only as far as the others let.
    outvoted = [update(0, [rows[3]]), update(1, [rows[0]]), update(2, [[0.5, 0.4, 0.1]])]
    consensus = strategy_consensus(FedMedian(), outvoted, sent(outvoted), None)
    assert torch.allclose(consensus, torch.tensor([[0.5, 0.3, 0.1]]) / 0.9)
    # FedAvg weights agents by their episodes, from the last consensus.
    averaged = strategy_consensus(FedAvg(), first, sent(first), torch.full((1, 3), 0.2))
    assert torch.allclose(averaged, consensus_of(sent(first)))
    settings = DistillationSettings.parse({"consensus": "strategy"})
    assert settings.consensus == "strategy" and DistillationSettings().consensus == "mean"


def test_a_krum_consensus_is_one_agents_distribution(tmp_path):
    """Through the command line: Krum's consensus is what one of the round's agents sent."""
    args = ["fit", "--config", str(TINY_DISTILL_CONFIG), "--trainer.keep_agent_checkpoints=true"]
    args += ["--data.num_agents=6", "--trainer.agents_per_round=5", "--trainer.strategy=Krum"]
    args += ["--trainer.server.consensus=strategy", "--trainer.strategy.num_byzantine=1"]
    result = run_cli(*args, "--data.byzantine={agents: [1], attack: sign_flip}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / RUN
    consensus = load_checkpoint(run / "checkpoints/last.ckpt")["fedrl"]["shared"]["consensus"]
    sent = [load_checkpoint(p)[DISTRIBUTION_KEY] for p in (run / "agents").glob("round-0003-*")]
    assert len(sent) == 5
    assert sum(torch.allclose(consensus, d, atol=1e-6) for d in sent) >= 1


def test_the_kl_term_pulls_the_policy_towards_the_consensus():
    # Uniform logits against a consensus of (0.9, 0.1): d KL / d logits = softmax - p =
    # (0.5 - 0.9, 0.5 - 0.1) = (-0.4, 0.4), so descending raises action 0's logit.
    logits = torch.zeros(1, 2, requires_grad=True)
    consensus = torch.tensor([[0.9, 0.1]])
    kl = consensus_kl(consensus, logits)
    # KL = 0.9 ln(0.9 / 0.5) + 0.1 ln(0.1 / 0.5), by hand.
    hand = 0.9 * torch.log(torch.tensor(1.8)) + 0.1 * torch.log(torch.tensor(0.2))
    assert torch.isclose(kl, hand)
    kl.backward()
    assert torch.allclose(logits.grad, torch.tensor([[-0.4, 0.4]]))
    assert consensus_kl(consensus, torch.log(consensus)).abs() < 1e-7  # zero at the consensus
    # On a whole policy: one gradient step on the term lowers the KL, and kl_coef scales it.
    torch.manual_seed(0)
    module = Reinforce(hidden_dim=8)
    probes, target = torch.randn(5, 4), torch.tensor([[0.9, 0.1]] * 5)
    term = DistillationTarget(probes, target, kl_coef=2.0).term(module.policy)
    before = consensus_kl(target, module.policy.logits(probes))
    assert torch.isclose(term, 2.0 * before)
    term.backward()
    with torch.no_grad():
        for parameter in module.policy.parameters():
            parameter -= 0.1 * parameter.grad
        assert consensus_kl(target, module.policy.logits(probes)) < before


def test_the_student_learns_the_consensus():
    torch.manual_seed(0)
    student = Reinforce(hidden_dim=8)
    probes = torch.randn(16, 4)
    consensus = torch.softmax(torch.randn(16, 2) * 3, dim=-1)
    before = float(consensus_kl(consensus, student.policy.logits(probes)).detach())
    after = distill_student(student, probes, consensus, steps=200, lr=0.05)
    assert after < before / 10


def test_in_distillation_no_weights_leave_an_agent(distilled_run):
    """Every agent checkpoint holds statistics and one distribution; its model stays home."""
    run, _ = distilled_run
    probes = torch.load(run / PROBE_STATES_FILE, weights_only=True)["probe_states"]
    assert probes.shape == (20, 4)  # fedrl/Simple-v0's observations
    sent = sorted((run / "agents").glob("*.ckpt"))
    assert len(sent) == 6  # 3 rounds of 2 agents
    for path in sent:
        checkpoint = torch.load(path, weights_only=True)
        assert checkpoint["state_dict"] == {}
        tensors = tensors_in(checkpoint)
        assert list(tensors) == [f".{DISTRIBUTION_KEY}"], path.name
        distribution = tensors[f".{DISTRIBUTION_KEY}"]
        assert distribution.shape == (20, 2)
        assert torch.allclose(distribution.sum(-1), torch.ones(20))
        assert checkpoint[AGENT_STATS_KEY]["num_episodes"] == 2
    # Each agent's whole model is in its own file, of its own size.
    with open(run / "agents.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [row["model.hidden_dim"] for row in table] == ["8", "16", "8", "16"]
    assert [float(row["model.lr"]) for row in table] == pytest.approx([1e-3, 4e-3, 7e-3, 1e-2])
    for agent, row in enumerate(table):
        own = torch.load(run / f"personal/agent-{agent:04d}.ckpt", weights_only=True)
        assert own["state_dict"]["policy.hidden.weight"].shape == (int(row["model.hidden_dim"]), 4)


def test_a_zero_attacker_sends_back_the_consensus_it_was_sent(tmp_path):
    """``zero`` in distillation: uniform before the first consensus, then the last one."""
    args = ["fit", "--config", str(TINY_DISTILL_CONFIG), "--trainer.keep_agent_checkpoints=true"]
    byzantine = "--data.byzantine={agents: [1], attack: zero}"
    result = run_cli(*args, byzantine, "--trainer.num_rounds=5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sent = {}
    for path in (tmp_path / RUN / "agents").glob("*.ckpt"):
        _, round_idx, _, agent = path.stem.split("-")
        sent[int(round_idx), int(agent)] = load_checkpoint(path)[DISTRIBUTION_KEY]
    attacked = sorted(r for r, agent in sent if agent == 1)
    assert attacked, "agent 1 was never sampled"
    for round_idx in attacked:
        if round_idx == 1:
            expected = torch.full((20, 2), 0.5)
        else:  # the consensus of the round before: the plain mean of what it was sent
            expected = consensus_of([d for (r, _), d in sent.items() if r == round_idx - 1])
        assert torch.allclose(sent[round_idx, 1], expected), round_idx
    honest = [d for (_, agent), d in sent.items() if agent != 1]
    assert not any(torch.allclose(d, torch.full((20, 2), 0.5)) for d in honest)
    with open(tmp_path / RUN / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["byzantine_agents"] for r in rows if int(r["round"]) in attacked] == ["1"] * len(
        attacked
    )


def test_load_module_gives_each_agent_its_own_model(distilled_run):
    run, result = distilled_run
    last = run / "checkpoints" / "last.ckpt"
    for agent, hidden in enumerate([8, 16, 8, 16]):
        module = load_module(last, agent=agent)
        own = torch.load(run / f"personal/agent-{agent:04d}.ckpt", weights_only=True)
        assert module.hparams.hidden_dim == hidden
        for name, value in own["state_dict"].items():
            assert torch.equal(module.state_dict()[name], value), (agent, name)
    student = load_module(last)  # the FedDF student, the run's deployable global policy
    assert student.hparams.hidden_dim == 16
    assert "eval_reward_personalized" in result.stdout
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["distributions_averaged"]) for r in rows] == [2, 2, 2]
    # What agents send back is what was serialized: their checkpoints, byte for byte.
    sizes = {}
    for path in (run / "agents").glob("*.ckpt"):
        round_idx = int(path.name.split("-")[1])
        sizes[round_idx] = sizes.get(round_idx, 0) + path.stat().st_size
    assert [int(r["bytes_received"]) for r in rows] == [sizes[1], sizes[2], sizes[3]]


def test_probe_states_are_seeded_and_cover_every_agent():
    population = AgentPopulation("CartPole-v1", num_agents=3, seed=0)
    first = draw_probe_states(population, 50, seed=1)
    assert torch.equal(first, draw_probe_states(population, 50, seed=1))
    assert not torch.equal(first, draw_probe_states(population, 50, seed=2))
    assert first.shape == (50, 4) and first.dtype == torch.float32


def test_a_distribution_that_is_no_probability_is_refused(tmp_path):
    path = tmp_path / "agent.ckpt"
    probe = ProbeExchange(torch.zeros(3, 4), None, kl_coef=1.0, send=True)
    exchange = {"shared": ExchangeDistributions({}, exchange=probe, num_actions=2)}
    for bad in (torch.full((3, 2), 0.7), torch.tensor([[1.5, -0.5]] * 3), torch.ones(2, 2) / 2):
        checkpoint = policy_checkpoint({}, {}, "Reinforce", **{AGENT_STATS_KEY: STATS})
        atomic_save(checkpoint | {DISTRIBUTION_KEY: bad}, path)
        with pytest.raises(InvalidUpdate, match=DISTRIBUTION_KEY):
            read_update(path, 0, {}, extras=exchange)
    good = torch.full((3, 2), 0.5)
    atomic_save(checkpoint | {DISTRIBUTION_KEY: good}, path)
    assert torch.equal(read_update(path, 0, {}, extras=exchange).extras["shared"], good)
    assert load_checkpoint(path)[DISTRIBUTION_KEY].shape == (3, 2)


def test_sampled_model_hyperparameters_are_seeded_per_agent():
    spec = {"hidden_dim": {"choices": [32, 64, 128]}, "lr": [1e-3, 1e-2]}

    def table(seed):
        population = AgentPopulation(
            num_agents=6, model_heterogeneity=spec, heterogeneity_mode="sample", seed=seed
        )
        return [population.model_hparams_of(a) for a in range(6)]

    assert table(0) == table(0)
    assert table(0) != table(1)
    assert all(h["hidden_dim"] in (32, 64, 128) and 1e-3 <= h["lr"] <= 1e-2 for h in table(0))
    assert len({h["lr"] for h in table(0)}) == 6  # drawn per agent
