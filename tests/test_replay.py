"""The per-agent replay buffer: next observations, dones, n-step returns, the ring, saving."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from fedrl_lightning.rollouts.replay import ReplayBatch, ReplayBuffer

GAMMA = 0.5  # powers of 0.5 are exact in float32, so the sums below compare exactly


def two_env_buffer() -> ReplayBuffer:
    """Two envs, observations are numbers, five steps.

    env 0: 0 -> 1 -> 2 -> 3 terminates (reward 5); reset to 10 -> 11 -> 12.
    env 1: 100 -> 101 -> 102 truncated (reward 4); reset to 200 -> 201 -> 202 -> 203.
    """
    buffer = ReplayBuffer(8, (1,), num_envs=2)
    steps = [  # obs, next_obs (the final one at an episode end), rewards, terminated, truncated
        ([0, 100], [1, 101], [1, 2], [0, 0], [0, 0]),
        ([1, 101], [2, 102], [3, 4], [0, 0], [0, 1]),
        ([2, 200], [3, 201], [5, 6], [1, 0], [0, 0]),
        ([10, 201], [11, 202], [7, 8], [0, 0], [0, 0]),
        ([11, 202], [12, 203], [9, 10], [0, 0], [0, 0]),
    ]
    for obs, next_obs, rewards, terminated, truncated in steps:
        buffer.add(
            np.array(obs, dtype=np.float64)[:, None],
            np.array(next_obs, dtype=np.float64)[:, None],
            np.array(obs) % 3,  # a discrete action per env
            np.array(rewards, dtype=np.float32),
            np.array(terminated, dtype=bool),
            np.array(truncated, dtype=bool),
        )
    return buffer


def draw(buffer: ReplayBuffer, seed: int, n_step: int = 1) -> ReplayBatch:
    """Forty batches of every stored transition's size, joined: each transition shows up."""
    generator = torch.Generator().manual_seed(seed)
    batches = [buffer.sample(len(buffer), generator, n_step, GAMMA) for _ in range(40)]
    return ReplayBatch(*(torch.cat(parts) for parts in zip(*batches, strict=True)))


def transitions(batch: ReplayBatch) -> dict[float, tuple[float, float, float, float]]:
    """Each sampled observation's (reward, next observation, done, discount)."""
    seen: dict[float, tuple[float, float, float, float]] = {}
    for i in range(len(batch.rewards)):
        row = (
            batch.rewards[i].item(),
            batch.next_observations[i, 0].item(),
            batch.dones[i].item(),
            batch.discounts[i].item(),
        )
        assert seen.setdefault(batch.observations[i, 0].item(), row) == row
    return seen


def test_next_observations_and_dones_by_hand() -> None:
    buffer = two_env_buffer()
    assert len(buffer) == 10
    batch = draw(buffer, 0)
    assert transitions(batch) == {
        0: (1, 1, 0, 0.5),
        1: (3, 2, 0, 0.5),
        2: (5, 3, 1, 0.5),  # terminated: its final observation, done
        10: (7, 11, 0, 0.5),
        11: (9, 12, 0, 0.5),  # the newest step
        100: (2, 101, 0, 0.5),
        101: (4, 102, 0, 0.5),  # truncated: its final observation, bootstrapped through
        200: (6, 201, 0, 0.5),
        201: (8, 202, 0, 0.5),
        202: (10, 203, 0, 0.5),
    }
    assert torch.equal(batch.actions, batch.observations[:, 0].long() % 3)
    counts = torch.unique(batch.observations, return_counts=True)[1]
    assert len(counts) == 10 and counts.min() > 20 and counts.max() < 60  # 40 each, uniform
    assert batch.observations.dtype == batch.next_observations.dtype == torch.float32
    # each observation is stored once; only the two episodes' final ones are kept apart
    state = buffer.state_dict()
    assert state["observations"].shape == (5, 2, 1)
    assert state["final_index"].tolist() == [1 * 2 + 1, 2 * 2 + 0]
    assert state["final_observations"].flatten().tolist() == [102, 3]


def test_n_step_returns_by_hand() -> None:
    buffer = two_env_buffer()
    batch = draw(buffer, 1, n_step=3)
    assert transitions(batch) == {
        0: (1 + 0.5 * 3 + 0.25 * 5, 3, 1, 0.125),  # terminates on the third step
        1: (3 + 0.5 * 5, 3, 1, 0.25),  # terminates on the second step
        2: (5, 3, 1, 0.5),
        10: (7 + 0.5 * 9, 12, 0, 0.25),  # the data ends after two steps
        11: (9, 12, 0, 0.5),
        100: (2 + 0.5 * 4, 102, 0, 0.25),  # truncated on the second step: bootstrap from 102
        101: (4, 102, 0, 0.5),
        200: (6 + 0.5 * 8 + 0.25 * 10, 203, 0, 0.125),  # three full steps
        201: (8 + 0.5 * 10, 203, 0, 0.25),
        202: (10, 203, 0, 0.5),
    }


def one_env(buffer: ReplayBuffer, obs: float, next_obs: float, reward: float, **ends: bool) -> None:
    buffer.add(
        [[obs]],
        [[next_obs]],
        [0],
        [reward],
        [ends.get("terminated", False)],
        [ends.get("truncated", False)],
    )


