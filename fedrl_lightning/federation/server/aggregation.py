"""Combining a round's updates: weights by the strategy, running statistics by pooling."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from fedrl_lightning.federation.strategies import AgentUpdate, Strategy
from fedrl_lightning.federation.strategies.base import StateDict
from fedrl_lightning.policy.normalization import STATISTICS_BUFFERS, pooled_statistics

__all__ = ["aggregate_round"]


def aggregate_round(
    strategy: Strategy,
    global_state: StateDict,
    updates: Sequence[AgentUpdate],
    statistics: Sequence[str] = (),
) -> StateDict:
    """The next global ``state_dict``: the strategy's weights, and the pooled statistics.

    The strategy sees every entry but the statistics' buffers, so any strategy, robust or
    stateful, works unchanged. Each running statistic in ``statistics`` becomes the global
    one pooled with what every agent observed in its fit (Chan et al.'s formula), which
    equals the statistics of all those observations together.

    Args:
        strategy: Combines the weights.
        global_state: The state every agent started the round from.
        updates: The round's usable updates, in agent-id order.
        statistics: Names of the model's running statistics modules (see
            :meth:`~fedrl_lightning.learners.Learner.statistics_modules`).

    Returns:
        The new global state, with ``global_state``'s keys in its order.
    """
    if not statistics:
        return strategy.aggregate(global_state, updates)
    buffers = {f"{name}.{buffer}" for name in statistics for buffer in STATISTICS_BUFFERS}

    def weights(state: StateDict) -> StateDict:
        return {key: value for key, value in state.items() if key not in buffers}

    combined = strategy.aggregate(
        weights(global_state),
        [dataclasses.replace(u, state_dict=weights(u.state_dict)) for u in updates],
    )
    for name in statistics:
        combined |= pooled_statistics(global_state, name, [u.statistics[name] for u in updates])
    return {key: combined[key] for key in global_state}
