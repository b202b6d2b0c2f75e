"""Reward normalisation: VecNormalize's scale by hand, pooled across agents as statistics."""

import numpy as np
import pytest
import torch
from conftest import fit_cartpole_federation, fit_locally
from torch.utils.data import DataLoader

from fedrl_lightning import A2C, PPO, EpisodeBatch, FedAvg, load_module
from fedrl_lightning.federation.server.aggregation import aggregate_round
from fedrl_lightning.federation.strategies import AgentUpdate, FedMedian
from fedrl_lightning.policy.normalization import RewardNormalizer, RunningMeanStd
from fedrl_lightning.rollouts.returns import running_returns
from fedrl_lightning.run.checkpoints import load_checkpoint

NORMALIZER = "reward_normalizer"


def tiny_batch() -> EpisodeBatch:
    """Two CartPole-shaped episodes: rewards 1, 2, 3 (truncated) and 4, 5 (terminated)."""
    return EpisodeBatch(
        observations=torch.zeros(2, 3, 4),
        actions=torch.zeros(2, 3, dtype=torch.int64),
        returns=torch.zeros(2, 3),
        mask=torch.tensor([[True, True, True], [True, True, False]]),
        episode_returns=torch.tensor([6.0, 9.0]),
        rewards=torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 0.0]]),
        terminated=torch.tensor([False, True]),
        truncated=torch.tensor([True, False]),
        final_observations=torch.zeros(2, 4),
        log_probs=torch.full((2, 3), float(np.log(0.5))),
    )


def returns_so_far(episodes: list[list[float]], gamma: float) -> list[float]:
    """``R_t = gamma * R_{t-1} + r_t`` of every step, episode by episode, in plain Python."""
    returns = []
    for rewards in episodes:
        running = 0.0
        for reward in rewards:
            running = gamma * running + reward
            returns.append(running)
    return returns


def test_running_returns_restart_at_each_episode_and_are_zero_on_padding():
    batch = tiny_batch()
    returns = running_returns(batch.rewards, batch.mask, gamma=0.5)
    # 1, 0.5 * 1 + 2 = 2.5, 0.5 * 2.5 + 3 = 4.25; then 4, 0.5 * 4 + 5 = 7.
    assert returns.tolist() == [[1.0, 2.5, 4.25], [4.0, 7.0, 0.0]]
    assert returns.dtype == torch.float64


@pytest.mark.parametrize("learner", [A2C, PPO])
def test_a_training_step_scales_rewards_by_the_spread_of_the_returns_before_gae(learner):
    seen = []

    class Watched(learner):
        def advantages_and_returns(self, batch, values):
            seen.append(batch.rewards.clone())
            return super().advantages_and_returns(batch, values)

    torch.manual_seed(0)
    module = Watched(gamma=0.5, hidden_dim=4, normalize_rewards=True)
    fit_locally(module, DataLoader([tiny_batch()], batch_size=None))

    # The returns so far are 1, 2.5, 4.25, 4 and 7: mean 3.75, squared deviations 7.5625,
    # 1.5625, 0.25, 0.0625 and 10.5625, so M2 = 20 and var = 20 / 5 = 4. The batch's rewards
    # are scaled by 1 / sqrt(4 + 1e-8), about a half, with its own returns folded in first.
    half = 1 / np.sqrt(4 + 1e-8)
    expected = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 0.0]]) * half
    assert len(seen) == 1
    torch.testing.assert_close(seen[0], expected.float(), rtol=0, atol=1e-7)
    assert float(module.reward_normalizer.count) == 5
    assert module.reward_normalizer.mean.tolist() == [3.75]
    assert module.reward_normalizer.m2.tolist() == pytest.approx([20.0], rel=1e-12)
    sent = module.fit_statistics()[NORMALIZER]
    assert sent["count"] == 5 and sent["mean"].tolist() == [3.75]
    # What the fit reports is the environment's return, not the scaled one.
    assert module.agent_stats()["mean_return"] == pytest.approx(7.5)

    # With var 4, a reward of 30 scales to 15 and is clipped to 10; -50 to -10.
    scaled = module.reward_normalizer(torch.tensor([[30.0, -50.0, 1.0]]))
    torch.testing.assert_close(scaled, torch.tensor([[10.0, -10.0, float(half)]]))


def test_before_any_return_rewards_are_only_clipped():
    scaled = RewardNormalizer(gamma=0.99)(torch.tensor([[3.0, -20.0, 0.0]]))
    assert scaled.tolist() == [[3.0, -10.0, 0.0]]


