"""``python -m fedrl_lightning evaluate``: the run's population or another, batched, fresh."""

import csv

import imageio_ffmpeg
import numpy as np
import pytest
from conftest import TINY_PPO_CONFIG, run_cli

from fedrl_lightning import AgentPopulation, load_module
from fedrl_lightning.federation.local_adaptation import LocalAdaptation
from fedrl_lightning.rollouts.evaluation import evaluate_agents, fresh_episode_seeds

HETERO = ["--data.env_id", "CartPole-v1", "--data.heterogeneity", "{length: [0.2, 0.8]}"]


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    """A tiny PPO run on three CartPole agents with pole lengths 0.2, 0.5 and 0.8."""
    cwd = tmp_path_factory.mktemp("evaluate")
    result = run_cli("fit", "--config", str(TINY_PPO_CONFIG), *HETERO, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return cwd


def read_rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_evaluate_writes_a_row_per_agent_beside_the_checkpoint(cartpole_run):
    result = run_cli("evaluate", "--episodes", "4", cwd=cartpole_run)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    path = cartpole_run / "lightning_logs/version_0/checkpoints/evaluation.csv"
    rows = read_rows(path)
    assert [row["agent"] for row in rows] == ["0", "1", "2"]
    assert [float(row["length"]) for row in rows] == pytest.approx([0.2, 0.5, 0.8])
    for row in rows:
        assert row["episodes"] == "4"
        low, mean, high = (float(row[k]) for k in ("min_return", "mean_return", "max_return"))
        assert low <= mean <= high
        assert float(row["mean_episode_length"]) == pytest.approx(mean)  # CartPole: 1 per step
    assert "(PPO, round 3), the global policy: 3 agents x 4 episodes of CartPole-v1, sampled" in (
        result.stdout
    )
    assert "mean ± std" in result.stdout
    worst = min(rows, key=lambda row: float(row["mean_return"]))
    assert f"worst agent {worst['agent']}: {float(worst['mean_return']):.2f}" in result.stdout
    assert (
        run_cli("test", "--episodes", "4", "--out", "again.csv", cwd=cartpole_run).returncode == 0
    )
    assert read_rows(cartpole_run / "again.csv") == rows  # test is evaluate, and it is seeded


def test_batched_deterministic_evaluation_equals_one_episode_at_a_time(cartpole_run):
    """The vector-env evaluation gives what SB3's loop gives, episode by episode."""
    module = load_module(cartpole_run / "lightning_logs/version_0/checkpoints/last.ckpt")
    population = AgentPopulation(
        env_id="CartPole-v1", num_agents=3, heterogeneity={"length": [0.2, 0.8]}
    )
    batched = evaluate_agents(module.policy, population, [0, 2], 3, seed=5, deterministic=True)
    for result in batched:
        env = population.make_env(result.agent)
        returns, lengths = [], []
        for reset_seed in fresh_episode_seeds(5, result.agent, 3):
            observation, _ = env.reset(seed=reset_seed)
            total, steps, done = 0.0, 0, False
            while not done:
                action = module.act(observation, deterministic=True)
                observation, reward, terminated, truncated, _ = env.step(action)
                total, steps, done = total + reward, steps + 1, terminated or truncated
            returns.append(total)
            lengths.append(steps)
        np.testing.assert_array_equal(result.returns, returns)
        np.testing.assert_array_equal(result.lengths, lengths)


def test_data_overrides_evaluate_agents_no_one_trained(cartpole_run):
    unseen = ["--data.heterogeneity", "{length: [0.15, 0.95]}", "--data.num_agents", "5"]
    result = run_cli(
        "evaluate", *unseen, "--episodes", "2", "--out", "unseen.csv", cwd=cartpole_run
    )
    assert result.returncode == 0, result.stderr
    rows = read_rows(cartpole_run / "unseen.csv")
    assert [float(row["length"]) for row in rows] == pytest.approx([0.15, 0.35, 0.55, 0.75, 0.95])
    some = run_cli(
        "evaluate", "--agents", "2,0", "--episodes", "2", "--out", "some.csv", cwd=cartpole_run
    )
    assert some.returncode == 0, some.stderr
    assert [row["agent"] for row in read_rows(cartpole_run / "some.csv")] == ["2", "0"]


def test_seeds_pick_the_episodes(cartpole_run):
    outputs = []
    for seed in ("1", "1", "2"):
        result = run_cli(
            "evaluate", "--seed", seed, "--episodes", "3", "--out", "s.csv", cwd=cartpole_run
        )
        assert result.returncode == 0, result.stderr
        outputs.append(read_rows(cartpole_run / "s.csv"))
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]


