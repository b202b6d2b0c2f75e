import numpy as np
import pytest
import torch

from fedrl_lightning.policy.normalization import RunningMeanStd


def observations(seed, n, features=3):
    rng = np.random.default_rng(seed)
    # offsets and scales far from 0 and 1, so a wrong formula shows
    return rng.normal(loc=[5.0, -300.0, 0.01], scale=[2.0, 40.0, 1e-3], size=(n, features))


def stats_of(batch):
    stats = RunningMeanStd(batch.shape[1:])
    stats.update(batch)
    return stats


def assert_same(a, b, tol=1e-10):
    assert a.count == b.count
    np.testing.assert_allclose(a.mean, b.mean, rtol=tol, atol=0)
    np.testing.assert_allclose(a.var, b.var, rtol=tol, atol=0)


def test_one_update_matches_numpy():
    batch = observations(0, 50)
    stats = stats_of(batch)
    assert stats.count == 50
    np.testing.assert_allclose(stats.mean, batch.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.var, batch.var(axis=0), rtol=1e-10)
    np.testing.assert_allclose(stats.std, batch.std(axis=0), rtol=1e-10)


def test_two_agents_merged_equal_their_pooled_observations():
    first, second = observations(1, 37), observations(2, 120)
    pooled = np.concatenate([first, second])
    merged = RunningMeanStd.merged([stats_of(first), stats_of(second)])
    assert merged.count == 157
    np.testing.assert_allclose(merged.mean, pooled.mean(axis=0), rtol=1e-10, atol=0)
    np.testing.assert_allclose(merged.var, pooled.var(axis=0), rtol=1e-10, atol=0)
    in_place = stats_of(first)
    in_place.merge(stats_of(second))
    assert_same(in_place, merged, tol=0)


def test_merge_is_order_independent_and_leaves_its_inputs():
    parts = [stats_of(observations(seed, n)) for seed, n in [(3, 5), (4, 200), (5, 1)]]
    before = [(p.count, p.mean.copy(), p.m2.copy()) for p in parts]
    forward = RunningMeanStd.merged(parts)
    for order in ([2, 0, 1], [1, 2, 0], [2, 1, 0]):
        assert_same(RunningMeanStd.merged([parts[i] for i in order]), forward, tol=1e-12)
    for part, (count, mean, m2) in zip(parts, before, strict=True):
        assert part.count == count
        assert np.array_equal(part.mean, mean) and np.array_equal(part.m2, m2)


def test_merging_with_an_empty_one_is_the_identity():
    stats = stats_of(observations(6, 40))
    for parts in ([stats, RunningMeanStd(3)], [RunningMeanStd(3), stats]):
        merged = RunningMeanStd.merged(parts)
        assert merged.count == stats.count
        assert np.array_equal(merged.mean, stats.mean)
        assert np.array_equal(merged.m2, stats.m2)


def test_updating_in_chunks_equals_one_update():
    batch = observations(7, 101)
    chunked = RunningMeanStd(3)
    for start in range(0, 101, 17):
        chunked.update(batch[start : start + 17])
    chunked.update(batch[:0])  # an empty chunk changes nothing
    assert_same(chunked, stats_of(batch))


def test_empty_statistics_convention():
    stats = RunningMeanStd(2)
    assert stats.count == 0
    assert stats.mean.tolist() == [0.0, 0.0]
    assert stats.var.tolist() == [1.0, 1.0]
    x = np.array([[0.5, -3.0]], dtype=np.float32)
    np.testing.assert_allclose(stats.normalize(x), x, rtol=1e-7)


def test_normalize_standardises_and_clips():
    stats = stats_of(np.array([[1.0], [3.0]]))  # mean 2, var 1
    x = np.array([[2.0], [4.0], [100.0], [-100.0]], dtype=np.float32)
    got = stats.normalize(x, clip=5.0, eps=0.0)
    assert got.dtype == np.float32
    assert got[:, 0].tolist() == [0.0, 2.0, 5.0, -5.0]
    assert stats.normalize(np.array([[1000.0]]))[0, 0] == 10.0  # default clip
    with pytest.raises(ValueError, match="clip"):
        stats.normalize(x, clip=0.0)


def test_state_dict_round_trips_through_torch_save_weights_only(tmp_path):
    stats = stats_of(observations(8, 30))
    path = tmp_path / "stats.pt"
    torch.save(stats.state_dict(), path)
    restored = RunningMeanStd(3)
    restored.load_state_dict(torch.load(path, weights_only=True))
    assert restored.count == stats.count
    assert np.array_equal(restored.mean, stats.mean) and np.array_equal(restored.m2, stats.m2)
    assert restored.mean.dtype == np.float64
    # the restored copy is independent of the saved state
    restored.update(observations(9, 4))
    assert restored.count == stats.count + 4


def test_bad_shapes_and_states_are_refused():
    stats = RunningMeanStd(3)
    with pytest.raises(ValueError, match="shape"):
        stats.update(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="NaN"):
        stats.update(np.full((1, 3), np.nan))
    assert stats.count == 0  # a refused batch changes nothing
    with pytest.raises(ValueError, match="shape"):
        stats.merge(RunningMeanStd(2))
    with pytest.raises(ValueError, match="nothing"):
        RunningMeanStd.merged([])
    good = stats_of(observations(10, 3)).state_dict()
    with pytest.raises(ValueError, match="m2"):
        stats.load_state_dict({"count": 3, "mean": good["mean"]})
    with pytest.raises(ValueError, match="count"):
        stats.load_state_dict({**good, "count": -1})
    with pytest.raises(ValueError, match="expected"):
        RunningMeanStd(4).load_state_dict(good)
    assert stats.count == 0