@pytest.mark.parametrize("strategy", [FedAvg(), FedMedian()], ids=["FedAvg", "FedMedian"])
def test_the_server_pools_agents_return_statistics_into_those_of_all_their_returns(strategy):
    gamma = 0.9
    rng = np.random.default_rng(3)

    def episodes(n: int, low: int, high: int, loc: float) -> list[list[float]]:
        # float32 values, as a batch's rewards are, so both sides add the same numbers.
        sizes = rng.integers(low, high, size=n)
        return [list(rng.normal(loc, 1.0, size).astype(np.float32).astype(float)) for size in sizes]

    def as_batch(rewards: list[list[float]]) -> tuple[torch.Tensor, torch.Tensor]:
        steps = max(map(len, rewards))
        padded = torch.zeros(len(rewards), steps)
        mask = torch.zeros(len(rewards), steps, dtype=torch.bool)
        for i, episode in enumerate(rewards):
            padded[i, : len(episode)] = torch.tensor(episode)
            mask[i, : len(episode)] = True
        return padded, mask

    seen_before = episodes(4, 5, 30, -1.0)
    agent_a = [episodes(3, 10, 20, 2.0), episodes(2, 1, 50, 0.5)]  # two batches
    agent_b = [episodes(6, 100, 200, -3.0)]
    start = PPO(normalize_rewards=True, gamma=gamma, hidden_dim=8)
    start.reward_normalizer.observe_episodes(*as_batch(seen_before))
    global_state = start.state_dict()
    updates = []
    for agent_id, batches in enumerate([agent_a, agent_b]):
        module = PPO(normalize_rewards=True, gamma=gamma, hidden_dim=8)
        module.load_state_dict(global_state)
        module.reward_normalizer.start_fit()
        for rewards in batches:
            module.reward_normalizer.observe_episodes(*as_batch(rewards))
        fit = RunningMeanStd(1)
        fit.load_state_dict(module.fit_statistics()[NORMALIZER])
        updates.append(AgentUpdate(agent_id, module.state_dict(), 1, 1, 0.0, {NORMALIZER: fit}))

    new_state = aggregate_round(strategy, global_state, updates, [NORMALIZER])

    every_episode = seen_before + [e for batches in agent_a + agent_b for e in batches]
    pooled = np.array(returns_so_far(every_episode, gamma))
    assert float(new_state[f"{NORMALIZER}.count"]) == len(pooled)
    np.testing.assert_allclose(new_state[f"{NORMALIZER}.mean"].numpy(), [pooled.mean()], rtol=1e-12)
    np.testing.assert_allclose(
        new_state[f"{NORMALIZER}.m2"].numpy() / len(pooled), [pooled.var()], rtol=1e-12
    )
    # Averaging the two agents' buffers like weights would have given another mean.
    averaged = sum(float(u.state_dict[f"{NORMALIZER}.mean"]) for u in updates) / 2
    assert abs(averaged - pooled.mean()) > 1.0
    assert list(new_state) == list(global_state)


@pytest.mark.parametrize("learner", [A2C, PPO])
def test_a_federation_counts_each_step_once(learner):
    gamma = 0.9
    history, trainer = fit_cartpole_federation(
        lambda population: learner.for_population(
            population, normalize_rewards=True, gamma=gamma, hidden_dim=16
        ),
        num_rounds=3,
        episodes_per_round=4,
        eval_episodes=2,
        strategy=FedAvg(),
    )
    checkpoints = trainer.run_dir / "checkpoints"
    first = load_checkpoint(checkpoints / "round-0001.ckpt")["state_dict"]
    assert float(first[f"{NORMALIZER}.count"]) == history[0]["env_steps"]
    saved = load_checkpoint(checkpoints / "last.ckpt")["state_dict"]
    assert float(saved[f"{NORMALIZER}.count"]) == history[-1]["env_steps"]
    # CartPole pays 1 a step, so every return so far lies in [1, 1 / (1 - gamma)).
    assert 1.0 < float(saved[f"{NORMALIZER}.mean"]) < 1 / (1 - gamma)
    assert float(saved[f"{NORMALIZER}.m2"]) > 0
    loaded = load_module(checkpoints / "last.ckpt")
    assert float(loaded.reward_normalizer.count) == history[-1]["env_steps"]


@pytest.mark.parametrize("learner", [A2C, PPO])
def test_without_the_option_there_is_no_reward_statistic(learner):
    module = learner()
    assert module.reward_normalizer is None
    assert not any(key.startswith(NORMALIZER) for key in module.state_dict())
    assert module.statistics_modules() == {}
    batch = tiny_batch()
    assert module.scale_rewards(batch) is batch
