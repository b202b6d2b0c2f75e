"""The Ray executor through the command line: the same run as the sequential executor.

The runs join the test process's shared Ray instance (``shared_ray``), whose workers stay
warm from one run to the next, as a driver joins a cluster; the first starts a Ray of its own,
as a user's command does, and stops it.
"""

import csv
from pathlib import Path

import pytest
import torch
from conftest import (
    TINY_CALLBACKS_CONFIG,
    TINY_CONFIG,
    TINY_CURIOSITY_CONFIG,
    TINY_DISTILL_CONFIG,
    TINY_DQN_CONFIG,
    TINY_IFCA_CONFIG,
    TINY_PERSONAL_CONFIG,
    TINY_PPO_CONFIG,
    TINY_SAC_CONFIG,
    TINY_SHARING_CONFIG,
    TINY_TASKS_CONFIG,
    TINY_TD3_CONFIG,
    assert_same_memory,
    metrics_without_timings,
    run_cli,
)

pytest.importorskip("ray")
# Ray starts processes of its own: one Ray test at a time (xdist runs a group on one worker).
# Each starts Ray, or a fit on it: slow.
pytestmark = [pytest.mark.xdist_group("ray"), pytest.mark.slow]


def without_times(history):
    return [{k: v for k, v in row.items() if k != "round_time"} for row in history]


