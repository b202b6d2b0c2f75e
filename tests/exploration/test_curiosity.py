"""Curiosity: RND's fixed target, novelty falling where trained, pooled statistics, ICM by hand."""

import math

import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import TINY_CONFIG, run_main

from fedrl_lightning import A2C, PPO, AgentPopulation, Reinforce
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.exploration import (
    ICM,
    RND,
    CuriosityOptions,
    Transitions,
    make_curiosity,
    next_observations,
)
from fedrl_lightning.federation.local_fit import LocalFit, fit_agent
from fedrl_lightning.policy.normalization import RunningMeanStd, pooled_statistics
from fedrl_lightning.population.byzantine import Byzantine
from fedrl_lightning.rollouts.dataset import EpisodeBatch
from fedrl_lightning.rollouts.returns import episode_returns_to_go
from fedrl_lightning.run.checkpoints import load_checkpoint


@pytest.fixture
def one_thread():
    """Small nets train far faster on one thread, and on a busy machine do not stall."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


RND_SPEC = {"kind": "rnd", "coef": 1.0, "hidden_dim": 16, "output_dim": 8}


def local_fit(tmp_path, model, agent_id, run_seed=3):
    task = LocalFit(
        agent_id=agent_id,
        round_idx=1,
        run_seed=run_seed,
        module_class=type(model),
        model_hparams=dict(model.hparams),
        global_state=model.state_dict(),
        num_episodes=2,
        checkpoint_path=tmp_path / f"agent-{agent_id}.ckpt",
        trainer_kwargs={"accelerator": "cpu", "enable_progress_bar": False},
    )
    return task


@pytest.mark.parametrize("learner", [Reinforce, A2C, PPO])
def test_curiosity_is_off_by_default_and_adds_only_its_own_entries(learner):
    torch.manual_seed(0)
    plain = learner(hidden_dim=8)
    torch.manual_seed(0)
    curious = learner(hidden_dim=8, curiosity=RND_SPEC)
    assert plain.curiosity is None
    assert "intrinsic_reward" not in plain.metric_names()
    assert "intrinsic_reward" in curious.metric_names()
    extra = set(curious.state_dict()) - set(plain.state_dict())
    assert set(plain.state_dict()) <= set(curious.state_dict())
    assert all(k.startswith(("curiosity.", "intrinsic_critic.")) for k in extra)
    # Built after every other network: the weights they share start the same.
    for key, value in plain.state_dict().items():
        assert torch.equal(curious.state_dict()[key], value), key


def test_the_rnd_target_is_the_same_for_every_agent_and_never_leaves_one(tmp_path):
    population = AgentPopulation(num_agents=3)
    torch.manual_seed(0)
    model = PPO.for_population(population, hidden_dim=8, curiosity=RND_SPEC)
    names = set(model.state_dict())
    assert not any("target" in name for name in names)
    assert not any("target" in name for name, _ in model.named_parameters())
    targets = []
    for agent in (0, 2):
        task = local_fit(tmp_path, model, agent)
        checkpoint = load_checkpoint(fit_agent(task, population))  # weights_only
        assert set(checkpoint["state_dict"]) == names  # the predictor is sent, no target
        module = PPO(**task.model_hparams)
        module.seed_run(task.run_seed)
        targets.append({k: v.clone() for k, v in module.curiosity.target.named_buffers()})
    for key, value in targets[0].items():
        assert torch.equal(targets[1][key], value), key
    other = PPO(**dict(model.hparams))
    other.seed_run(4)  # another run's target differs
    assert not torch.equal(other.curiosity.target.weight0, targets[0]["weight0"])
    # Building a module or reseeding its target leaves torch's generator alone.
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    other.seed_run(9)
    assert torch.equal(torch.rand(3), expected)


def test_rnd_novelty_falls_on_trained_states_and_stays_high_on_new_ones(one_thread):
    torch.manual_seed(0)
    rnd = RND(2, coef=1.0, intrinsic_gamma=0.99, hidden_dim=32, output_dim=16)
    rnd.seed_run(0)
    seen = torch.randn(256, 2) * 0.1 + torch.tensor([-1.0, 0.0])
    rnd.obs_normalizer.observe(torch.cat([seen, torch.randn(256, 2)]))  # statistics fixed now
    new = torch.randn(256, 2) * 0.1 + torch.tensor([1.0, 1.0])
    before_seen, before_new = rnd.errors(seen).mean().item(), rnd.errors(new).mean().item()
    optimizer = torch.optim.Adam(rnd.predictor.parameters(), lr=1e-2)
    for _ in range(200):
        optimizer.zero_grad()
        rnd.errors(seen).mean().backward()
        optimizer.step()
    after_seen, after_new = rnd.errors(seen).mean().item(), rnd.errors(new).mean().item()
    assert after_seen < before_seen / 20
    assert after_new > 10 * after_seen
    assert after_new > before_new / 5


def test_merging_the_curiosity_statistics_equals_pooling_the_observations():
    model = PPO(observation_dim=2, num_actions=3, hidden_dim=8, curiosity=RND_SPEC)
    global_state = model.state_dict()
    chunks = [torch.randn(n, 2, dtype=torch.float64) * (i + 1) + i for i, n in enumerate([5, 17])]
    parts = []
    for chunk in chunks:  # what each agent's fit observed, as it sends it
        agent = PPO(**dict(model.hparams))
        agent.curiosity.obs_normalizer.start_fit()
        agent.curiosity.obs_normalizer.observe(chunk[:3])
        agent.curiosity.obs_normalizer.observe(chunk[3:])
        stats = RunningMeanStd(2)
        stats.load_state_dict(agent.curiosity.obs_normalizer.fit_statistics())
        parts.append(stats)
    merged = pooled_statistics(global_state, "curiosity.obs_normalizer", parts)
    pooled = torch.cat(chunks)
    assert merged["curiosity.obs_normalizer.count"] == len(pooled)
    torch.testing.assert_close(merged["curiosity.obs_normalizer.mean"], pooled.mean(0))
    m2 = (pooled - pooled.mean(0)).square().sum(0)
    torch.testing.assert_close(merged["curiosity.obs_normalizer.m2"], m2)
    assert "curiosity.reward_normalizer" in model.statistics_modules()


def test_icm_inverse_loss_by_hand_for_one_transition():
    icm = ICM(2, 3, False, coef=1.0, intrinsic_gamma=0.99, hidden_dim=2, feature_dim=1)
    with torch.no_grad():
        for module in icm.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.fill_(0.5)
                module.bias.zero_()
        icm.inverse[2].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    obs, next_obs = torch.tensor([[1.0, 2.0]]), torch.tensor([[2.0, 0.0]])
    action = torch.tensor([2])
    # Empty statistics leave observations unchanged. The encoder's two hidden units are each
    # relu(0.5 * (x0 + x1)), and phi their sum times 0.5.
    phi = 0.5 * 2 * (0.5 * (1.0 + 2.0))  # 1.5
    phi_next = 0.5 * 2 * (0.5 * (2.0 + 0.0))  # 1.0
    hidden = max(0.0, 0.5 * (phi + phi_next))  # 1.25, both inverse hidden units
    logits = [hidden, hidden, -hidden]
    expected = math.log(sum(math.exp(x) for x in logits)) - logits[2]
    _, inverse = icm._errors_and_inverse(Transitions(obs, action, next_obs))
    assert inverse.item() == pytest.approx(expected, rel=1e-6)
    assert F.cross_entropy(torch.tensor([logits]), action).item() == pytest.approx(expected)


@pytest.mark.parametrize(
    "spec, option",
    [
        ({"kind": "count"}, "model.curiosity.kind"),
        ({"kind": "rnd", "coef": -0.5}, "model.curiosity.coef"),
        ({"kind": "icm", "beta": 2}, "model.curiosity.beta"),
        ({"kind": "rnd", "feature_dim": 4}, "unknown key 'feature_dim'"),
        ({"kind": "icm", "gama": 0.9}, "model.curiosity.gama: unknown key"),
        ({"coef": 2.0}, "model.curiosity.kind must be given"),
        ({"kind": "rnd", "hidden_dim": 8.5}, "model.curiosity.hidden_dim"),
        ({"kind": "rnd", "intrinsic_gamma": 0}, r"model.curiosity.intrinsic_gamma .* in \(0, 1\]"),
    ],
)
def test_bad_curiosity_specs_name_the_option(spec, option):
    with pytest.raises(ConfigError, match=option):
        make_curiosity(spec, 2, 3, False)


def test_next_observations_and_intrinsic_returns_to_go_by_hand():
    observations = torch.tensor([[[0.0], [1.0], [2.0]], [[5.0], [0.0], [0.0]]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    batch = EpisodeBatch(
        observations,
        torch.zeros(2, 3, dtype=torch.int64),
        torch.zeros(2, 3),
        mask,
        torch.zeros(2),
        torch.zeros(2, 3),
        torch.tensor([True, False]),
        torch.tensor([False, True]),
        torch.tensor([[3.0], [6.0]]),
        torch.zeros(2, 3),
    )
    following = next_observations(batch)
    assert following[mask].squeeze(-1).tolist() == [1.0, 2.0, 3.0, 6.0]
    rewards = torch.tensor([[1.0, 2.0, 4.0], [8.0, 9.0, 9.0]])  # padding ignored
    returns = episode_returns_to_go(rewards, mask, 0.5)
    assert returns.tolist() == [[1 + 0.5 * (2 + 0.5 * 4), 2 + 0.5 * 4, 4.0], [8.0, 0.0, 0.0]]


def test_the_predictor_is_attacked_and_counted_like_the_policy():
    model = PPO(observation_dim=2, num_actions=3, hidden_dim=8, curiosity=RND_SPEC)
    start = model.state_dict()
    trained = {k: v + 1 if v.is_floating_point() else v for k, v in start.items()}
    byzantine = Byzantine({"agents": [0], "attack": "sign_flip", "scale": 2.0}, 2, seed=0)
    sent = byzantine.corrupt_update(0, trained, start, seed=1)
    key = "curiosity.predictor.0.weight"
    torch.testing.assert_close(sent[key], start[key] - 2.0)
    plain = PPO(observation_dim=2, num_actions=3, hidden_dim=8)
    extra = sum(
        v.numel() for k, v in start.items() if k not in plain.state_dict() and "normalizer" not in k
    )
    predictor = sum(p.numel() for p in model.curiosity.predictor.parameters())
    critic = sum(p.numel() for p in model.intrinsic_critic.parameters())
    assert extra == predictor + critic  # what an agent sends beyond the plain model


@pytest.mark.parametrize("learner", [Reinforce, PPO])
def test_typed_curiosity_is_saved_as_plain_data_and_loads_with_weights_only(learner, tmp_path):
    typed = learner(hidden_dim=8, curiosity=CuriosityOptions("icm", coef=2.0, beta=0.5))
    plain = {"kind": "icm", "coef": 2.0, "intrinsic_gamma": 0.99, "hidden_dim": 64, "beta": 0.5}
    assert typed.hparams.curiosity == plain and type(typed.hparams.curiosity) is dict
    assert typed.hparams_initial.curiosity == plain
    assert isinstance(typed.curiosity, ICM) and typed.curiosity.beta == 0.5
    path = tmp_path / "hparams.ckpt"
    torch.save({"hyper_parameters": dict(typed.hparams)}, path)
    saved = torch.load(path, weights_only=True)["hyper_parameters"]
    # A saved dict, or an older checkpoint's partial one, builds the same learner again.
    for spec in (saved["curiosity"], {"kind": "icm", "coef": 2.0, "beta": 0.5}):
        again = learner(**{**saved, "curiosity": spec})
        assert again.hparams.curiosity == plain
        assert set(again.state_dict()) == set(typed.state_dict())


def test_the_command_line_takes_curiosity_as_yaml_or_dotted(tmp_path, monkeypatch):
    def curiosity(*args):
        code, stdout, stderr = run_main(
            ["fit", "--config", str(TINY_CONFIG), "--model", "PPO", *args, "--print_config"],
            tmp_path,
            monkeypatch,
        )
        assert code == 0, stderr
        return yaml.safe_load(stdout)["model"]["init_args"]["curiosity"]

    whole = curiosity("--model.curiosity", "{kind: rnd, coef: 100, output_dim: 8}")
    dotted = curiosity(
        "--model.curiosity.kind", "rnd", "--model.curiosity.coef", "100",
        "--model.curiosity.output_dim", "8",
    )  # fmt: skip
    assert whole == dotted
    assert {k: v for k, v in whole.items() if v is not None} == {
        "kind": "rnd", "coef": 100.0, "intrinsic_gamma": 0.99, "hidden_dim": 64, "output_dim": 8
    }  # fmt: skip
