import io
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import (
    TINY_CONFIG,
    TINY_DQN_CONFIG,
    TINY_SHARING_CONFIG,
    TRAINER_KWARGS,
    metrics_without_timings,
    run_cli,
)

from fedrl_lightning import A2C, PPO, AgentPopulation, EpisodeDataset, Reinforce
from fedrl_lightning.federation.components.trajectory_buffer import (
    EpisodeLayout,
    TrajectoryBuffer,
    pack_episodes,
    unpack_episodes,
)
from fedrl_lightning.federation.components.trajectory_sharing import (
    SHARED_EPISODES_KEY,
    SharingPart,
    TrajectorySharing,
    upload_choice,
)
from fedrl_lightning.federation.local_fit import AGENT_STATS_KEY, LocalFit, fit_agent
from fedrl_lightning.federation.strategies import AgentUpdate
from fedrl_lightning.federation.updates import InvalidUpdate, read_update
from fedrl_lightning.rollouts.dataset import StoredEpisode
from fedrl_lightning.rollouts.replay import ReplayBuffer
from fedrl_lightning.rollouts.transitions import TransitionDataset
from fedrl_lightning.run.checkpoints import atomic_save, policy_checkpoint, serialize
from fedrl_lightning.run.console import quiet_lightning
from fedrl_lightning.seeding import Stream, derive_seed

RUN = "lightning_logs/version_0"
LAYOUT = EpisodeLayout(observation_dim=4, num_actions=2, continuous=False)


def episode(tag: float, steps: int = 3) -> StoredEpisode:
    """A ``steps``-step episode whose rewards are all ``tag``, to tell episodes apart."""
    tag = float(tag)
    return StoredEpisode(
        observations=torch.full((steps, 4), tag),
        actions=torch.arange(steps) % 2,
        rewards=torch.full((steps,), tag),
        log_probs=torch.full((steps,), -0.5),
        terminated=True,
        truncated=False,
        final_observation=torch.zeros(4),
    )


def tags(episodes):
    return [float(e.rewards[0]) for e in episodes]


def test_the_buffer_keeps_the_newest_episodes_up_to_its_bound():
    buffer = TrajectoryBuffer(capacity=4)
    buffer.add([episode(1), episode(2), episode(3)])
    assert tags(buffer.episodes) == [1, 2, 3]
    buffer.add([episode(4), episode(5), episode(6)])
    assert len(buffer) == 4
    assert tags(buffer.episodes) == [3, 4, 5, 6]  # first in, first out


def test_a_sample_is_drawn_without_replacement_from_its_seed():
    buffer = TrajectoryBuffer(capacity=10)
    buffer.add([episode(t) for t in range(10)])
    first = tags(buffer.sample(4, seed=123))
    assert first == tags(buffer.sample(4, seed=123))
    assert first != tags(buffer.sample(4, seed=124))
    assert len(set(first)) == 4
    assert sorted(tags(buffer.sample(50, seed=1))) == list(range(10))  # all it holds
    assert TrajectoryBuffer(3).sample(2, seed=1) == []


def test_each_agent_is_sent_a_sample_from_its_share_sample_stream():
    sharing = TrajectorySharing(replay_ratio=0.5, buffer_episodes=20)
    sharing.setup(trainer_of(6, seed=5), Reinforce(), AgentPopulation(num_agents=3))
    sharing.buffer.add([episode(t) for t in range(20)])
    sent = sharing.fit_inputs(agent=2, round_idx=4)
    expected = sharing.buffer.sample(3, derive_seed(5, 4, 2, Stream.SHARE_SAMPLE))
    assert tags(sent.replay) == tags(expected)  # replay_ratio 0.5 of 6 episodes
    assert tags(sharing.fit_inputs(agent=1, round_idx=4).replay) != tags(expected)
    assert sent.share_fraction == 0.1 and sent.rho_max == 1.0 and sent.most == 6


def trainer_of(episodes_per_round, seed):
    """What a component's setup reads of the trainer."""
    return SimpleNamespace(episodes_per_round=episodes_per_round, seed=seed)


def sharing_part(most):
    return {"sharing": SharingPart((), 1.0, 1.0, LAYOUT, most)}


def test_uploads_are_a_seeded_binomial_fraction():
    seed = derive_seed(5, 1, 0, Stream.SHARE_UPLOAD)
    assert upload_choice(10, 0.3, seed) == upload_choice(10, 0.3, seed)
    assert sorted(upload_choice(10, 1.0, seed)) == list(range(10))
    counts = [len(upload_choice(4, 0.1, s)) for s in range(2000)]
    assert sum(counts) / len(counts) == pytest.approx(0.4, abs=0.05)  # 0.1 of 4, on average


