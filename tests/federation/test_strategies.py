import pytest
import torch

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.strategies import AgentUpdate, FedAvg, FedAvgM, RewardWeighted


def update(agent_id, value, episodes=10, steps=1000, mean_return=50.0):
    state = {"w": torch.tensor([value, 2 * value]), "b": torch.tensor(value)}
    return AgentUpdate(agent_id, state, episodes, steps, mean_return)


GLOBAL = {"w": torch.zeros(2), "b": torch.tensor(0.0)}


def test_reward_weighted_by_hand():
    # weights max(0.1, r): 60, 0.1 (floored from -5), 20 -> total 80.1
    updates = [
        update(0, 1.0, mean_return=60.0),
        update(1, 4.0, mean_return=-5.0),
        update(2, -2.0, mean_return=20.0),
    ]
    expected_b = (60 * 1.0 + 0.1 * 4.0 + 20 * -2.0) / 80.1
    result = RewardWeighted().aggregate(GLOBAL, updates)
    assert result["b"].item() == pytest.approx(expected_b, rel=1e-6)
    assert result["w"].tolist() == pytest.approx([expected_b, 2 * expected_b], rel=1e-6)


def test_reward_weighted_floor_keeps_zero_return_agents():
    updates = [update(0, 1.0, mean_return=0.0), update(1, 3.0, mean_return=0.0)]
    assert RewardWeighted().aggregate(GLOBAL, updates)["b"].item() == pytest.approx(2.0)


def test_fedavg_by_episodes_by_hand():
    updates = [update(0, 1.0, episodes=10), update(1, 5.0, episodes=30)]
    result = FedAvg().aggregate(GLOBAL, updates)
    assert result["b"].item() == pytest.approx(0.25 * 1.0 + 0.75 * 5.0)


def test_fedavg_by_steps_by_hand():
    updates = [update(0, 1.0, steps=300), update(1, 5.0, steps=100)]
    result = FedAvg(weight_by="steps").aggregate(GLOBAL, updates)
    assert result["b"].item() == pytest.approx(0.75 * 1.0 + 0.25 * 5.0)


@pytest.mark.parametrize(
    "strategy", [RewardWeighted(), FedAvg(), FedAvg(weight_by="steps"), FedAvgM(momentum=0.9)]
)
def test_identical_updates_aggregate_to_themselves(strategy):
    updates = [update(i, 0.3, episodes=i + 1, steps=10 * i + 5, mean_return=i) for i in range(4)]
    result = strategy.aggregate(GLOBAL, updates)
    assert torch.equal(result["w"], updates[0].state_dict["w"])
    assert result["w"].dtype == torch.float32


@pytest.mark.parametrize("strategy", [RewardWeighted(), FedAvg(), FedAvgM(server_lr=3.0)])
def test_agent_order_does_not_matter(strategy):
    updates = [update(i, float(i), episodes=i + 1, mean_return=10.0 * i) for i in range(5)]
    forward = strategy.aggregate(GLOBAL, updates)
    backward = strategy.aggregate(GLOBAL, updates[::-1])
    assert torch.allclose(forward["w"], backward["w"], atol=1e-7)


def test_bad_strategy_arguments_name_the_option():
    with pytest.raises(ConfigError, match="weight_by"):
        FedAvg(weight_by="agents")
    with pytest.raises(ConfigError, match="min_weight"):
        RewardWeighted(min_weight=0.0)


def test_fedavgm_by_hand_over_two_rounds():
    strategy = FedAvgM(server_lr=2.0, momentum=0.5)
    start = {"w": torch.zeros(2), "b": torch.tensor(1.0)}
    # round 1: mean change of b = ((3 - 1) + (5 - 1)) / 2 = 3; v = 3; b = 1 + 2 * 3 = 7
    first = strategy.aggregate(start, [update(0, 3.0), update(1, 5.0)])
    assert first["b"].item() == pytest.approx(7.0)
    # round 2: mean change = 8 - 7 = 1; v = 0.5 * 3 + 1 = 2.5; b = 7 + 2 * 2.5 = 12
    second = strategy.aggregate(first, [update(0, 8.0)])
    assert second["b"].item() == pytest.approx(12.0)


def test_fedavgm_state_round_trips_and_defaults_to_fedavg():
    strategy = FedAvgM(momentum=0.9)
    strategy.aggregate(GLOBAL, [update(0, 1.0)])
    restored = FedAvgM(momentum=0.9)
    restored.load_state_dict(strategy.state_dict())
    following = [update(0, 2.0), update(1, 4.0)]
    assert torch.equal(
        strategy.aggregate(GLOBAL, following)["w"], restored.aggregate(GLOBAL, following)["w"]
    )
    plain = FedAvgM().aggregate(GLOBAL, following)
    assert torch.allclose(plain["w"], FedAvg().aggregate(GLOBAL, following)["w"])