def test_wrap_around_keeps_next_observations_and_frees_finals() -> None:
    buffer = ReplayBuffer(3, (1,))
    one_env(buffer, 0, 1, 0)
    one_env(buffer, 1, 2, 1, terminated=True)
    one_env(buffer, 5, 6, 2)
    assert buffer.full and buffer.pos == 0
    one_env(buffer, 6, 7, 3)  # overwrites 0 -> 1
    one_env(buffer, 7, 8, 4, truncated=True)  # overwrites 1 -> 2 and frees its final 2
    one_env(buffer, 20, 21, 5)  # overwrites 5 -> 6
    assert len(buffer) == 3 and buffer.pos == 0
    batch = draw(buffer, 2)
    assert transitions(batch) == {6: (3, 7, 0, 0.5), 7: (4, 8, 0, 0.5), 20: (5, 21, 0, 0.5)}
    state = buffer.state_dict()
    assert state["final_observations"].flatten().tolist() == [8]


def test_n_step_runs_across_the_wrap() -> None:
    buffer = ReplayBuffer(3, (1,))
    for step in range(7):  # one long episode: rows hold steps 6, 4, 5
        one_env(buffer, step, step + 1, step)
    assert buffer.pos == 1
    batch = draw(buffer, 3, n_step=3)
    assert transitions(batch) == {
        4: (4 + 0.5 * 5 + 0.25 * 6, 7, 0, 0.125),  # rows 1, 2, then 0
        5: (5 + 0.5 * 6, 7, 0, 0.25),
        6: (6, 7, 0, 0.5),
    }


def test_a_step_that_does_not_continue_keeps_the_previous_next_observation() -> None:
    # gymnasium's next-step auto-reset: the reset step is not added, so a final observation
    # may equal the reset one (then nothing is kept apart), and a step may not continue the
    # previous one though nothing ended (then its next observation is kept apart)
    buffer = ReplayBuffer(6, (1,))
    one_env(buffer, 0, 1, 1)
    one_env(buffer, 1, 2, 2, terminated=True)  # reset to 2
    one_env(buffer, 2, 3, 3, truncated=True)  # reset to 3
    one_env(buffer, 3, 4, 4)
    one_env(buffer, 9, 10, 5)
    batch = draw(buffer, 4, n_step=3)
    assert transitions(batch) == {
        0: (1 + 0.5 * 2, 2, 1, 0.25),  # stops at the termination
        1: (2, 2, 1, 0.5),
        2: (3, 3, 0, 0.5),  # stops at the truncation, bootstrapped from its final 3
        3: (4, 4, 0, 0.5),  # stops: its next observation is not the following row
        9: (5, 10, 0, 0.5),
    }
    assert buffer.state_dict()["final_index"].tolist() == [3]


def test_overwritten_final_observations_are_reused() -> None:
    buffer = ReplayBuffer(3, (1,))
    sizes = []
    for step in range(60):  # one-step episodes: every transition keeps a final observation
        one_env(buffer, 2 * step, 2 * step + 1, 0, terminated=True)
        sizes.append(buffer.nbytes)
    assert sizes[10] == sizes[-1]
    assert buffer.state_dict()["final_observations"].flatten().tolist() == [115, 117]


def test_save_and_load_restore_exactly(tmp_path) -> None:
    buffer = two_env_buffer()
    path = tmp_path / "replay.pt"
    for _ in range(2):  # half full, then after the ring wrapped
        buffer.save(path)
        assert set(torch.load(path, weights_only=True)) == set(buffer.state_dict())
        loaded = ReplayBuffer.load(path)
        assert (loaded.pos, loaded.full, len(loaded)) == (buffer.pos, buffer.full, len(buffer))
        for _ in range(5):  # the same batches, and the same after more steps
            generator = torch.Generator().manual_seed(7)
            first = buffer.sample(8, generator, n_step=2, gamma=0.9)
            second = loaded.sample(8, generator.manual_seed(7), n_step=2, gamma=0.9)
            for a, b in zip(first, second, strict=True):
                assert a.dtype == b.dtype and torch.equal(a, b)
            for target in (buffer, loaded):
                target.add([[12], [203]], [[13], [0]], [1, 2], [0.5, 0.25], [0, 0], [0, 1])
        for name, value in buffer.state_dict().items():
            other = loaded.state_dict()[name]
            assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other
    assert buffer.full


def test_memory_and_disk_follow_what_is_filled(tmp_path) -> None:
    small, large = tmp_path / "small.pt", tmp_path / "large.pt"
    buffer = ReplayBuffer(100_000, (64,), num_envs=2)
    for step in range(10):
        buffer.add(
            torch.full((2, 64), step), torch.full((2, 64), step + 1), [0, 1], [0, 0], [0, 0], [0, 0]
        )
    assert buffer.nbytes < 16 * 2 * 64 * 4 * 2  # 16 rows at most, not 100,000
    buffer.save(small)
    for step in range(10, 200):
        buffer.add(
            torch.full((2, 64), step), torch.full((2, 64), step + 1), [0, 1], [0, 0], [0, 0], [0, 0]
        )
    buffer.save(large)
    assert small.stat().st_size < 20_000 < 2 * 200 * 64 * 4 < large.stat().st_size