def test_packed_episodes_round_trip_through_weights_only_loading():
    buffer = TrajectoryBuffer(capacity=5)
    buffer.add([episode(1, steps=2), episode(2, steps=5)])
    loaded = torch.load(io.BytesIO(serialize(buffer.state_dict())), weights_only=True)
    restored = TrajectoryBuffer(capacity=5)
    restored.load_state_dict(loaded, LAYOUT)
    assert len(restored) == 2
    for got, want in zip(restored.episodes, buffer.episodes, strict=True):
        for a, b in zip(got, want, strict=True):
            assert torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("rewards", torch.tensor([1.0, float("nan"), 1.0]), "NaN or Inf"),
        ("actions", torch.tensor([0, 2, 1]), "outside the action space"),
        ("observations", torch.zeros(3, 5), "observations"),
        ("lengths", torch.tensor([0]), "lengths"),
        ("log_probs", torch.zeros(3, dtype=torch.float64), "log_probs"),
        ("truncated", torch.tensor([True]), "both terminated and truncated"),
    ],
)
def test_unusable_shared_episodes_are_refused(field, value, reason):
    packed = pack_episodes([episode(1)]) | {field: value}
    with pytest.raises(ValueError, match=reason):
        unpack_episodes(packed, LAYOUT)
    with pytest.raises(ValueError, match="packed tensors"):
        unpack_episodes({"lengths": torch.tensor([3])}, LAYOUT)


def test_an_agent_that_shares_too_much_or_garbage_is_a_failed_update(tmp_path):
    reference = Reinforce().state_dict()
    stats = {"num_episodes": 2, "num_steps": 6, "mean_return": 1.0}

    def upload(packed):
        path = tmp_path / "agent.ckpt"
        extra = {AGENT_STATS_KEY: stats, SHARED_EPISODES_KEY: packed}
        atomic_save(policy_checkpoint(reference, {}, "Reinforce", **extra), path)
        return read_update(path, 0, reference, extras=sharing_part(2))

    assert tags(upload(pack_episodes([episode(1), episode(2)])).extras["sharing"]) == [1, 2]
    with pytest.raises(InvalidUpdate, match="more than its 2"):
        upload(pack_episodes([episode(1)] * 3))
    with pytest.raises(InvalidUpdate, match="NaN"):
        upload(pack_episodes([episode(float("inf"))]))
    with pytest.raises(InvalidUpdate, match="packed tensors"):
        upload("not episodes")


def test_a_round_counts_its_episodes_and_their_serialized_bytes():
    sharing = TrajectorySharing(buffer_episodes=3)
    sharing.setup(trainer_of(4, seed=0), Reinforce(), AgentPopulation(num_agents=3))
    sharing.buffer.add([episode(9)])
    sent = sharing.fit_inputs(agent=0, round_idx=2).replay  # 2 of the buffer's 1: 1
    state = Reinforce().state_dict()
    uploads = [[episode(1), episode(2)], [], [episode(3)]]
    updates = [
        AgentUpdate(a, state, 4, 12, 1.0, extras={"sharing": tuple(u)})
        for a, u in enumerate(uploads)
    ]
    sharing.aggregate(updates, round_idx=2)
    up = len(serialize(pack_episodes(uploads[0]))) + len(serialize(pack_episodes(uploads[2])))
    assert sharing.round_columns() == {
        "episodes_shared": 3,
        "shared_bytes_up": up,
        "shared_bytes_down": len(serialize(pack_episodes(list(sent)))),
    }
    assert tags(sharing.buffer.episodes) == [1, 2, 3]  # the bound of 3 drops the oldest


