from collections import Counter

from fedrl_lightning.federation.sampling import sample_agents


def test_sample_is_distinct_sorted_and_in_range():
    for round_idx in range(50):
        agents = sample_agents(10, 5, run_seed=42, round_idx=round_idx)
        assert len(agents) == 5
        assert len(set(agents)) == 5
        assert agents == sorted(agents)
        assert all(0 <= a < 10 for a in agents)


def test_sample_depends_only_on_seed_and_round():
    assert sample_agents(10, 5, 42, 7) == sample_agents(10, 5, 42, 7)
    per_round = {tuple(sample_agents(10, 5, 42, r)) for r in range(20)}
    assert len(per_round) > 10
    assert [sample_agents(10, 5, 1, r) for r in range(5)] != [
        sample_agents(10, 5, 2, r) for r in range(5)
    ]


def test_full_participation_takes_everyone():
    assert sample_agents(6, 6, 0, 0) == list(range(6))


def test_sampling_is_uniform_over_agents():
    rounds = 4000
    counts = Counter(a for r in range(rounds) for a in sample_agents(10, 3, 42, r))
    # Each agent is expected 1200 times with standard deviation about 29.
    assert all(abs(counts[a] - 1200) < 120 for a in range(10))