def test_uint8_space_is_stored_as_uint8_with_continuous_actions() -> None:
    buffer = ReplayBuffer.from_spaces(
        5,
        spaces.Box(0, 255, (2, 2), np.uint8),
        spaces.Box(-1.0, 1.0, (3,), np.float32),
        num_envs=2,
    )
    obs = np.arange(8, dtype=np.uint8).reshape(2, 2, 2) + 250
    action = np.array([[0.5, -0.25, 1.0], [0.0, 0.125, -1.0]], dtype=np.float32)
    buffer.add(obs, obs + 1, action, [1.0, 2.0], [False, False], [False, True])
    batch = buffer.sample(2, torch.Generator().manual_seed(5))
    assert buffer.state_dict()["observations"].dtype == torch.uint8
    assert batch.observations.dtype == batch.next_observations.dtype == torch.uint8
    assert batch.actions.dtype == torch.float32
    for i in range(2):
        env = int(batch.rewards[i].item()) - 1
        assert torch.equal(batch.observations[i], torch.from_numpy(obs[env]))
        assert torch.equal(batch.next_observations[i], torch.from_numpy(obs[env] + 1))
        assert torch.equal(batch.actions[i], torch.from_numpy(action[env]))
    discrete = ReplayBuffer.from_spaces(5, spaces.Box(-1, 1, (3,)), spaces.Discrete(4))
    assert discrete.observation_dtype == torch.float32 and discrete.action_dtype == torch.int64


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ReplayBuffer(0, (1,)), "buffer_size must be an integer of at least 1, got 0"),
        (lambda: ReplayBuffer(4, (1,), num_envs=0), "num_envs must be"),
        (lambda: two_env_buffer().sample(11, torch.Generator()), r"batch_size \(11\) is more"),
        (lambda: two_env_buffer().sample(0, torch.Generator()), "batch_size must be"),
        (lambda: two_env_buffer().sample(2, torch.Generator(), n_step=0), "n_step must be"),
        (lambda: two_env_buffer().sample(2, torch.Generator(), gamma=1.5), "gamma must be"),
        (
            lambda: two_env_buffer().add([[0]], [[1], [2]], [0, 0], [0, 0], [0, 0], [0, 0]),
            r"obs must have shape \(2, 1\), got \(1, 1\)",
        ),
        (
            lambda: two_env_buffer().add([[0], [1]], [[1], [2]], [0.5, 0], [0, 0], [0, 0], [0, 0]),
            "actions must hold integers",
        ),
        (
            lambda: two_env_buffer().add([[0], [1]], [[1], [2]], [0, 0], [0], [0, 0], [0, 0]),
            "rewards must have shape",
        ),
        (
            lambda: ReplayBuffer(9, (1,), num_envs=2).load_state_dict(
                two_env_buffer().state_dict()
            ),
            "replay state has buffer_size 8, not 9",
        ),
        (
            lambda: ReplayBuffer.from_spaces(4, spaces.Box(-1, 1, (2,)), spaces.Text(3)),
            "action_space must be",
        ),
    ],
)
def test_bad_input_is_named(make, message) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_a_vector_env_s_transitions_come_back_exactly() -> None:
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.make("CartPole-v1", max_episode_steps=15)] * 2,
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    buffer = ReplayBuffer.from_spaces(
        64, envs.single_observation_space, envs.single_action_space, 2
    )
    recorded, ends = {}, np.zeros(2, dtype=int)
    obs, _ = envs.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(100):  # wraps the ring; episodes end by termination and by truncation
        actions = rng.integers(0, 2, size=2)
        next_obs, rewards, terminated, truncated, infos = envs.step(actions)
        real_next = next_obs.copy()
        for env in np.flatnonzero(terminated | truncated):
            real_next[env] = infos["final_obs"][env]
        buffer.add(obs, real_next, actions, rewards, terminated, truncated)
        ends += [(terminated & ~truncated).sum(), truncated.sum()]
        for env in range(2):
            recorded[obs[env].tobytes()] = (real_next[env], actions[env], terminated[env])
        obs = next_obs
    envs.close()
    assert (ends > 2).all()  # terminations and truncations both
    batch = draw(buffer, 6)
    for i in range(len(batch.rewards)):
        next_obs, action, terminated = recorded[batch.observations[i].numpy().tobytes()]
        assert np.array_equal(batch.next_observations[i].numpy(), next_obs)
        assert (batch.actions[i].item(), batch.dones[i].item()) == (action, float(terminated))


def test_a_file_that_is_not_a_replay_buffer_is_refused(tmp_path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="does not hold a replay buffer's settings"):
        ReplayBuffer.load(path)
    state = two_env_buffer().state_dict()
    state["final_index"] = torch.tensor([10])
    with pytest.raises(ValueError, match="final_index points outside the filled rows"):
        ReplayBuffer(8, (1,), num_envs=2).load_state_dict(state)
