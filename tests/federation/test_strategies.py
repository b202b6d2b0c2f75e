import copy

import pytest
import torch

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.strategies import (
    AgentUpdate,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    FedYogi,
    Krum,
    MultiKrum,
    Reptile,
    RewardWeighted,
    TrustRegion,
)
from fedrl_lightning.federation.strategies.base import detached
from fedrl_lightning.federation.strategies.server_optimizers import MomentRule, ServerStep


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


AVERAGING = [
    RewardWeighted(),
    FedAvg(),
    FedAvg(weight_by="steps"),
    FedProx(),
    FedAvgM(momentum=0.9),
    FedMedian(),
    FedTrimmedAvg(),
    Krum(),
    MultiKrum(),
    TrustRegion(max_norm=100.0),
]
EVERY_STRATEGY = [
    *AVERAGING,
    FedAvgM(server_lr=3.0),
    FedAdagrad(),
    FedAdam(),
    FedYogi(),
    Reptile(),
]


@pytest.mark.parametrize("strategy", AVERAGING, ids=lambda s: type(s).__name__)
def test_identical_updates_aggregate_to_themselves(strategy):
    updates = [update(i, 0.3, episodes=i + 1, steps=10 * i + 5, mean_return=i) for i in range(4)]
    result = strategy.aggregate(GLOBAL, updates)
    assert torch.equal(result["w"], updates[0].state_dict["w"])
    assert result["w"].dtype == torch.float32


@pytest.mark.parametrize("strategy", EVERY_STRATEGY, ids=lambda s: type(s).__name__)
def test_agent_order_does_not_matter(strategy):
    updates = [update(i, float(i), episodes=i + 1, mean_return=10.0 * i) for i in range(5)]
    forward = copy.deepcopy(strategy).aggregate(GLOBAL, updates)  # fresh state for each
    backward = copy.deepcopy(strategy).aggregate(GLOBAL, updates[::-1])
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


def values(updates_result):
    return updates_result["b"].item()


def test_fedmedian_by_hand():
    assert (
        values(FedMedian().aggregate(GLOBAL, [update(i, v) for i, v in enumerate([1, 5, 3])])) == 3
    )
    even = [update(i, v) for i, v in enumerate([1.0, 2.0, 10.0, 20.0])]
    assert values(FedMedian().aggregate(GLOBAL, even)) == pytest.approx(6.0)


def test_fedtrimmedavg_by_hand():
    updates = [update(i, v) for i, v in enumerate([1.0, 2.0, 3.0, 100.0])]
    assert values(FedTrimmedAvg(beta=0.25).aggregate(GLOBAL, updates)) == pytest.approx(2.5)
    assert values(FedTrimmedAvg(beta=0.0).aggregate(GLOBAL, updates)) == pytest.approx(26.5)


def test_krum_by_hand():
    # squared distance between values a and b: (a - b)^2 * (1 + 4 + 1); one neighbour each
    updates = [update(i, v) for i, v in enumerate([0.0, 1.0, 5.0])]
    assert values(Krum(num_byzantine=0).aggregate(GLOBAL, updates)) == 0.0  # tie: lowest id
    # scores with one neighbour: 6, 1.5, 73.5, 1.5 -> keep values 1 and 1.5
    updates = [update(i, v) for i, v in enumerate([0.0, 1.0, 5.0, 1.5])]
    result = MultiKrum(num_byzantine=1, num_selected=2).aggregate(GLOBAL, updates)
    assert values(result) == pytest.approx(1.25)


def test_krum_never_selects_an_outlier():
    generator = torch.Generator().manual_seed(0)
    for trial in range(20):
        honest = [1.0 + 0.01 * torch.randn((), generator=generator).item() for _ in range(6)]
        outlier = 1.0 + (-1) ** trial * 5.0
        updates = [update(i, v) for i, v in enumerate([*honest, outlier])]
        assert abs(values(Krum(num_byzantine=1).aggregate(GLOBAL, updates)) - 1.0) < 0.05
        assert abs(values(MultiKrum(num_byzantine=1).aggregate(GLOBAL, updates)) - 1.0) < 0.05


def test_trust_region_clips_each_change_by_hand():
    # a change of value v has norm |v| * sqrt(6); max_norm sqrt(6) clips 4 to 1
    updates = [update(0, 0.5), update(1, 4.0)]
    result = TrustRegion(max_norm=6**0.5).aggregate(GLOBAL, updates)
    assert values(result) == pytest.approx((0.5 + 1.0) / 2)


