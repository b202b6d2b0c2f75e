import gymnasium as gym
import numpy as np
import torch
from conftest import fit_locally
from torch.utils.data import DataLoader

import fedrl_lightning  # noqa: F401
from fedrl_lightning import EpisodeDataset, Reinforce
from fedrl_lightning.rollouts.returns import discounted_returns


def make_dataset(policy, num_episodes=7, per_update=3, env_id="fedrl/Simple-v0", gamma=0.9):
    return EpisodeDataset(
        env=gym.make(env_id),
        policy=policy,
        num_episodes=num_episodes,
        episodes_per_update=per_update,
        gamma=gamma,
        env_seed=1,
        action_seed=2,
    )


def test_batches_hold_whole_episodes():
    module = Reinforce()
    dataset = make_dataset(module.policy)
    batches = list(dataset)
    assert len(dataset) == 3
    assert [b.actions.shape[0] for b in batches] == [3, 3, 1]
    for batch in batches:
        assert batch.observations.shape[1:] == (100, 4)
        assert batch.mask.all()
        assert batch.observations.dtype == torch.float32


def test_returns_are_discounted_rewards_and_padding_is_masked():
    module = Reinforce(observation_dim=4, num_actions=2)
    dataset = make_dataset(module.policy, num_episodes=6, per_update=6, env_id="CartPole-v1")
    (batch,) = list(dataset)
    lengths = batch.mask.sum(dim=1)
    assert len(set(lengths.tolist())) > 1  # episodes of different lengths were padded
    for i, length in enumerate(lengths.tolist()):
        # CartPole pays 1 per step until the pole falls
        expected = discounted_returns([1.0] * length, 0.9)
        assert torch.allclose(batch.returns[i, :length], torch.tensor(expected))
        assert (batch.returns[i, length:] == 0).all()
        assert batch.episode_returns[i].item() == length


def test_same_seeds_same_episodes():
    module = Reinforce()
    first = list(make_dataset(module.policy))
    second = list(make_dataset(module.policy))
    for a, b in zip(first, second, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_every_batch_is_rolled_out_after_the_previous_update():
    """The rollout of batch k uses exactly the weights that training step k starts from."""
    rollout_weights, step_weights = [], []

    class RecordingModule(Reinforce):
        def training_step(self, batch, batch_idx):
            step_weights.append(self.policy.head.weight.detach().clone())
            return super().training_step(batch, batch_idx)

    module = RecordingModule(lr=0.05)
    make_actor = module.policy.actor

    def recording_actor():  # the dataset takes an actor for every batch it rolls out
        rollout_weights.append(module.policy.head.weight.detach().clone())
        return make_actor()

    module.policy.actor = recording_actor
    dataset = EpisodeDataset(gym.make("fedrl/Simple-v0"), module.policy, 5, 1, 0.99, 0, 0)
    fit_locally(module, DataLoader(dataset, batch_size=None))
    assert len(rollout_weights) == len(step_weights) == 5
    for rolled, stepped in zip(rollout_weights, step_weights, strict=True):
        assert torch.equal(rolled, stepped)
    assert not torch.equal(step_weights[0], step_weights[-1])


class CountingEnv(gym.Env):
    """Observes the step count; step ``t`` pays ``t + 1``; terminates after ``length`` steps."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length):
        self.length = length
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        reward = float(self.t)
        return np.array([self.t], np.float32), reward, self.t == self.length, False, {}


def test_returns_stop_at_termination_and_truncation_and_never_cross_a_reset():
    # Sub-env 0 terminates after 2 steps; sub-env 1 is cut by its time limit after 3.
    env = gym.vector.SyncVectorEnv(
        [
            lambda: gym.wrappers.TimeLimit(CountingEnv(length=2), max_episode_steps=5),
            lambda: gym.wrappers.TimeLimit(CountingEnv(length=10), max_episode_steps=3),
        ]
    )
    policy = Reinforce(observation_dim=1).policy
    dataset = EpisodeDataset(
        env, policy, num_episodes=4, episodes_per_update=4, gamma=0.5, env_seed=0, action_seed=0
    )
    (batch,) = list(dataset)  # two lock-step waves of two episodes
    assert batch.mask.sum(1).tolist() == [2, 3, 2, 3]
    assert batch.episode_returns.tolist() == [3.0, 6.0, 3.0, 6.0]
    # by hand, gamma 0.5: [1 + 0.5 * 2, 2] and [1 + 0.5 * (2 + 0.5 * 3), 2 + 0.5 * 3, 3]
    expected = [[2.0, 2.0, 0.0], [2.75, 3.5, 3.0]] * 2
    assert batch.returns.tolist() == expected
    assert batch.observations[..., 0].tolist() == [[0, 1, 0], [0, 1, 2]] * 2
    # sub-env 0 autoresets while sub-env 1 finishes: its final observation is still [2]
    assert batch.terminated.tolist() == [True, False] * 2
    assert batch.truncated.tolist() == [False, True] * 2
    assert batch.final_observations.tolist() == [[2.0], [3.0]] * 2
    assert batch.rewards.tolist() == [[1.0, 2.0, 0.0], [1.0, 2.0, 3.0]] * 2
