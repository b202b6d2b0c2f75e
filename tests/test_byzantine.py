import csv

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_CONFIG, fit_one_agent, run_cli, run_main

from fedrl_lightning import AgentPopulation, Reinforce
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.local_fit import AGENT_STATS_KEY
from fedrl_lightning.population.byzantine import Byzantine, ByzantineOptions
from fedrl_lightning.rollouts.dataset import EpisodeDataset
from fedrl_lightning.run.checkpoints import load_checkpoint

GLOBAL = {"w": torch.tensor([1.0, -2.0]), "b": torch.tensor([0.5])}
TRAINED = {"w": torch.tensor([1.5, -2.0]), "b": torch.tensor([0.25])}


def test_a_count_picks_that_many_agents_from_the_seed():
    picked = Byzantine({"agents": 3, "attack": "zero"}, num_agents=10, seed=1).agents
    assert len(picked) == 3 and picked <= set(range(10))
    assert Byzantine({"agents": 3, "attack": "zero"}, num_agents=10, seed=1).agents == picked
    others = {Byzantine({"agents": 3, "attack": "zero"}, 10, seed).agents for seed in range(2, 8)}
    assert len(others | {picked}) > 1
    listed = Byzantine({"agents": [4, 7], "attack": "zero"}, num_agents=10, seed=1)
    assert listed.agents == {4, 7}
    assert [listed.attack_of(a) for a in (3, 4, 7)] == [None, "zero", "zero"]


def test_sign_flip_sends_the_change_times_minus_scale():
    byzantine = Byzantine({"agents": [0], "attack": "sign_flip"}, num_agents=2, seed=0)
    sent = byzantine.corrupt_update(0, TRAINED, GLOBAL, seed=3)
    # w - 2.5 * (trained - w), by hand
    assert torch.equal(sent["w"], torch.tensor([1.0 - 2.5 * 0.5, -2.0]))
    assert torch.equal(sent["b"], torch.tensor([0.5 + 2.5 * 0.25]))
    assert byzantine.corrupt_update(1, TRAINED, GLOBAL, seed=3) is TRAINED  # honest agent


def test_zero_sends_the_global_weights_and_random_noise_ignores_the_fit():
    zero = Byzantine({"agents": [0], "attack": "zero"}, 1, 0).corrupt_update(0, TRAINED, GLOBAL, 3)
    assert all(torch.equal(zero[k], GLOBAL[k]) for k in GLOBAL)

    noisy = Byzantine({"agents": [0], "attack": "random_noise", "noise_std": 0.1}, 1, 0)
    big = {"w": torch.zeros(20000)}
    sent = noisy.corrupt_update(0, {"w": torch.full((20000,), 9.0)}, big, seed=3)["w"]
    assert sent.mean().abs() < 0.01 and sent.std() == pytest.approx(0.1, rel=0.05)
    again = noisy.corrupt_update(0, {"w": torch.full((20000,), 9.0)}, big, seed=3)["w"]
    other = noisy.corrupt_update(0, {"w": torch.full((20000,), 9.0)}, big, seed=4)["w"]
    assert torch.equal(sent, again) and not torch.equal(sent, other)


CONSENSUS = torch.tensor([[0.5, 0.5], [0.6, 0.4]])
OWN = torch.tensor([[0.8, 0.2], [0.7, 0.3]])


def test_in_distillation_the_update_attacks_corrupt_the_distribution_sent():
    flip = Byzantine({"agents": [0], "attack": "sign_flip"}, num_agents=2, seed=0)
    sent = flip.corrupt_distribution(0, OWN, CONSENSUS, seed=3)
    # c - 2.5 * (p - c), by hand: [-0.25, 1.25] clamps to [0, 1.25], then sums to 1;
    # [0.35, 0.65] already does.
    assert torch.allclose(sent, torch.tensor([[0.0, 1.0], [0.35, 0.65]]))
    assert flip.corrupt_distribution(1, OWN, CONSENSUS, seed=3) is OWN  # honest agent
    # Before the first consensus, the uniform distribution takes its place.
    first = flip.corrupt_distribution(0, OWN, None, seed=3)
    # [0.5 - 2.5 * 0.3, ...] clamps to [0, 1.25]; [0.5 - 2.5 * 0.2, ...] is [0, 1] already.
    assert torch.allclose(first, torch.tensor([[0.0, 1.0], [0.0, 1.0]]), atol=1e-6)

    zero = Byzantine({"agents": [0], "attack": "zero"}, 1, 0)
    assert torch.equal(zero.corrupt_distribution(0, OWN, CONSENSUS, 3), CONSENSUS)
    assert torch.equal(zero.corrupt_distribution(0, OWN, None, 3), torch.full((2, 2), 0.5))

    noisy = Byzantine({"agents": [0], "attack": "random_noise"}, 1, 0)
    sent = noisy.corrupt_distribution(0, OWN, CONSENSUS, seed=3)
    assert (sent >= 0).all() and torch.allclose(sent.sum(-1), torch.ones(2))
    assert not torch.allclose(sent, OWN) and not torch.allclose(sent, CONSENSUS)
    assert torch.equal(sent, noisy.corrupt_distribution(0, OWN, CONSENSUS, seed=3))
    assert not torch.equal(sent, noisy.corrupt_distribution(0, OWN, CONSENSUS, seed=4))

    poison = Byzantine({"agents": [0], "attack": "reward_flip"}, 1, 0)
    assert poison.corrupt_distribution(0, OWN, CONSENSUS, seed=3) is OWN  # not an update attack