def test_finetune_episodes_adapts_each_agent_before_evaluating_it(cartpole_run):
    """Local adaptation of the saved policy on unseen agents, as LocalAdaptation does it."""
    unseen = ["--data.heterogeneity", "{length: [0.15, 0.95]}", "--data.num_agents", "3"]
    args = ["evaluate", *unseen, "--episodes", "3", "--finetune_episodes", "4", "--seed", "2"]
    result = run_cli(*args, "--out", "tuned.csv", cwd=cartpole_run)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no Lightning banners from the fits
    assert "the global policy fine-tuned for 4 episodes on each agent" in result.stdout
    rows = read_rows(cartpole_run / "tuned.csv")
    assert run_cli(*args, "--out", "again.csv", cwd=cartpole_run).returncode == 0
    assert read_rows(cartpole_run / "again.csv") == rows

    module = load_module(cartpole_run / "lightning_logs/version_0/checkpoints/last.ckpt")
    population = AgentPopulation(
        env_id="CartPole-v1", num_agents=3, heterogeneity={"length": [0.15, 0.95]}, seed=7
    )
    adaptation = LocalAdaptation(module, population, episodes=4)
    for agent, row in enumerate(rows):
        tuned = load_module(cartpole_run / "lightning_logs/version_0/checkpoints/last.ckpt")
        tuned.load_state_dict(adaptation.adapt(module.state_dict(), agent, seed=2, round_idx=0))
        (expected,) = evaluate_agents(tuned.policy, population, [agent], 3, seed=2)
        assert float(row["mean_return"]) == pytest.approx(expected.mean)
    adaptation.close()
    plain = run_cli("evaluate", *unseen, "--episodes", "3", "--seed", "2", cwd=cartpole_run)
    assert "fine-tuned" not in plain.stdout


def test_record_video_writes_playable_mp4s_of_the_evaluated_episode(cartpole_run, tmp_path):
    result = run_cli(
        "evaluate",
        "--episodes",
        "1",
        "--deterministic",
        "true",
        "--record_video",
        str(tmp_path),
        "--video_agents",
        "0,2",
        "--out",
        "video.csv",
        cwd=cartpole_run,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    rows = {row["agent"]: row for row in read_rows(cartpole_run / "video.csv")}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "agent-0-episode-0.mp4",
        "agent-2-episode-0.mp4",
    ]
    for agent in ("0", "2"):
        video = tmp_path / f"agent-{agent}-episode-0.mp4"
        frames = imageio_ffmpeg.read_frames(str(video))
        meta = next(frames)
        decoded = [np.frombuffer(frame, np.uint8) for frame in frames]
        width, height = meta["size"]
        assert all(frame.size == width * height * 3 for frame in decoded)
        # RecordVideo grabs the reset frame, then one per step of the evaluated episode.
        assert len(decoded) == int(float(rows[agent]["mean_episode_length"])) + 1


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--ckpt_path", "nowhere.ckpt"], "--ckpt_path nowhere.ckpt"),
        (["--agents", "0,7"], "--agents: agent 7"),
        (["--agents", "a,b"], "--agents: expected agent ids"),
        (["--episodes", "0"], "--episodes"),
        (["--finetune_episodes", "-1"], "--finetune_episodes"),
        (["--data.env_id", "Acrobot-v1"], "data.heterogeneity: AcrobotEnv has no attribute"),
        (["--data.env_id", "Acrobot-v1", "--data.heterogeneity", "null"], "observation_dim"),
        (["--out", "missing/e.csv"], "--out missing/e.csv"),
        (["--data.env_id", "Pendulum-v1", "--data.heterogeneity", "null"], "model.continuous"),
    ],
)
def test_bad_input_is_one_line(cartpole_run, args, names):
    result = run_cli("evaluate", *args, cwd=cartpole_run)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert names in result.stderr


def test_record_video_refuses_an_env_without_frames(tmp_path, tiny_run):
    cwd, _ = tiny_run
    result = run_cli("evaluate", "--record_video", str(tmp_path / "v"), cwd=cwd)
    assert result.returncode == 2
    assert "--record_video: fedrl/Simple-v0 cannot render frames" in result.stderr
    assert not (tmp_path / "v").exists()
