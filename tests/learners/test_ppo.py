import math

import pytest
import torch
from conftest import fit_cartpole_federation

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.learners import PPO
from fedrl_lightning.learners.losses import ppo_policy_loss, value_loss
from fedrl_lightning.learners.ppo import minibatch_indices
from fedrl_lightning.seeding import Stream, derive_seed

CARTPOLE_RANDOM_RETURN = 22.0


def test_clipped_policy_loss_by_hand():
    # Behaviour probabilities 0.5; ratios 1.1 (inside [0.8, 1.2]), 1.5 with a positive
    # advantage (clipped to 1.2) and 1.5 with a negative one (the unclipped term is larger).
    old = torch.log(torch.tensor([0.5, 0.5, 0.5]))
    new = torch.log(torch.tensor([0.55, 0.75, 0.75])).requires_grad_()
    advantages = torch.tensor([1.0, 2.0, -1.0])
    loss = ppo_policy_loss(new, old, advantages, clip_coef=0.2)
    # max(-A r, -A clip(r)): -1.1; max(-3.0, -2.4) = -2.4; max(1.5, 1.2) = 1.5.
    assert loss.item() == pytest.approx((-1.1 - 2.4 + 1.5) / 3)
    loss.backward()
    # d(-A r)/d log pi = -A r; the clipped step passes no gradient.
    assert new.grad.tolist() == pytest.approx([-1.1 / 3, 0.0, 1.5 / 3])


def test_value_loss_by_hand_unclipped_and_clipped():
    new = torch.tensor([1.0, 2.0, 0.0])
    returns = torch.tensor([0.5, 3.0, 1.0])
    old = torch.tensor([1.0, 1.0, 0.5])
    # Squared errors 0.25, 1, 1.
    assert value_loss(new, returns).item() == pytest.approx(0.5 * 2.25 / 3)
    # Clipped values 1.0, 1.2, 0.3 give 0.25, 3.24, 0.49; the larger per step: 0.25, 3.24, 1.
    assert value_loss(new, returns, old, clip_coef=0.2).item() == pytest.approx(0.5 * 4.49 / 3)
    assert value_loss(new, returns, old, clip_coef=None).item() == pytest.approx(0.375)


def test_minibatches_cover_every_step_once():
    parts = minibatch_indices(10, 4, torch.Generator().manual_seed(0))
    assert [len(p) for p in parts] == [3, 3, 3, 1]
    assert sorted(torch.cat(parts).tolist()) == list(range(10))
    assert len(minibatch_indices(2, 4, torch.Generator().manual_seed(0))) == 2


def shuffles(run_seed: int, round_idx: int, agent_id: int) -> list[list[int]]:
    """The minibatches of a PPO built as a local fit builds it, for its first batch."""
    torch.manual_seed(derive_seed(run_seed, round_idx, agent_id, Stream.TORCH))
    generator = PPO(hidden_dim=8).minibatch_generator()
    return [p.tolist() for _ in range(2) for p in minibatch_indices(50, 4, generator)]


def test_minibatch_shuffles_derive_from_run_seed_round_and_agent():
    reference = shuffles(7, 3, 2)
    assert shuffles(7, 3, 2) == reference
    for other in [(8, 3, 2), (7, 4, 2), (7, 3, 1)]:
        assert shuffles(*other) != reference, other
    # The passes over one batch are shuffled afresh.
    assert reference[:4] != reference[4:]


def test_bad_hyperparameters_name_the_option():
    for kwargs, option in [
        ({"num_minibatches": 0}, "model.num_minibatches"),
        ({"clip_coef": 0.0}, "model.clip_coef"),
        ({"target_kl": -1.0}, "model.target_kl"),
        ({"critic": "both"}, "model.critic"),
        ({"gae_lambda": 1.5}, "model.gae_lambda"),
    ]:
        with pytest.raises(ConfigError, match=f"^{option} "):
            PPO(**kwargs)


@pytest.mark.parametrize("critic", ["separate", "shared"])
def test_ppo_beats_a_random_policy_on_a_cartpole_federation(critic):
    history, _ = fit_cartpole_federation(
        lambda population: PPO.for_population(
            population, hidden_dim=32, lr=1e-2, gae_lambda=1.0, critic=critic, target_kl=0.05
        )
    )
    final = history[-1]["eval_reward"]
    assert math.isfinite(final)
    assert final >= CARTPOLE_RANDOM_RETURN + 60, [round(r["eval_reward"]) for r in history]