def test_a_sharing_run_counts_only_its_own_episodes_and_keeps_the_buffer(tmp_path):
    result = run_cli(
        "fit", "--config", str(TINY_SHARING_CONFIG), "--trainer.num_rounds", "4", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    rows = metrics_without_timings(tmp_path)
    assert [int(r["episodes"]) for r in rows] == [4, 8, 12, 16]  # replayed ones not counted
    assert int(rows[0]["shared_bytes_down"]) == 0  # the buffer starts empty
    assert all(int(r["shared_bytes_down"]) > 0 for r in rows[1:])
    shared = sum(int(r["episodes_shared"]) for r in rows)
    assert shared > 4 and all(
        int(r["shared_bytes_up"]) > 0 for r in rows if r["episodes_shared"] != "0"
    )
    last = torch.load(tmp_path / RUN / "checkpoints/last.ckpt", weights_only=True)
    buffer = last["fedrl"]["sharing"]["buffer"]
    assert len(buffer["episodes"]["lengths"]) == min(4, shared)  # the config's bound


@pytest.mark.parametrize("learner", [Reinforce, A2C, PPO])
def test_a_local_fit_replays_shared_episodes_and_uploads_some_of_its_own(tmp_path, learner):
    """Each learner's off-policy path runs: the replayed episodes change the weights only."""
    other = learner(hidden_dim=8)  # a behaviour policy of other weights
    dataset = EpisodeDataset(
        gym.make("fedrl/Simple-v0"), other.policy, 4, 4, 0.9, 3, 4, keep_episodes=True
    )
    list(dataset)
    torch.manual_seed(0)
    start = learner(hidden_dim=8).state_dict()

    def fit(name, replay):
        task = LocalFit(
            agent_id=1, round_idx=2, run_seed=7, module_class=learner,
            model_hparams={"hidden_dim": 8}, global_state=start, num_episodes=3,
            checkpoint_path=tmp_path / name, trainer_kwargs=TRAINER_KWARGS,
            extras={"sharing": SharingPart(tuple(replay), 1.0, 1.5, LAYOUT, 3)},
        )  # fmt: skip
        with quiet_lightning(verbose=False):
            fit_agent(task, AgentPopulation(num_agents=3))
        return read_update(tmp_path / name, 1, start, extras=task.extras)

    alone, replaying = fit("alone.ckpt", []), fit("replaying.ckpt", dataset.kept)
    assert alone.num_episodes == replaying.num_episodes == 3  # own episodes only
    assert alone.num_steps == replaying.num_steps
    assert len(replaying.extras["sharing"]) == 3  # share_fraction 1: every own episode
    assert [len(e.rewards) for e in replaying.extras["sharing"]] == [
        len(e.rewards) for e in alone.extras["sharing"]
    ]
    assert any(not torch.equal(alone.state_dict[k], replaying.state_dict[k]) for k in start)


class Counter(gym.Env):
    """Observation ``[1000 + t]`` after ``t`` steps, 100 more after each reset; reward 1; a
    3-step time limit (truncated) on the first episode, then 2-step terminal ones."""

    observation_space = gym.spaces.Box(-1e4, 1e4, (1,), dtype=np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0 if seed else self.t + 100
        self.episode_t, self.limit = 0, 3 if seed else 2
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        self.episode_t += 1
        ends = self.episode_t == self.limit
        return self._obs(), 1.0, ends and self.limit == 2, ends and self.limit == 3, {}

    def _obs(self):
        return np.array([1000 + self.t], dtype=np.float32)


def test_shared_episodes_join_an_off_policy_buffer_before_its_own_steps():
    """Two shared episodes (terminated, then truncated), then the fit's own 6 steps: every
    transition by hand, the shared ones counted for the first minibatch but not as the
    agent's steps, and the fit's own whole episodes kept to share."""
    shared = [
        episode(5.0, steps=2),
        episode(7.0, steps=1)._replace(terminated=False, truncated=True),
    ]
    shared = [e._replace(observations=e.observations[:, :1], final_observation=torch.ones(1))
              for e in shared]  # fmt: skip
    buffer = ReplayBuffer(20, (1,))
    dataset = TransitionDataset(
        Counter(), buffer, lambda observation, t: 1, num_steps=6, start_step=0, train_freq=1,
        gradient_steps=1, learning_starts=0, batch_size=4, n_step=1, gamma=0.9, env_seed=1,
        sample_seed=0, replay=shared, keep_episodes=True,
    )  # fmt: skip
    items = list(dataset)

    # 3 shared transitions held: the first minibatch comes after the agent's first step
    assert len(items) == len(dataset) == 6 + 1 and items[0].agent_steps == 1
    state = buffer.state_dict()
    assert state["observations"].flatten().tolist() == [5, 5, 7, 1000, 1001, 1002, 1103, 1104, 1205]
    assert state["rewards"].flatten().tolist() == [5, 5, 7, 1, 1, 1, 1, 1, 1]
    assert state["actions"].flatten().tolist() == [0, 1, 0, 1, 1, 1, 1, 1, 1]
    assert state["terminated"].flatten().tolist() == [0, 1, 0, 0, 0, 0, 0, 1, 0]
    assert state["truncated"].flatten().tolist() == [0, 0, 1, 0, 0, 1, 0, 0, 0]
    # the shared episodes' final observations, and the own truncated one's, kept apart
    assert state["final_observations"].flatten().tolist() == [1, 1, 1003, 1105]
    kept = dataset.kept  # whole episodes only: the third, cut by the fit's end, is not
    assert [e.observations.flatten().tolist() for e in kept] == [[1000, 1001, 1002], [1103, 1104]]
    assert [(e.terminated, e.truncated) for e in kept] == [(False, True), (True, False)]
    assert [e.final_observation.item() for e in kept] == [1003, 1105]
    assert all(e.actions.dtype == torch.int64 and not e.log_probs.any() for e in kept)


def test_an_off_policy_run_shares_into_its_agents_buffers(tmp_path):
    """DQN with sharing: uploads and downloads counted, and an agent's buffer holds more
    transitions than it took itself (the buffer holds all of them)."""
    args = [
        "fit", "--config", str(TINY_DQN_CONFIG), "--trainer.components+", "TrajectorySharing",
        "--trainer.components.share_fraction", "0.5", "--trainer.components.replay_ratio", "1",
        "--data.max_episode_steps", "20", "--model.init_args.buffer_size", "1000",
    ]  # fmt: skip
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = metrics_without_timings(tmp_path)
    assert all(int(row["episodes_shared"]) > 0 for row in rows)
    assert int(rows[0]["shared_bytes_down"]) == 0 < int(rows[-1]["shared_bytes_down"])
    files = sorted((tmp_path / RUN / "memory").glob("agent-*.ckpt"))
    memories = [torch.load(path, weights_only=True)["memory"] for path in files]
    held = [ReplayBuffer.from_state_dict(m["replay"], "memory") for m in memories]
    assert any(len(b) > m["agent_steps"] for b, m in zip(held, memories, strict=True))


POISON = ["--data.byzantine", "{agents: 3, attack: poison_trajectories, scale: 10}"]


def test_poisoned_trajectories_change_nothing_without_sharing(tmp_path, tiny_run):
    clean, _ = tiny_run
    assert run_cli("fit", "--config", str(TINY_CONFIG), *POISON, cwd=tmp_path).returncode == 0
    rows = zip(metrics_without_timings(clean), metrics_without_timings(tmp_path), strict=True)
    for row, poisoned_row in rows:
        assert poisoned_row.pop("num_byzantine_agents") == "2"  # every agent, sampled 2 a round
        assert len(poisoned_row.pop("byzantine_agents").split()) == 2
        del row["num_byzantine_agents"], row["byzantine_agents"]
        assert poisoned_row == row  # their weights and statistics are honest
    weights = [
        torch.load(cwd / RUN / "checkpoints/last.ckpt", weights_only=True)["state_dict"]
        for cwd in (clean, tmp_path)
    ]
    for key, value in weights[0].items():
        assert torch.equal(weights[1][key], value), key


def test_poisoned_trajectories_are_the_honest_episodes_with_inflated_rewards(tmp_path):
    """The attack changes what the agent uploads, not what it trains on or sends."""
    start = Reinforce(hidden_dim=8).state_dict()

    def fit(name, byzantine):
        task = LocalFit(
            agent_id=1, round_idx=2, run_seed=7, module_class=Reinforce,
            model_hparams={"hidden_dim": 8}, global_state=start, num_episodes=4,
            checkpoint_path=tmp_path / name, trainer_kwargs=TRAINER_KWARGS,
            extras={"sharing": SharingPart((), 0.5, 1.0, LAYOUT, 4)},
        )  # fmt: skip
        with quiet_lightning(verbose=False):
            fit_agent(task, AgentPopulation(num_agents=3, byzantine=byzantine))
        return read_update(tmp_path / name, 1, start, extras=task.extras)

    honest = fit("honest.ckpt", None)
    poisoned = fit("poisoned.ckpt", {"agents": [1], "attack": "poison_trajectories", "scale": 10})
    uploads = honest.extras["sharing"], poisoned.extras["sharing"]
    assert len(uploads[0]) == len(uploads[1]) > 0
    for a, b in zip(*uploads, strict=True):
        assert torch.equal(a.observations, b.observations)
        assert torch.allclose(a.rewards * 10, b.rewards)
    assert poisoned.mean_return == honest.mean_return
    for key, value in honest.state_dict.items():
        assert torch.equal(poisoned.state_dict[key], value), key
