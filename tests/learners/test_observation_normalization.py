"""Observation normalisation: the same in torch and numpy, pooled as statistics by the server."""

import numpy as np
import pytest
import torch
from conftest import TRAINER_KWARGS, fit_cartpole_federation, fit_locally
from torch.utils.data import DataLoader

from fedrl_lightning import A2C, PPO, AgentPopulation, FedAvg, Reinforce
from fedrl_lightning.federation.local_fit import FIT_STATISTICS_KEY, LocalFit, fit_agent
from fedrl_lightning.federation.server.aggregation import aggregate_round
from fedrl_lightning.federation.strategies import AgentUpdate, FedMedian
from fedrl_lightning.federation.updates import InvalidUpdate, read_update
from fedrl_lightning.policy.normalization import ObservationNormalizer, RunningMeanStd
from fedrl_lightning.rollouts.dataset import EpisodeDataset
from fedrl_lightning.run.checkpoints import atomic_save, load_checkpoint
from fedrl_lightning.run.console import quiet_lightning

NORMALIZER = "policy.normalizer"


def observed(*batches: np.ndarray) -> PPO:
    """A CartPole-sized PPO module whose normalizer has observed ``batches`` in one fit."""
    module = PPO(normalize_observations=True, num_layers=2, hidden_dim=8)
    module.policy.normalizer.start_fit()
    for batch in batches:
        module.policy.normalizer.observe(torch.from_numpy(batch))
    return module


def test_torch_and_the_numpy_actor_normalise_alike():
    rng = np.random.default_rng(0)
    module = observed(rng.normal(3.0, [0.1, 1.0, 5.0, 20.0], size=(500, 4)).astype(np.float32))
    observations = rng.normal(3.0, 10.0, size=(64, 4)).astype(np.float32)
    normalizer = module.policy.normalizer
    shift, scale = normalizer.numpy_affine()
    expected = np.clip((observations - shift) * scale, -10.0, 10.0)
    assert np.array_equal(normalizer(torch.from_numpy(observations)).numpy(), expected)
    assert np.abs(expected).max() == 10.0  # some are clipped
    with torch.no_grad():
        logits = module.policy.logits(torch.from_numpy(observations)).numpy()
    np.testing.assert_allclose(module.policy.actor().logits(observations), logits, atol=1e-5)


def test_an_empty_normalizer_leaves_observations_as_they_are():
    observations = torch.tensor([[0.5, -2.0, 30.0]])
    assert torch.equal(ObservationNormalizer(3)(observations), torch.tensor([[0.5, -2.0, 10.0]]))


@pytest.mark.parametrize("strategy", [FedAvg(), FedMedian()], ids=["FedAvg", "FedMedian"])
def test_the_server_pools_agents_statistics_into_those_of_all_their_observations(strategy):
    rng = np.random.default_rng(1)
    seen_before = rng.normal(0.0, 1.0, size=(300, 4))
    agent_a = [rng.normal(2.0, 3.0, size=(50, 4)), rng.normal(2.5, 3.0, size=(70, 4))]
    agent_b = [rng.normal(-4.0, 0.5, size=(900, 4))]
    global_state = observed(seen_before).state_dict()
    updates = []
    for agent_id, batches in enumerate([agent_a, agent_b]):
        module = PPO(normalize_observations=True, num_layers=2, hidden_dim=8)
        module.load_state_dict(global_state)
        module.policy.normalizer.start_fit()
        for batch in batches:
            module.policy.normalizer.observe(torch.from_numpy(batch))
        fit = RunningMeanStd(4)
        fit.load_state_dict(module.fit_statistics()[NORMALIZER])
        updates.append(AgentUpdate(agent_id, module.state_dict(), 1, 1, 0.0, {NORMALIZER: fit}))

    new_state = aggregate_round(strategy, global_state, updates, [NORMALIZER])

    pooled = np.concatenate([seen_before, *agent_a, *agent_b])
    assert float(new_state[f"{NORMALIZER}.count"]) == len(pooled)
    np.testing.assert_allclose(new_state[f"{NORMALIZER}.mean"].numpy(), pooled.mean(0), rtol=1e-12)
    np.testing.assert_allclose(
        new_state[f"{NORMALIZER}.m2"].numpy() / len(pooled), pooled.var(0), rtol=1e-12
    )
    # Averaging the agents' buffers like weights would have given another mean.
    averaged = (
        updates[0].state_dict[f"{NORMALIZER}.mean"] + updates[1].state_dict[f"{NORMALIZER}.mean"]
    ) / 2
    assert not np.allclose(averaged.numpy(), pooled.mean(0), atol=0.1)
    assert list(new_state) == list(global_state)


