"""The evaluation after every round: which agents, and which of their policies play.

The episodes themselves are played by :func:`~fedrl_lightning.rollouts.evaluation.play_agents`,
as the ``evaluate`` command plays them, from the run's evaluation streams.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from fedrl_lightning.federation.round_metrics import finetuned_columns, personalized_columns
from fedrl_lightning.policy.networks import MLPPolicy
from fedrl_lightning.rollouts.evaluation import EpisodeSeeds, play_agents

if TYPE_CHECKING:
    from fedrl_lightning.federation.local_adaptation import LocalAdaptation
    from fedrl_lightning.federation.server.base import ServerModel
    from fedrl_lightning.learners import Learner
    from fedrl_lightning.population.agents import AgentPopulation

__all__ = ["RoundEvaluation", "evaluate_personalized", "evaluated_agents"]


def evaluated_agents(num_agents: int, count: int | None) -> list[int]:
    """``count`` agent ids evenly spaced over ``0 .. num_agents - 1``; all of them if ``None``."""
    if count is None or count >= num_agents:
        return list(range(num_agents))
    return sorted({int(a) for a in np.linspace(0, num_agents - 1, count).round()})


def evaluate_personalized(
    policy_of: Callable[[int], MLPPolicy],
    envs: dict[int, gym.vector.VectorEnv],
    episodes: int,
    run_seed: int,
    round_idx: int,
) -> np.ndarray:
    """Each evaluated agent's own policy (what it would deploy), on its own episodes.

    Every agent plays the episodes the global policy plays for it (the same reset seeds), so
    the personalized and the global return of an agent compare episode for episode; the
    action noise is the agent's own.

    Args:
        policy_of: The policy agent ``a`` would deploy.
        envs: Each evaluated agent's vector environment of ``episodes`` sub-environments.
        episodes: Episodes per agent.
        run_seed: The run's seed.
        round_idx: The round just aggregated.

    Returns:
        One mean return per agent, in the order of ``envs``.
    """
    seeds = EpisodeSeeds.after_round(run_seed, round_idx)
    means = []
    for agent, env in envs.items():
        played = play_agents(policy_of(agent), env, [agent], episodes, seeds, action_agent=agent)
        means.append(played.returns[0].mean())
    return np.array(means)


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
            self.batches[task] = (own, population.make_vector_env(slots))
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
        seeds = EpisodeSeeds.after_round(seed, round_idx)
        for task, (own, env) in self.batches.items():
            policy = self.model.policy if task is None else self._policy(task, task_only=True)
            played = play_agents(policy, env, own, self.episodes, seeds)
            returns |= dict(zip(own, played.returns.mean(axis=1), strict=True))
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
        for env in [*(batch[1] for batch in self.batches.values()), *self.own_envs.values()]:
            env.close()
        if self.adaptation is not None:
            self.adaptation.close()
