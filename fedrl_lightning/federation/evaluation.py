"""Evaluating a policy on many environments at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from fedrl_lightning.federation.round_metrics import finetuned_columns, personalized_columns
from fedrl_lightning.policy.networks import MLPPolicy
from fedrl_lightning.rollouts.rollout import run_episodes
from fedrl_lightning.seeding import Stream, derive_seed

if TYPE_CHECKING:
    from fedrl_lightning.federation.local_adaptation import LocalAdaptation
    from fedrl_lightning.federation.server.base import ServerModel
    from fedrl_lightning.learners import Learner
    from fedrl_lightning.population.agents import AgentPopulation

__all__ = [
    "RoundEvaluation",
    "evaluate_personalized",
    "evaluate_policy",
    "evaluate_round",
    "evaluated_agents",
]


def evaluated_agents(num_agents: int, count: int | None) -> list[int]:
    """``count`` agent ids evenly spaced over ``0 .. num_agents - 1``; all of them if ``None``."""
    if count is None or count >= num_agents:
        return list(range(num_agents))
    return sorted({int(a) for a in np.linspace(0, num_agents - 1, count).round()})


def evaluate_round(
    policy: MLPPolicy,
    env: gym.vector.VectorEnv,
    eval_agents: list[int],
    episodes: int,
    run_seed: int,
    round_idx: int,
) -> np.ndarray:
    """The global policy's mean return per evaluated agent after round ``round_idx``.

    Args:
        policy: The global policy.
        env: One sub-environment per entry of ``eval_agents``.
        eval_agents: Each evaluated agent's id, ``episodes`` times in a row.
        episodes: Episodes per agent.
        run_seed: The run's seed; every episode's seed derives from it, the round and the agent.
        round_idx: The round just aggregated.

    Returns:
        One mean return per evaluated agent, in order.
    """
    seeds = [
        (derive_seed(run_seed, round_idx, agent, Stream.EVAL_ENV) + i % episodes) % 2**32
        for i, agent in enumerate(eval_agents)
    ]
    action_seed = derive_seed(run_seed, round_idx, -1, Stream.EVAL_ACTIONS)
    returns = evaluate_policy(policy, env, seeds, action_seed)
    return returns.reshape(-1, episodes).mean(axis=1)


def evaluate_personalized(
    policy_of: Callable[[int], MLPPolicy],
    envs: dict[int, gym.vector.VectorEnv],
    episodes: int,
    run_seed: int,
    round_idx: int,
) -> np.ndarray:
    """Each evaluated agent's own policy (what it would deploy), on its own episodes.

    Every agent plays the episodes :func:`evaluate_round` gives it (the same reset seeds), so
    the personalized and the global return of an agent compare episode for episode.

    Args:
        policy_of: The policy agent ``a`` would deploy.
        envs: Each evaluated agent's vector environment of ``episodes`` sub-environments.
        episodes: Episodes per agent.
        run_seed: The run's seed.
        round_idx: The round just aggregated.

    Returns:
        One mean return per agent, in the order of ``envs``.
    """
    means = []
    for agent, env in envs.items():
        first = derive_seed(run_seed, round_idx, agent, Stream.EVAL_ENV)
        seeds = [(first + i) % 2**32 for i in range(episodes)]
        action_seed = derive_seed(run_seed, round_idx, agent, Stream.EVAL_ACTIONS)
        means.append(evaluate_policy(policy_of(agent), env, seeds, action_seed).mean())
    return np.array(means)


def evaluate_policy(
    policy: MLPPolicy,
    env: gym.vector.VectorEnv,
    env_seeds: list[int],
    action_seed: int,
    deterministic: bool = False,
) -> np.ndarray:
    """Run one episode in every sub-environment, in lock-step, sampling from the policy.

    Args:
        policy: The policy to evaluate.
        env: A vector environment with next-step autoreset.
        env_seeds: One reset seed per sub-environment.
        action_seed: Seed for action sampling.
        deterministic: Take the most likely action, or the Gaussian's mean, instead.

    Returns:
        The undiscounted return of each sub-environment's first episode.
    """
    episodes = run_episodes(policy, env, env_seeds, action_seed, deterministic)
    return np.array([sum(episode.rewards) for episode in episodes])


class RoundEvaluation:
    """The evaluation after every round: each task's global policy, each agent's own, fine-tuned.

    Each task's global policy (the global weights with the task's task-scoped entries; the
    one global model when there are none) plays its evaluated agents' episodes in one batch.
    When agents deploy policies of their own (agent-scoped parameters, or IFCA's clusters),
    each agent's own policy then plays the same episodes; with ``adaptation``, so does its
    task's global policy fine-tuned on the agent's own environment (local adaptation), so they
    all compare episode for episode.

    Args:
        model: The global model, loaded with the round's global weights.
        population: The agents' environments.
        agents: The evaluated agents.
        episodes: Episodes per agent.
        shared: The server's model, for each task's and each agent's weights.
        adaptation: Fine-tunes a global policy on an agent (``trainer.finetune_episodes``);
            ``None``: no fine-tuning.
    """

    def __init__(
        self,
        model: Learner,
        population: AgentPopulation,
        agents: list[int],
        episodes: int,
        shared: ServerModel,
        adaptation: LocalAdaptation | None = None,
    ) -> None:
        self.model, self.agents, self.episodes, self.shared = model, agents, episodes, shared
        self.adaptation = adaptation
        per_task = bool(shared.task_names) and len(shared.task_sizes) > 1
        tasks = sorted({shared.task_of(a) for a in agents}) if per_task else [None]
        self.batches = {}  # task (None: every agent, the global model) -> its agents, env
        for task in tasks:
            own = [a for a in agents if task is None or shared.task_of(a) == task]
            slots = [a for a in own for _ in range(episodes)]
            self.batches[task] = (own, slots, population.make_vector_env(slots))
        self.own_envs = {}
        if shared.own_policies or adaptation is not None:
            self.own_envs = {a: population.make_vector_env([a] * episodes) for a in agents}
        # A learner of each task's (and agent model's) sizes, for weights.
        self.scratch: dict[tuple[int, str], Learner] = {}

    def run(self, seed: int, round_idx: int) -> tuple[np.ndarray, dict[str, float]]:
        """Each agent's task's global policy's mean return, and the other policies' columns.

        Returns:
            The global policies' mean returns, in the order of the agents, and the row's
            columns of each agent's own policy (:func:`personalized_columns`) and of the
            fine-tuned one (:func:`finetuned_columns`), where the run has them.
        """
        returns: dict[int, float] = {}
        for task, (own, slots, env) in self.batches.items():
            policy = self.model.policy if task is None else self._policy(task, task_only=True)
            means = evaluate_round(policy, env, slots, self.episodes, seed, round_idx)
            returns |= dict(zip(own, means, strict=True))
        per_agent = np.array([returns[a] for a in self.agents])
        columns: dict[str, float] = {}
        if self.shared.own_policies:
            own_means = evaluate_personalized(
                lambda agent: self._policy(agent), self.own_envs, self.episodes, seed, round_idx
            )
            columns |= personalized_columns(self.agents, own_means)
        if self.adaptation is not None:
            tuned = evaluate_personalized(
                lambda agent: self._finetuned(agent, seed, round_idx),
                self.own_envs,
                self.episodes,
                seed,
                round_idx,
            )
            columns |= finetuned_columns(self.agents, tuned)
        return per_agent, columns

    def _policy(self, key: int, task_only: bool = False) -> MLPPolicy:
        """Task ``key``'s global policy (``task_only``), or agent ``key``'s own."""
        shared = self.shared
        if task_only:
            hparams = shared.task_hparams[key] if shared.task_hparams else None
            scratch = self._scratch(key, hparams)
            scratch.load_state_dict(shared.task_deployed_state(key))
        else:
            scratch = self._scratch(shared.task_of(key), shared.hparams_of(key))
            scratch.load_state_dict(shared.deployed_state(key))
        return scratch.policy

    def _finetuned(self, agent: int, seed: int, round_idx: int) -> MLPPolicy:
        """The global policy agent ``agent`` is evaluated with, fine-tuned on its environment."""
        assert self.adaptation is not None  # run() fine-tunes only with an adaptation
        task = self.shared.task_of(agent)
        hparams = self.shared.task_hparams
        scratch = self._scratch(task, hparams[task] if hparams else None)
        if None in self.batches:  # one global model for every agent
            state = self.model.state_dict()
        else:
            state = self.shared.task_deployed_state(task)
        scratch.load_state_dict(
            self.adaptation.adapt(state, agent, seed, round_idx, dict(scratch.hparams))
        )
        return scratch.policy

    def _scratch(self, task: int, hparams: dict[str, Any] | None) -> Learner:
        """A learner of task ``task`` with ``hparams`` (``None``: the model's), for weights."""
        hparams = dict(self.model.hparams if hparams is None else hparams)
        key = (task, repr(sorted(hparams.items())))
        if key not in self.scratch:
            self.scratch[key] = type(self.model)(**hparams)
        return self.scratch[key]

    def close(self) -> None:
        """Close the environments, and the fine-tuning's scratch folder."""
        for env in [*(batch[2] for batch in self.batches.values()), *self.own_envs.values()]:
            env.close()
        if self.adaptation is not None:
            self.adaptation.close()