def test_adaptive_server_optimizers_by_hand():
    tau = 1e-3
    # one round, change d = 2: m = (1 - b1) d; Adam and Yogi v = (1 - b2) d^2, Adagrad v = d^2
    adam = FedAdam(server_lr=0.5, beta1=0.9, beta2=0.99, tau=tau).aggregate(
        GLOBAL, [update(0, 2.0)]
    )
    assert values(adam) == pytest.approx(0.5 * 0.2 / (0.04**0.5 + tau))
    adagrad = FedAdagrad(server_lr=0.5, tau=tau).aggregate(GLOBAL, [update(0, 2.0)])
    assert values(adagrad) == pytest.approx(0.5 * 2.0 / (2.0 + tau))
    # Yogi's second round: d = 1 - b, v = v1 - 0.01 d^2 sign(v1 - d^2)
    yogi = FedYogi(server_lr=0.5, beta1=0.9, beta2=0.99, tau=tau)
    b = values(yogi.aggregate(GLOBAL, [update(0, 2.0)]))
    second = values(
        yogi.aggregate({"w": torch.zeros(2) + b, "b": torch.tensor(b)}, [update(0, 1.0)])
    )
    m1, v1 = 0.2, 0.04
    d = 1.0 - b
    m2 = 0.9 * m1 + 0.1 * d
    v2 = v1 - 0.01 * d**2 * (1 if v1 > d**2 else -1)
    assert second == pytest.approx(b + 0.5 * m2 / (v2**0.5 + tau), rel=1e-5)


def test_fedprox_aggregates_like_fedavg_and_asks_for_a_proximal_term():
    updates = [update(0, 1.0, episodes=10), update(1, 5.0, episodes=30)]
    assert values(FedProx(mu=0.1).aggregate(GLOBAL, updates)) == pytest.approx(4.0)
    assert FedProx(mu=0.1).proximal_mu == 0.1 and FedAvg().proximal_mu == 0.0


def test_reptile_step_by_hand():
    # global b = 1, w = [0, 0]; agents adapt to b = 3 (10 episodes) and b = 7 (30 episodes)
    # mean_k(w_k): b = 0.25 * 3 + 0.75 * 7 = 6, w = [6, 12]
    # Reptile, meta_lr 0.5: b = 1 + 0.5 * (6 - 1) = 3.5, w = 0 + 0.5 * ([6, 12] - 0) = [3, 6]
    start = {"w": torch.zeros(2), "b": torch.tensor(1.0)}
    updates = [update(0, 3.0, episodes=10), update(1, 7.0, episodes=30)]
    result = Reptile(meta_lr=0.5).aggregate(start, updates)
    assert result["b"].item() == pytest.approx(3.5)
    assert result["w"].tolist() == pytest.approx([3.0, 6.0])
    assert result["w"].dtype == torch.float32
    # meta_lr 1 is FedAvg, and every meta_lr is FedAvgM's step without momentum
    fedavg = FedAvg().aggregate(start, updates)
    assert torch.equal(Reptile(meta_lr=1.0).aggregate(start, updates)["b"], fedavg["b"])
    for meta_lr in (0.3, 2.0):
        server = FedAvgM(server_lr=meta_lr).aggregate(start, updates)
        reptile = Reptile(meta_lr=meta_lr).aggregate(start, updates)
        for key in start:
            assert torch.equal(reptile[key], server[key]), key
    assert Reptile().state_dict() == {"buffers": {}}  # no state of its own


@pytest.mark.parametrize("meta_lr", [0.0, -0.5, float("nan"), float("inf")])
def test_reptile_refuses_a_meta_lr_that_is_not_positive_and_finite(meta_lr):
    with pytest.raises(ConfigError, match="trainer.strategy.meta_lr"):
        Reptile(meta_lr=meta_lr)


def test_detached_copies_to_the_cpu_without_the_graph():
    weight = torch.ones(2, requires_grad=True)
    state = {"w": weight * 3}
    copy_ = detached(state)
    assert not copy_["w"].requires_grad
    assert copy_["w"].device.type == "cpu"
    copy_["w"].add_(1.0)
    assert state["w"].tolist() == [3.0, 3.0]


def test_one_server_step_for_torch_optimizers_and_moment_rules():
    weights = {"w": torch.tensor([1.0, 2.0], dtype=torch.float64)}
    gradient = {"w": torch.tensor([-1.0, 3.0], dtype=torch.float64)}
    # a moment rule moves by change(delta), delta = -gradient: w + 2 * delta
    rule = ServerStep(lambda params: MomentRule(params, lambda delta: 2 * delta), weights)
    assert rule.step(weights, gradient)["w"].tolist() == [3.0, -4.0]
    # torch's SGD descends the gradient: w - 0.5 * g; the input weights are left as they were
    sgd = ServerStep(lambda params: torch.optim.SGD(params, lr=0.5), weights)
    assert sgd.step(weights, gradient)["w"].tolist() == [1.5, 0.5]
    assert weights["w"].tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    ("make", "option"),
    [
        (lambda: FedAdam(tau=0.0), "trainer.strategy.tau"),
        (lambda: FedAvgM(momentum=1.0), "trainer.strategy.momentum"),
        (lambda: FedYogi(server_lr=float("inf")), "trainer.strategy.server_lr"),
    ],
)
def test_server_optimizer_strategies_name_a_bad_option(make, option):
    with pytest.raises(ConfigError, match=option):
        make()
