"""Return estimators: pure functions over padded ``[episodes, steps]`` batches.

- :mod:`.discounted`: the discounted return-to-go of each step (REINFORCE's ``G_t``), the
  discounted return so far (what reward normalisation tracks), and the backward recursion
  every estimator here shares;
- :mod:`.normalized`: REINFORCE's three normalisations of ``G_t`` (per episode, over the
  batch, per step) and an actor-critic's of its advantages;
- :mod:`.advantages`: generalised advantage estimation, bootstrapping only past truncation;
- :mod:`.off_policy`: truncated importance weights and V-trace, for replayed episodes.
"""

from fedrl_lightning.rollouts.returns.advantages import Successors, gae, successors
from fedrl_lightning.rollouts.returns.discounted import (
    backward_sums,
    discounted_returns,
    episode_returns_to_go,
    running_returns,
)
from fedrl_lightning.rollouts.returns.normalized import (
    NORMALIZE_EPS,
    normalize_advantages,
    normalize_over_batch,
    normalize_per_episode,
    normalize_per_step,
)
from fedrl_lightning.rollouts.returns.off_policy import (
    VTrace,
    truncated_importance_weights,
    vtrace,
)

__all__ = [
    "NORMALIZE_EPS",
    "Successors",
    "VTrace",
    "backward_sums",
    "discounted_returns",
    "episode_returns_to_go",
    "gae",
    "normalize_advantages",
    "normalize_over_batch",
    "normalize_per_episode",
    "normalize_per_step",
    "running_returns",
    "successors",
    "truncated_importance_weights",
    "vtrace",
]
