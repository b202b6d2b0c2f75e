"""Seeds derived from (run seed, round, agent id, stream), never from execution order."""

from __future__ import annotations

from enum import IntEnum

import numpy as np

__all__ = ["Stream", "derive_seed"]


class Stream(IntEnum):
    """The independent random streams of a federated run."""

    SAMPLING = 0  # which agents take part in a round
    ENV = 1  # an agent's environment during its local fit
    ACTIONS = 2  # an agent's action sampling during its local fit
    TORCH = 3  # torch's global generator during a local fit
    EVAL_ENV = 4  # the evaluation environments
    EVAL_ACTIONS = 5  # action sampling during evaluation
    HETEROGENEITY = 6  # sampled per-agent environment parameters
    BYZANTINE = 7  # which agents are Byzantine, and their random_noise updates
    FRESH_ENV = 8  # the evaluate command's episodes, which no run ever uses
    FRESH_ACTIONS = 9  # the evaluate command's action sampling
    TASK_MODEL = 10  # the initial weights of a task's model, when its sizes are its own
    FINETUNE = 11  # local adaptation's fits: the run seed of their own streams
    CLUSTER_INIT = 12  # the initial weights of IFCA's clusters 1 .. K - 1
    CLUSTER_ENV = 13  # the episodes on which an agent scores IFCA's clusters
    CLUSTER_ACTIONS = 14  # action sampling while an agent scores IFCA's clusters
    CURIOSITY_TARGET = 15  # RND's fixed target network: round 0, agent -1, the same for all
    SHARE_UPLOAD = 16  # which of its episodes an agent uploads to the shared replay buffer
    SHARE_SAMPLE = 17  # the server's sample of the replay buffer sent to each agent
    PROBE_STATES = 18  # the probe states of distillation, drawn once at the run's start
    MODEL_HETEROGENEITY = 19  # sampled per-agent model hyperparameters
    AGENT_MODEL = 20  # the initial weights of each agent's own model, in distillation
    REPLAY_SAMPLE = 21  # the minibatches an off-policy learner draws from its replay buffer


def derive_seed(run_seed: int, round_idx: int, agent_id: int, stream: Stream) -> int:
    """Return a 32-bit seed that depends only on its arguments.

    Args:
        run_seed: The run's seed (``--seed_everything``).
        round_idx: The federated round, counted from 0.
        agent_id: The agent, or -1 for server-side streams.
        stream: Which random stream the seed is for.

    Returns:
        A seed in ``[0, 2**32)``, suitable for ``env.reset(seed=...)`` and ``torch.manual_seed``.
    """
    sequence = np.random.SeedSequence(
        entropy=run_seed, spawn_key=(round_idx, agent_id + 1, int(stream))
    )
    return int(sequence.generate_state(1)[0])