@pytest.mark.parametrize(
    "config",
    [TINY_CONFIG, TINY_PPO_CONFIG, TINY_TASKS_CONFIG, TINY_SHARING_CONFIG, TINY_CURIOSITY_CONFIG],
    ids=["reinforce", "ppo_norm", "tasks", "sharing", "curiosity"],
)
def test_ray_through_the_command_line_matches_sequential(tmp_path, tiny_run, config, request):
    """Three rounds on Ray, round 3 redone in this process: the sequential run's result.

    Also for PPO with observation and reward normalisation (whose statistics the server
    pools), two hidden layers and a linear learning-rate schedule, and for shared
    trajectory replay (the replayed episodes travel to the workers, the uploads back).
    Resuming from round 2's checkpoint keeps ``num_rounds``, so the schedule is the
    sequential run's. The first (REINFORCE) starts and stops a Ray of its own; the others
    join the shared one.
    """
    request.getfixturevalue("no_ray" if config == TINY_CONFIG else "shared_ray")
    if config == TINY_CONFIG:
        sequential = tiny_run[0]
    else:
        sequential = tmp_path / "sequential"
        sequential.mkdir()
        assert run_cli("fit", "--config", str(config), cwd=sequential).returncode == 0
    on_ray = tmp_path / "ray"
    on_ray.mkdir()
    result = run_cli(
        "fit",
        "--config",
        str(config),
        "--trainer.executor",
        "ray",
        "--trainer.num_workers",
        "2",
        cwd=on_ray,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("\n") <= 1  # no Ray or Lightning chatter; at most the bar
    assert metrics_without_timings(on_ray) == metrics_without_timings(sequential)
    # The Ray run's num_workers does not follow it into a sequential resume, which would
    # refuse it; the command's own Ray options would still be refused.
    resumed = run_cli(
        "fit",
        "--ckpt_path",
        str(on_ray / "lightning_logs/version_0/checkpoints/round-0002.ckpt"),
        "--trainer.executor",
        "sequential",
        cwd=on_ray,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "num_workers: null" in (on_ray / "lightning_logs/version_0/config.yaml").read_text()

    def metrics(folder):
        with open(folder / "lightning_logs/version_0/metrics.csv", newline="") as f:
            return without_times(list(csv.DictReader(f)))

    assert metrics(on_ray) == metrics(sequential)
    last = "lightning_logs/version_0/checkpoints/last.ckpt"
    ray_weights = torch.load(on_ray / last, weights_only=True)
    sequential_weights = torch.load(sequential / last, weights_only=True)
    assert ray_weights["state_dict"].keys() == sequential_weights["state_dict"].keys()
    for key, value in sequential_weights["state_dict"].items():
        assert torch.equal(ray_weights["state_dict"][key], value), key


def test_a_run_that_callbacks_stop_on_ray_matches_sequential(tmp_path, shared_ray):
    """Early stopping at round 10 of 12, while round 11's fits already run on the workers."""
    args = ["--config", str(TINY_CALLBACKS_CONFIG), "--trainer.num_rounds", "12"]
    args += ["--trainer.episodes_per_round", "5", "--data.max_episode_steps", "80"]
    sequential, on_ray = tmp_path / "sequential", tmp_path / "ray"
    sequential.mkdir(), on_ray.mkdir()
    first = run_cli("fit", *args, cwd=sequential)
    assert first.returncode == 0, first.stderr
    assert "Stopped after round 10 of 12" in first.stdout
    ray_args = ["--trainer.executor", "ray", "--trainer.num_workers", "2"]
    result = run_cli("fit", *args, *ray_args, cwd=on_ray)
    assert result.returncode == 0, result.stderr
    assert "Stopped after round 10 of 12" in result.stdout
    assert metrics_without_timings(on_ray) == metrics_without_timings(sequential)
    checkpoints = "lightning_logs/version_0/checkpoints"
    names = sorted(p.name for p in (sequential / checkpoints).iterdir())
    assert sorted(p.name for p in (on_ray / checkpoints).iterdir()) == names
    for name in names:
        expected = torch.load(sequential / checkpoints / name, weights_only=True)["state_dict"]
        actual = torch.load(on_ray / checkpoints / name, weights_only=True)["state_dict"]
        for key, value in expected.items():
            assert torch.equal(actual[key], value), (name, key)
    assert not list((on_ray / "lightning_logs/version_0").glob("agents/*.ckpt"))


def fit_sequential_and_on_ray(tmp_path: Path, args: list[str]) -> tuple[Path, Path, list[dict]]:
    """Run ``fit args`` sequentially and on Ray (2 workers), and check the metrics agree.

    Returns:
        The sequential run's folder, the Ray run's folder, and the Ray run's metrics.
    """
    sequential, on_ray = tmp_path / "sequential", tmp_path / "ray"
    sequential.mkdir(), on_ray.mkdir()
    first = run_cli("fit", *args, cwd=sequential)
    assert first.returncode == 0, first.stderr
    ray_args = ["--trainer.executor", "ray", "--trainer.num_workers", "2"]
    result = run_cli("fit", *args, *ray_args, cwd=on_ray)
    assert result.returncode == 0, result.stderr
    rows = metrics_without_timings(on_ray)
    assert rows == metrics_without_timings(sequential)
    return sequential, on_ray, rows


def test_curiosity_with_shared_replay_on_ray_matches_sequential(tmp_path, shared_ray):
    """PPO with RND and trajectory sharing: replayed episodes' intrinsic returns are traced."""
    sharing = ["--trainer.components+=TrajectorySharing", "--trainer.components.share_fraction=0.5"]
    sharing += ["--trainer.components.buffer_episodes=4", "--trainer.components.replay_ratio=1.0"]
    args = ["--config", str(TINY_CURIOSITY_CONFIG), *sharing]
    _, _, rows = fit_sequential_and_on_ray(tmp_path, args)
    assert sum(int(row["episodes_shared"]) for row in rows) > 0
    assert all(float(row["train_intrinsic_reward"]) > 0 for row in rows)


def test_personal_heads_on_ray_match_sequential(tmp_path, shared_ray):
    """Each agent's own head travels back from its worker to the run's personal store."""
    args = ["--config", str(TINY_PERSONAL_CONFIG), "--trainer.num_rounds", "6"]
    sequential, on_ray, _ = fit_sequential_and_on_ray(tmp_path, args)
    assert "eval_reward_personalized" in metrics_without_timings(on_ray)[0]
    run = "lightning_logs/version_0"
    personal = sorted(p.name for p in (sequential / run / "personal").iterdir())
    assert sorted(p.name for p in (on_ray / run / "personal").iterdir()) == personal
    assert personal  # some agents trained heads of their own
    for folder in ("checkpoints/last.ckpt", *(f"personal/{name}" for name in personal)):
        expected = torch.load(sequential / run / folder, weights_only=True)
        actual = torch.load(on_ray / run / folder, weights_only=True)
        for key, value in expected["state_dict"].items():
            assert torch.equal(actual["state_dict"][key], value), (folder, key)


@pytest.mark.parametrize(
    "consensus",
    [[], ["--trainer.server.consensus=strategy", "--trainer.strategy=FedMedian"]],
    ids=["mean", "median"],
)
def test_distillation_on_ray_matches_sequential(tmp_path, consensus, shared_ray):
    """Own models of different sizes, distributions and the student; every agent every round.

    Agent 1 sends seeded noise instead of its distribution (a Byzantine attack); the
    consensus is the plain mean, or the median (``consensus: strategy``).
    """
    args = ["--config", str(TINY_DISTILL_CONFIG), "--trainer.agents_per_round", "4"]
    args += ["--data.byzantine={agents: [1], attack: random_noise}", *consensus]
    sequential, on_ray, _ = fit_sequential_and_on_ray(tmp_path, args)
    run = "lightning_logs/version_0"
    personal = sorted(p.name for p in (sequential / run / "personal").iterdir())
    assert personal == [f"agent-000{a}.ckpt" for a in range(4)]
    assert sorted(p.name for p in (on_ray / run / "personal").iterdir()) == personal
    for name in ("checkpoints/last.ckpt", *(f"personal/{name}" for name in personal)):
        expected = torch.load(sequential / run / name, weights_only=True)
        actual = torch.load(on_ray / run / name, weights_only=True)
        assert expected["state_dict"].keys() == actual["state_dict"].keys()
        for key, value in expected["state_dict"].items():
            assert torch.equal(actual["state_dict"][key], value), (name, key)
    consensus = [
        torch.load(folder / run / "checkpoints/last.ckpt", weights_only=True)["fedrl"]["shared"]
        for folder in (sequential, on_ray)
    ]
    assert torch.equal(consensus[0]["consensus"], consensus[1]["consensus"])


def test_clusters_on_ray_match_sequential(tmp_path, shared_ray):
    """Every cluster's model travels to the workers with its task; each choice comes back."""
    args = ["--config", str(TINY_IFCA_CONFIG), "--trainer.num_rounds", "6"]
    sequential, on_ray, _ = fit_sequential_and_on_ray(tmp_path, args)
    assert "cluster_assignments" in metrics_without_timings(on_ray)[0]
    last = "lightning_logs/version_0/checkpoints/last.ckpt"
    expected = torch.load(sequential / last, weights_only=True)
    actual = torch.load(on_ray / last, weights_only=True)
    assert actual["fedrl"]["shared"]["assignments"] == expected["fedrl"]["shared"]["assignments"]
    for cluster, values in enumerate(expected["fedrl"]["shared"]["clusters"]):
        for key, value in values.items():
            assert torch.equal(actual["fedrl"]["shared"]["clusters"][cluster][key], value), key


@pytest.mark.parametrize(
    "strategy",
    [
        ["--trainer.strategy", "Reptile", "--trainer.strategy.meta_lr", "0.7"],
        ["--trainer.strategy", "PerFedAvg", "--trainer.strategy.first_order", "false"],
    ],
    ids=["reptile", "per_fedavg"],
)
def test_local_adaptation_and_meta_learning_on_ray_match_sequential(tmp_path, strategy, shared_ray):
    """Per-FedAvg's meta step travels to the workers; fine-tuning runs in this process."""
    args = ["--config", str(TINY_CONFIG), "--trainer.num_rounds", "4", *strategy]
    args += ["--trainer.finetune_episodes", "2"]
    sequential, on_ray, rows = fit_sequential_and_on_ray(tmp_path, args)
    assert "eval_reward_finetuned" in rows[0]
    last = "lightning_logs/version_0/checkpoints/last.ckpt"
    expected = torch.load(sequential / last, weights_only=True)["state_dict"]
    actual = torch.load(on_ray / last, weights_only=True)["state_dict"]
    for key, value in expected.items():
        assert torch.equal(actual[key], value), key


@pytest.mark.parametrize(
    "config", [TINY_DQN_CONFIG, TINY_SAC_CONFIG, TINY_TD3_CONFIG], ids=["dqn", "sac", "td3"]
)
def test_off_policy_on_ray_matches_sequential_with_every_agent_s_memory(
    tmp_path, shared_ray, config
):
    """The agents' memory (buffer, targets, SAC's temperature) travels to the workers as bytes
    and comes back with the checkpoint; DQN's agents share episodes into their buffers."""
    sharing = ["--trainer.components+=TrajectorySharing", "--trainer.components.share_fraction=0.5"]
    dqn = config == TINY_DQN_CONFIG
    args = ["--config", str(config), *(sharing if dqn else [])]
    sequential, on_ray, rows = fit_sequential_and_on_ray(tmp_path, args)
    assert not dqn or sum(int(row["episodes_shared"]) for row in rows) > 0
    last = "lightning_logs/version_0/checkpoints/last.ckpt"
    expected = torch.load(sequential / last, weights_only=True)["state_dict"]
    actual = torch.load(on_ray / last, weights_only=True)["state_dict"]
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(actual[key], value), key
    assert_same_memory(sequential, on_ray)
