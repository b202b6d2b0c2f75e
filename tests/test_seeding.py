from fedrl_lightning.seeding import Stream, derive_seed


def test_seed_is_a_pure_function_of_its_inputs():
    assert derive_seed(42, 3, 7, Stream.ENV) == derive_seed(42, 3, 7, Stream.ENV)


def test_every_coordinate_changes_the_seed():
    base = derive_seed(42, 3, 7, Stream.ENV)
    others = {
        derive_seed(43, 3, 7, Stream.ENV),
        derive_seed(42, 4, 7, Stream.ENV),
        derive_seed(42, 3, 8, Stream.ENV),
        derive_seed(42, 3, 7, Stream.ACTIONS),
        derive_seed(42, 3, -1, Stream.ENV),
    }
    assert base not in others
    assert len(others) == 5


def test_seeds_fit_in_32_bits():
    seeds = [
        derive_seed(s, r, a, Stream.TORCH) for s in range(3) for r in range(5) for a in range(5)
    ]
    assert all(0 <= s < 2**32 for s in seeds)
    assert len(set(seeds)) == len(seeds)
