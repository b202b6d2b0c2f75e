import random
import shutil
import signal
import subprocess
import time

import pytest
import torch
from conftest import (
    TINY_CALLBACKS_CONFIG,
    TINY_CONFIG,
    TINY_DISTILL_CONFIG,
    TINY_DQN_CONFIG,
    TINY_GRADIENT_CONFIG,
    TINY_IFCA_CONFIG,
    TINY_PERSONAL_CONFIG,
    TINY_PPO_CONFIG,
    TINY_SAC_CONFIG,
    TINY_SHARING_CONFIG,
    TINY_TASKS_CONFIG,
    TINY_TD3_CONFIG,
    CliProcess,
    assert_same_memory,
    metrics_without_timings,
    run_cli,
)

RUN = "lightning_logs/version_0"
# The reference runs are fitted once, on one worker (pytest-xdist).
pytestmark = pytest.mark.xdist_group("resume")


def final_weights(cwd):
    return torch.load(cwd / RUN / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def assert_same_result(cwd, reference):
    rows = metrics_without_timings(cwd)
    assert [int(r["round"]) for r in rows] == list(range(1, len(rows) + 1))
    assert rows == metrics_without_timings(reference)
    expected = final_weights(reference)
    actual = final_weights(cwd)
    assert actual.keys() == expected.keys()
    for key in expected:
        assert torch.equal(actual[key], expected[key]), key
    assert sorted(p.name for p in (cwd / "lightning_logs").iterdir()) == ["version_0"]
    assert not list((cwd / RUN).glob("**/.*.tmp"))


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory):
    """Uninterrupted runs of the tiny config: 20 rounds, and 12 rounds of 5 episodes."""
    twenty = tmp_path_factory.mktemp("twenty")
    assert (
        run_cli(
            "fit", "--config", str(TINY_CONFIG), "--trainer.num_rounds", "30", cwd=twenty
        ).returncode
        == 0
    )
    slow = tmp_path_factory.mktemp("slow")
    result = run_cli("fit", "--config", str(TINY_CONFIG), *SLOW, cwd=slow)
    assert result.returncode == 0, result.stderr
    return {"thirty": twenty, "slow": slow}


# An episode cap below SimpleEnv's 100 steps, so that resuming covers truncation by it.
SLOW = [
    "--trainer.num_rounds",
    "12",
    "--trainer.episodes_per_round",
    "5",
    "--data.max_episode_steps",
    "80",
]