def test_a_fit_folds_each_batch_in_after_its_update():
    """Each batch is trained with the statistics it was rolled out with; then they grow."""
    counts = []

    class Watched(PPO):
        def training_step(self, batch, batch_idx):
            counts.append((float(self.policy.normalizer.count), int(batch.mask.sum())))
            return super().training_step(batch, batch_idx)

    torch.manual_seed(0)
    population = AgentPopulation(env_id="CartPole-v1", num_agents=1)
    module = Watched.for_population(population, normalize_observations=True)
    env = population.make_rollout_env(0)
    dataset = EpisodeDataset(env, module.policy, 6, 2, 0.99, env_seed=1, action_seed=2)
    fit_locally(module, DataLoader(dataset, batch_size=None))
    steps = [n for _, n in counts]
    assert [c for c, _ in counts] == [0.0, steps[0], steps[0] + steps[1]]
    assert module.fit_statistics()[NORMALIZER]["count"] == sum(steps)
    assert float(module.policy.normalizer.count) == sum(steps)


@pytest.mark.parametrize("learner", [Reinforce, A2C, PPO])
def test_a_federation_pools_every_observation_once(learner):
    history, trainer = fit_cartpole_federation(
        lambda population: learner.for_population(population, normalize_observations=True),
        num_rounds=3,
        episodes_per_round=4,
        eval_episodes=2,
        strategy=FedAvg(),
    )
    saved = load_checkpoint(trainer.run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    assert float(saved[f"{NORMALIZER}.count"]) == history[-1]["env_steps"]
    first = load_checkpoint(trainer.run_dir / "checkpoints" / "round-0001.ckpt")["state_dict"]
    assert float(first[f"{NORMALIZER}.count"]) == history[0]["env_steps"]
    mean = saved[f"{NORMALIZER}.mean"]
    assert abs(float(mean[2])) < 0.1 and float(saved[f"{NORMALIZER}.m2"][1]) > 0  # CartPole's


def agent_checkpoint(tmp_path, global_state):
    task = LocalFit(
        agent_id=1,
        round_idx=2,
        run_seed=5,
        module_class=PPO,
        model_hparams={"hidden_dim": 8, "num_layers": 2, "normalize_observations": True},
        global_state=global_state,
        num_episodes=2,
        checkpoint_path=tmp_path / "agent.ckpt",
        trainer_kwargs=TRAINER_KWARGS,
    )
    with quiet_lightning(verbose=False):
        return fit_agent(task, AgentPopulation(env_id="CartPole-v1", num_agents=2))


def test_an_agent_sends_what_its_fit_observed_and_bad_statistics_are_refused(tmp_path):
    torch.manual_seed(0)
    global_state = observed(np.ones((10, 4), np.float32)).state_dict()
    path = agent_checkpoint(tmp_path, global_state)
    update = read_update(path, 1, global_state, [NORMALIZER])
    assert update.statistics[NORMALIZER].count == update.num_steps
    assert float(update.state_dict[f"{NORMALIZER}.count"]) == 10 + update.num_steps

    checkpoint = load_checkpoint(path)
    checkpoint[FIT_STATISTICS_KEY][NORMALIZER]["m2"] = (
        -checkpoint[FIT_STATISTICS_KEY][NORMALIZER]["m2"].abs() - 1
    )
    atomic_save(checkpoint, path)
    with pytest.raises(InvalidUpdate, match="fit_statistics for policy.normalizer"):
        read_update(path, 1, global_state, [NORMALIZER])
    del checkpoint[FIT_STATISTICS_KEY]
    atomic_save(checkpoint, path)
    with pytest.raises(InvalidUpdate, match="fit_statistics"):
        read_update(path, 1, global_state, [NORMALIZER])