@pytest.mark.parametrize(
    ("spec", "option"),
    [
        ({"agents": 3, "attack": "flip"}, "data.byzantine.attack"),
        ({"agents": 11, "attack": "zero"}, "data.byzantine.agents"),
        ({"agents": [0, 10], "attack": "zero"}, "data.byzantine.agents"),
        ({"agents": 0, "attack": "zero"}, "data.byzantine.agents"),
        ({"agents": 2, "attack": "zero", "power": 3}, "data.byzantine.power"),
        ({"agents": 2, "attack": "sign_flip", "scale": "big"}, "data.byzantine.scale"),
        ({"agents": 2, "attack": "random_noise", "noise_std": -1}, "data.byzantine.noise_std"),
    ],
)
def test_bad_specs_name_the_option(spec, option):
    with pytest.raises(ConfigError, match=option):
        Byzantine(spec, num_agents=10, seed=0)


def test_reward_flip_negates_training_rewards_only():
    population = AgentPopulation(
        "CartPole-v1", num_agents=2, num_envs=3, byzantine={"agents": [1], "attack": "reward_flip"}
    )
    for agent, sign in ((0, 1.0), (1, -1.0)):
        env = population.byzantine.wrap_training_env(population.make_rollout_env(agent), agent)
        env.reset(seed=0)
        assert np.array_equal(env.step(np.zeros(3, np.int64))[1], sign * np.ones(3))
        single = population.byzantine.wrap_training_env(population.make_env(agent), agent)
        single.reset(seed=0)
        assert single.step(0)[1] == sign


def taken_actions(env_id: str, module: Reinforce, episodes: int, random: bool) -> torch.Tensor:
    """The actions of the first batch an agent rolls out on ``env_id``, padding left out."""
    dataset = EpisodeDataset(
        env=gym.make(env_id),
        policy=module.policy,
        num_episodes=episodes,
        episodes_per_update=episodes,
        gamma=0.99,
        env_seed=0,
        action_seed=0,
        random_actions=random,
    )
    batch = next(iter(dataset))
    return batch.actions[batch.mask].float()


def test_random_action_ignores_a_confident_policy():
    module = Reinforce(observation_dim=4, num_actions=2)
    with torch.no_grad():
        module.policy.head.bias.copy_(torch.tensor([20.0, -20.0]))  # always action 0
    assert taken_actions("CartPole-v1", module, 20, random=False).mean() == 0.0
    assert taken_actions("CartPole-v1", module, 20, random=True).mean() == pytest.approx(
        0.5, abs=0.1
    )


def test_random_action_on_a_box_space_stays_in_bounds():
    module = Reinforce(
        observation_dim=3, num_actions=1, continuous=True, action_low=[-2.0], action_high=[2.0]
    )
    actions = taken_actions("Pendulum-v1", module, 2, random=True).flatten()
    assert actions.min() >= -2.0 and actions.max() <= 2.0
    assert actions.min() < -1.5 and actions.max() > 1.5 and actions.mean().abs() < 0.3