def test_extending_a_finished_run_matches_running_it_whole(tmp_path, reference_runs):
    assert (
        run_cli(
            "fit", "--config", str(TINY_CONFIG), "--trainer.num_rounds", "20", cwd=tmp_path
        ).returncode
        == 0
    )
    assert len(metrics_without_timings(tmp_path)) == 20

    result = run_cli("fit", "--ckpt_path", "last", "--trainer.num_rounds", "30", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "resumed after round 20" in result.stdout
    assert_same_result(tmp_path, reference_runs["thirty"])
    config = (tmp_path / RUN / "config.yaml").read_text()
    assert "num_rounds: 30" in config


def test_resuming_from_an_earlier_round_checkpoint_redoes_the_later_rounds(
    tmp_path, reference_runs
):
    result = run_cli(
        "fit", "--config", str(TINY_CONFIG), "--trainer.num_rounds", "30", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    round_8 = tmp_path / RUN / "checkpoints" / "round-0008.ckpt"
    (tmp_path / RUN / "metrics.csv").write_text("round\n1\n")  # whatever is there is rewritten

    result = run_cli("fit", "--ckpt_path", str(round_8), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "resumed after round 8" in result.stdout
    assert_same_result(tmp_path, reference_runs["thirty"])


def fit_with_sigkills(cwd, args):
    """Run ``fit args`` and SIGKILL it at random moments, resuming until it finishes.

    A run that finishes before its first kill proves nothing, so it is thrown away and tried
    again with shorter delays (up to six times).

    Returns:
        The delays, after the first completed round, at which a process was killed.
    """
    rng = random.Random()
    max_delay = 0.6
    for _ in range(6):
        kills = _kill_and_resume(cwd, args, rng, max_delay)
        if kills:
            return kills
        shutil.rmtree(cwd / "lightning_logs")
        max_delay /= 2
    return kills


def _kill_and_resume(cwd, args, rng, max_delay):
    kills = []
    for _ in range(4):
        process = CliProcess(*args, cwd=cwd)  # a process of its own, forked ready to run
        try:
            last = cwd / RUN / "checkpoints" / "last.ckpt"
            deadline = time.monotonic() + 120
            while not last.exists() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)  # the first attempt must complete a round to be resumable
            delay = rng.uniform(0.0, max_delay)
            try:
                process.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills.append(round(delay, 3))
            if process.returncode == 0:
                break  # finished (before its first kill, if kills is empty)
            assert process.returncode == -signal.SIGKILL, process.stderr
        finally:
            process.close()
        args = ["fit", "--ckpt_path", "last"]
    else:
        result = run_cli(*args, cwd=cwd)
        assert result.returncode == 0, result.stderr
    return kills


@pytest.mark.slow
def test_resume_after_sigkill_at_random_moments_is_bit_identical(tmp_path, reference_runs):
    kills = fit_with_sigkills(tmp_path, ["fit", "--config", str(TINY_CONFIG), *SLOW])
    assert kills, "the run finished before it could be killed"
    assert_same_result(tmp_path, reference_runs["slow"])


def killed_against_reference(tmp_path, config, *overrides):
    """``config`` (with SLOW's settings and ``overrides``) run whole, and killed and resumed.

    Returns:
        The two folders, and the whole run's output, once the killed run's metrics and final
        weights are checked to be the whole run's.
    """
    args = ["fit", "--config", str(config), *SLOW, *overrides]
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    reference.mkdir(), killed.mkdir()
    result = run_cli(*args, cwd=reference)
    assert result.returncode == 0, result.stderr
    kills = fit_with_sigkills(killed, args)
    assert kills, "the run finished before it could be killed"
    assert_same_result(killed, reference)
    return reference, killed, result


def assert_same_files(expected, actual):
    """Files given as ``{name: (round, tensors)}``: the same names, rounds and tensors."""
    assert list(actual) == list(expected)
    for name, (round_idx, tensors) in expected.items():
        assert actual[name][0] == round_idx, name
        for key, value in tensors.items():
            assert torch.equal(actual[name][1][key], value), (name, key)


def saved_files(cwd, folder, round_of):
    """Each file in the run's ``folder``: its round (``round_of`` the loaded file) and tensors."""
    files = {}
    for path in sorted((cwd / RUN / folder).iterdir()):
        saved = torch.load(path, weights_only=True)
        files[path.name] = (round_of(saved), saved["state_dict"])
    return files


META_LEARNING = {
    "reptile": ["--trainer.strategy", "Reptile", "--trainer.strategy.meta_lr", "0.7"],
    "per_fedavg": ["--trainer.strategy", "PerFedAvg", "--trainer.strategy.first_order", "false"],
}


@pytest.mark.parametrize("strategy", list(META_LEARNING))
@pytest.mark.slow
def test_local_adaptation_and_meta_learning_resume_bit_identically_after_sigkill(
    tmp_path, strategy
):
    """Fine-tuning after every round (its own streams), with Reptile or Per-FedAvg."""
    overrides = ["--trainer.finetune_episodes", "2", *META_LEARNING[strategy]]
    reference, _, _ = killed_against_reference(tmp_path, TINY_CONFIG, *overrides)
    assert "eval_reward_finetuned_per_agent/2" in metrics_without_timings(reference)[0]


@pytest.mark.slow
def test_ppo_with_observation_and_reward_normalization_resumes_bit_identically_after_sigkill(
    tmp_path,
):
    _, killed, _ = killed_against_reference(tmp_path, TINY_PPO_CONFIG)
    assert float(final_weights(killed)["policy.normalizer.count"]) > 0
    assert float(final_weights(killed)["reward_normalizer.count"]) > 0


@pytest.mark.slow
def test_callbacks_resume_bit_identically_after_sigkill(tmp_path):
    """Early stopping, every 2nd round's checkpoint with 3 kept, best by the worst agent."""
    reference, killed, result = killed_against_reference(tmp_path, TINY_CALLBACKS_CONFIG)
    assert "Stopped after round 10 of 12: EarlyStopping" in result.stdout
    checkpoints = [
        saved_files(cwd, "checkpoints", lambda c: c["fedrl"]["round"])
        for cwd in (reference, killed)
    ]
    assert list(checkpoints[0]) == [
        "best.ckpt",
        "last.ckpt",
        "round-0006.ckpt",
        "round-0008.ckpt",
        "round-0010.ckpt",
    ]
    assert_same_files(*checkpoints)


@pytest.mark.slow
def test_personal_stores_resume_bit_identically_after_sigkill(tmp_path):
    """Personal heads for half the agents on the opposite task: every agent's file too."""
    reference, killed, _ = killed_against_reference(tmp_path, TINY_PERSONAL_CONFIG)
    personal = [saved_files(cwd, "personal", lambda p: p["round"]) for cwd in (reference, killed)]
    assert list(personal[0]) == [f"agent-000{a}.ckpt" for a in range(4)]
    assert_same_files(*personal)


@pytest.mark.parametrize(
    "consensus",
    [[], ["--trainer.server.consensus=strategy", "--trainer.strategy=FedMedian"]],
    ids=["mean", "median"],
)
@pytest.mark.slow
def test_distillation_resumes_bit_identically_after_sigkill(tmp_path, consensus):
    """Own models, the consensus and the student, killed at random moments; agent 1 attacks.

    The consensus is the plain mean, or the median (``consensus: strategy``).
    """
    byzantine = "--data.byzantine={agents: [1], attack: random_noise}"  # seeded noise
    reference, killed, _ = killed_against_reference(
        tmp_path, TINY_DISTILL_CONFIG, byzantine, *consensus
    )
    personal = [saved_files(cwd, "personal", lambda p: p["round"]) for cwd in (reference, killed)]
    assert list(personal[0]) == [f"agent-000{a}.ckpt" for a in range(4)]
    assert_same_files(*personal)
    shared = [
        torch.load(cwd / RUN / "checkpoints/last.ckpt", weights_only=True)["fedrl"]["shared"]
        for cwd in (reference, killed)
    ]
    assert shared[0]["consensus_round"] == 12
    assert torch.equal(shared[0]["consensus"], shared[1]["consensus"])


@pytest.mark.slow
def test_task_scoped_heads_resume_bit_identically_after_sigkill(tmp_path):
    """Two tasks, a task-conditioned policy, heads per task: each task's head too."""
    reference, killed, _ = killed_against_reference(tmp_path, TINY_TASKS_CONFIG)

    def task_heads(cwd):
        state = torch.load(cwd / RUN / "checkpoints/last.ckpt", weights_only=True)
        return {task: (0, head) for task, head in state["fedrl"]["shared"]["tasks"].items()}

    assert sorted(task_heads(reference)) == [0, 1]
    assert_same_files(task_heads(reference), task_heads(killed))


@pytest.mark.slow
def test_clusters_resume_bit_identically_after_sigkill(tmp_path):
    """IFCA, two clusters, half the agents on the opposite task: every cluster and choice too."""
    reference, killed, _ = killed_against_reference(tmp_path, TINY_IFCA_CONFIG)

    def clusters(cwd):
        state = torch.load(cwd / RUN / "checkpoints/last.ckpt", weights_only=True)
        return state["fedrl"]["shared"]

    expected, actual = clusters(reference), clusters(killed)
    assert len(expected["clusters"]) == 2 and expected["assignments"]
    assert actual["assignments"] == expected["assignments"]
    assert actual["cluster_eval_steps"] == expected["cluster_eval_steps"]
    assert_same_files(
        {k: (0, state) for k, state in enumerate(expected["clusters"])},
        {k: (0, state) for k, state in enumerate(actual["clusters"])},
    )


@pytest.mark.slow
def test_the_shared_trajectory_buffer_resumes_bit_identically_after_sigkill(tmp_path):
    """Uploads, the FIFO buffer (over its bound of 4) and each round's replayed sample too."""
    reference, killed, _ = killed_against_reference(tmp_path, TINY_SHARING_CONFIG)

    def buffer(cwd):
        state = torch.load(cwd / RUN / "checkpoints/last.ckpt", weights_only=True)
        return state["fedrl"]["sharing"]["buffer"]["episodes"]

    expected, actual = buffer(reference), buffer(killed)
    assert len(expected["lengths"]) == 4  # full
    assert_same_files({"buffer": (0, expected)}, {"buffer": (0, actual)})
    rows = metrics_without_timings(reference)
    assert all(int(row["shared_bytes_down"]) > 0 for row in rows[1:])


# 40 steps a fit over 12 rounds, episodes of 20: the rings (of 150) wrap, truncations bootstrap.
SHORT_OFF_POLICY = ["--model.steps_per_round", "40", "--data.max_episode_steps", "20"]
OFF_POLICY_SHARING = [
    "--trainer.components+", "TrajectorySharing", "--trainer.components.share_fraction", "0.5",
]  # fmt: skip


@pytest.mark.slow
def test_dqn_and_its_agents_memory_resume_bit_identically_after_sigkill(tmp_path):
    """Each agent's replay buffer (wrapping), target network and step count too, with
    shared episodes joining the buffers."""
    reference, killed, _ = killed_against_reference(
        tmp_path, TINY_DQN_CONFIG, *SHORT_OFF_POLICY, *OFF_POLICY_SHARING
    )
    assert_same_memory(reference, killed)
    assert sum(int(row["episodes_shared"]) for row in metrics_without_timings(killed)) > 0


@pytest.mark.slow
def test_sac_and_its_agents_memory_resume_bit_identically_after_sigkill(tmp_path):
    """Each agent's buffer, target critics, temperature and update count too."""
    reference, killed, _ = killed_against_reference(tmp_path, TINY_SAC_CONFIG, *SHORT_OFF_POLICY)
    assert_same_memory(reference, killed)


@pytest.mark.slow
def test_td3_and_its_agents_memory_resume_bit_identically_after_sigkill(tmp_path):
    """Each agent's buffer, target actor and critics and update count (the delay's clock) too."""
    reference, killed, _ = killed_against_reference(tmp_path, TINY_TD3_CONFIG, *SHORT_OFF_POLICY)
    assert_same_memory(reference, killed)


@pytest.mark.slow
def test_gradient_mode_resumes_bit_identically_after_sigkill(tmp_path):
    """Gradients aggregated by FedMedian, one attacker, and Adam's moments on the server."""
    reference, killed, _ = killed_against_reference(tmp_path, TINY_GRADIENT_CONFIG)

    def adam(cwd):
        state = torch.load(cwd / RUN / "checkpoints/last.ckpt", weights_only=True)
        return state["fedrl"]["shared"]["server_optimizer"]["state"]

    expected, actual = adam(reference), adam(killed)
    assert int(expected[0]["step"]) == 12  # one server step a round
    assert_same_files(
        {k: (0, state) for k, state in expected.items()},
        {k: (0, state) for k, state in actual.items()},
    )


@pytest.mark.parametrize(
    "override",
    [
        ["--data.num_agents", "4"],
        ["--data.env_id", "CartPole-v1"],
        ["--model.hidden_dim", "32"],
        ["--seed_everything", "3"],
        ["--trainer.strategy", "FedAvg"],
    ],
)
def test_resume_refuses_to_change_the_experiment(tmp_path, override):
    assert run_cli("fit", "--config", str(TINY_CONFIG), cwd=tmp_path).returncode == 0
    before = {p: p.read_bytes() for p in (tmp_path / RUN).glob("**/*") if p.is_file()}

    result = run_cli(
        "fit", "--ckpt_path", "last", *override, "--trainer.num_rounds", "5", cwd=tmp_path
    )

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {override[0]}")
    assert "last.ckpt" in result.stderr
    after = {p: p.read_bytes() for p in (tmp_path / RUN).glob("**/*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in (tmp_path / "lightning_logs").iterdir()) == ["version_0"]


def test_resume_below_the_rounds_done_is_refused(tmp_path):
    assert run_cli("fit", "--config", str(TINY_CONFIG), cwd=tmp_path).returncode == 0
    result = run_cli("fit", "--ckpt_path", "last", "--trainer.num_rounds", "2", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: --trainer.num_rounds (2) is below the 3 rounds")


def test_resuming_a_fedadam_run_midway_is_bit_identical(tmp_path):
    fedadam = ["--config", str(TINY_CONFIG), "--trainer.strategy", "FedAdam"]
    reference = tmp_path / "whole"
    reference.mkdir()
    assert run_cli("fit", *fedadam, "--trainer.num_rounds", "6", cwd=reference).returncode == 0
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    assert run_cli("fit", *fedadam, "--trainer.num_rounds", "3", cwd=stopped).returncode == 0
    state = torch.load(stopped / RUN / "checkpoints/last.ckpt", weights_only=True)
    assert set(state["fedrl"]["strategy"]["buffers"]) == {
        "m",
        "v",
    }  # the server's moments ride along
    result = run_cli("fit", "--ckpt_path", "last", "--trainer.num_rounds", "6", cwd=stopped)
    assert result.returncode == 0, result.stderr
    assert_same_result(stopped, reference)