def test_a_sign_flipping_agent_sends_its_honest_fit_flipped(tmp_path):
    torch.manual_seed(0)
    start = Reinforce(hidden_dim=8).state_dict()
    honest = load_checkpoint(fit_one_agent(tmp_path, start, name="honest.ckpt"))
    flipped = load_checkpoint(
        fit_one_agent(
            tmp_path, start, name="flip.ckpt", byzantine={"agents": [2], "attack": "sign_flip"}
        )
    )
    assert flipped[AGENT_STATS_KEY] == honest[AGENT_STATS_KEY]  # it reports its real fit
    for key, w in start.items():
        expected = w - 2.5 * (honest["state_dict"][key] - w)
        assert torch.allclose(flipped["state_dict"][key], expected, atol=1e-6)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_byzantine_agents_and_traffic_are_in_the_run_outputs(tmp_path):
    result = run_cli(
        "fit",
        "--config",
        str(TINY_CONFIG),
        "--data.byzantine",
        "{agents: [0, 2], attack: random_noise}",
        "--trainer.keep_agent_checkpoints",
        "true",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    run = tmp_path / "lightning_logs" / "version_0"
    assert read_csv(run / "agents.csv") == [
        {"agent": "0", "byzantine": "random_noise"},
        {"agent": "1", "byzantine": ""},
        {"agent": "2", "byzantine": "random_noise"},
    ]
    rows = read_csv(run / "metrics.csv")
    assert len(rows) == 3
    round_size = (run / "checkpoints" / "round-0001.ckpt").stat().st_size
    for row in rows:
        agents = sorted(
            int(p.name.split("-")[-1].split(".")[0])
            for p in (run / "agents").glob(f"round-{int(row['round']):04d}-agent-*.ckpt")
        )
        assert len(agents) == 2  # agents_per_round
        byzantine = [a for a in agents if a in (0, 2)]
        assert row["byzantine_agents"] == " ".join(map(str, byzantine))
        assert int(row["num_byzantine_agents"]) == len(byzantine)
        received = sum(
            (run / "agents" / f"round-{int(row['round']):04d}-agent-{a:04d}.ckpt").stat().st_size
            for a in agents
        )
        assert int(row["bytes_received"]) == received
        # each agent is sent the global weights and hyperparameters: a round checkpoint less
        # its round state
        assert 0 < int(row["bytes_sent"]) / 2 < round_size
    assert any(row["byzantine_agents"] for row in rows)


def test_a_bad_attack_is_one_line_naming_the_option(tmp_path):
    result = run_cli(
        "fit",
        "--config",
        str(TINY_CONFIG),
        "--data.byzantine",
        "{agents: 1, attack: lie}",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "data.byzantine.attack" in result.stderr
    assert not (tmp_path / "lightning_logs").exists()


def print_config(args, tmp_path, monkeypatch):
    """The ``data`` section that ``fit --print_config`` prints for ``args`` on tiny.yaml."""
    code, stdout, stderr = run_main(
        ["fit", "--config", str(TINY_CONFIG), *args, "--print_config"], tmp_path, monkeypatch
    )
    assert code == 0, stderr
    return yaml.safe_load(stdout)["data"]


def test_the_yaml_and_the_dotted_forms_give_the_same_typed_option(tmp_path, monkeypatch):
    whole = ["--data.byzantine", "{agents: [0, 2], attack: sign_flip, scale: 3}"]
    dotted = [
        "--data.byzantine.agents",
        "[0, 2]",
        "--data.byzantine.attack",
        "sign_flip",
        "--data.byzantine.scale",
        "3",
    ]
    printed = print_config(whole, tmp_path, monkeypatch)["byzantine"]
    assert printed == {"agents": [0, 2], "attack": "sign_flip", "scale": 3.0, "noise_std": 1.0}
    assert print_config(dotted, tmp_path, monkeypatch)["byzantine"] == printed
    assert print_config([], tmp_path, monkeypatch)["byzantine"] is None


def test_help_shows_every_field_of_the_typed_option(tmp_path, monkeypatch):
    code, stdout, _ = run_main(
        ["fit", "--config", str(TINY_CONFIG), "--data.byzantine.help"], tmp_path, monkeypatch
    )
    assert code == 0
    for field in ("agents", "attack", "scale", "noise_std"):
        assert f"--data.byzantine.{field}" in stdout
    assert "random_noise's standard deviation" in stdout.replace("``", "")


def test_options_a_plain_dict_and_the_dataclass_are_the_same_population():
    typed = AgentPopulation(num_agents=4, byzantine=ByzantineOptions(2, "zero", scale=1.0))
    plain = AgentPopulation(num_agents=4, byzantine={"agents": 2, "attack": "zero", "scale": 1})
    assert typed.byzantine.agents == plain.byzantine.agents and len(typed.byzantine.agents) == 2
    assert typed.byzantine.scale == plain.byzantine.scale == 1.0
    assert not AgentPopulation(num_agents=4, byzantine={}).byzantine  # empty: every one honest
    with pytest.raises(ConfigError, match="data.byzantine.attack must be given"):
        AgentPopulation(num_agents=4, byzantine={"agents": 2})
