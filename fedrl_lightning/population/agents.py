"""The population of agents: whose environment is what, and how to build it."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any, Literal

import gymnasium as gym
import numpy as np

import fedrl_lightning.population.envs  # noqa: F401  (registers fedrl/* ids)
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.population.byzantine import Byzantine, ByzantineOptions
from fedrl_lightning.population.env_specs import (
    action_spec,
    dependency_error,
    episode_limit,
    find_spec,
    observation_dim,
)
from fedrl_lightning.population.heterogeneity import Heterogeneity, Spread
from fedrl_lightning.population.tasks import TaskSet
from fedrl_lightning.seeding import Stream

__all__ = ["AgentPopulation"]

log = logging.getLogger(__name__)


class AgentPopulation:
    """``num_agents`` agents, each with its own instance of a gymnasium environment.

    This is the ``data`` section of the command line: it says where experience comes from.
    Agents are numbered ``0 .. num_agents - 1``; each agent's environment is built fresh for
    every local fit and seeded from (run seed, round, agent id), so no environment stays open
    between rounds. ``heterogeneity`` gives agents their own values of environment attributes,
    such as CartPole's pole ``length``.

    Args:
        env_id: A registered gymnasium id, such as ``fedrl/Simple-v0`` or ``CartPole-v1``;
            ``module:Env-v0`` first imports ``module``, which registers ``Env-v0``.
        num_agents: How many agents the federation has.
        env_kwargs: Keyword arguments passed to ``gymnasium.make`` for every agent.
        episodes_per_update: Episodes per REINFORCE update (one batch of the episode dataset).
        num_envs: Environments each agent steps in lock-step during its rollouts.
        max_episode_steps: Steps after which every episode is cut short (truncated, not
            terminated, through gymnasium's ``TimeLimit``), in training and in evaluation.
            ``None`` keeps the environment's own limit (500 for ``CartPole-v1``, 100 for
            ``fedrl/Simple-v0``); an environment without one needs this set, or an episode
            could run forever.
        heterogeneity: Environment attribute to how it spreads over the agents: a range
            ``[low, high]`` or ``{choices: [...]}``; each agent gets its own value, for
            example ``{length: [0.1, 0.9]}`` for CartPole.
        heterogeneity_mode: ``spread`` spaces values evenly over the agents; ``sample`` draws
            them at random from the seed and the agent id.
        byzantine: Agents that misbehave, such as ``{agents: 3, attack: sign_flip}``: a
            count picked at random from the seed (``agents.csv`` lists them) or a list of
            ids, and the attack they all run, with its ``scale`` or ``noise_std``
            (:class:`~fedrl_lightning.population.byzantine.ByzantineOptions`).
        tasks: Groups of agents with environments of their own (a multi-task federation):
            a list of tasks, each setting any of ``env_id``, ``num_agents``, ``env_kwargs``,
            ``max_episode_steps``, ``heterogeneity`` and ``heterogeneity_mode`` (what a task
            leaves out is this section's). Agents are numbered task by task; tasks without
            ``num_agents`` share ``num_agents`` evenly. ``agents.csv`` lists each agent's task.
        task_conditioned: Append a one-hot task id to every observation, so that one policy
            serves tasks that share their spaces and tells them apart.
        model_heterogeneity: Model hyperparameter to how it spreads over the agents, as in
            ``heterogeneity``; each agent's own model gets its own value
            (``heterogeneity_mode`` says how), for example ``{hidden_dim: {choices: [32, 64,
            128]}, lr: [1e-3, 1e-2]}``. Agents with models of their own learn together only
            through ``trainer.server Distilled``.
        seed: The run seed, for ``sample`` (the command line links it from
            ``--seed_everything``).
    """

    def __init__(
        self,
        env_id: str = "fedrl/Simple-v0",
        num_agents: int = 10,
        env_kwargs: dict[str, Any] | None = None,
        episodes_per_update: int = 1,
        num_envs: int = 1,
        max_episode_steps: int | None = None,
        heterogeneity: dict[str, Spread] | None = None,
        heterogeneity_mode: Literal["spread", "sample"] = "spread",
        byzantine: ByzantineOptions | None = None,
        tasks: list[dict[str, Any]] | None = None,
        task_conditioned: bool = False,
        model_heterogeneity: dict[str, Spread] | None = None,
        seed: int = 42,
    ) -> None:
        for name, value in (
            ("num_agents", num_agents),
            ("episodes_per_update", episodes_per_update),
            ("num_envs", num_envs),
        ):
            if value <= 0:
                raise ConfigError(f"data.{name} must be positive, got {value}")
        self.env_id = env_id
        self.num_agents = num_agents
        self.env_kwargs = dict(env_kwargs or {})
        self.episodes_per_update = episodes_per_update
        self.num_envs = num_envs
        self.heterogeneity = Heterogeneity(
            heterogeneity or {}, num_agents, heterogeneity_mode, seed
        )
        self.byzantine = Byzantine(byzantine, num_agents, seed)
        self.model_heterogeneity = Heterogeneity(
            model_heterogeneity or {},
            num_agents,
            heterogeneity_mode,
            seed,
            Stream.MODEL_HETEROGENEITY,
            "data.model_heterogeneity",
        )
        self.tasks: TaskSet | None = None
        if tasks is not None or task_conditioned:
            defaults = {
                "env_id": env_id,
                "env_kwargs": env_kwargs,
                "max_episode_steps": max_episode_steps,
                "heterogeneity": heterogeneity,
                "heterogeneity_mode": heterogeneity_mode,
            }
            shared = {"episodes_per_update": episodes_per_update, "num_envs": num_envs}
            self._split_into_tasks(
                tasks or [{}], task_conditioned, defaults, shared | {"seed": seed}
            )
            return
        self.spec = find_spec(env_id)
        self.max_episode_steps = episode_limit(
            self.spec, self.env_kwargs, max_episode_steps, env_id
        )
        probe = self._make(disable_env_checker=False)
        self.observation_dim = observation_dim(probe, env_id)
        self.continuous, self.num_actions, self.action_low, self.action_high = action_spec(
            probe, env_id
        )
        if self.continuous and self.byzantine.attack == "random_action":
            bounds = np.array([self.action_low, self.action_high])
            if not np.isfinite(bounds).all():
                raise ConfigError(
                    "data.byzantine.attack random_action needs finite action bounds; "
                    f"{env_id} has {probe.action_space}"
                )
        self.heterogeneity.apply(probe, 0)  # names a missing attribute now, not mid-run
        probe.reset(seed=0)
        probe.close()

    def _split_into_tasks(
        self,
        tasks: list[dict[str, Any]],
        conditioned: bool,
        defaults: dict[str, Any],
        shared: dict[str, Any],
    ) -> None:
        """Make this a population of tasks, each a one-task population of its own agents.

        Args:
            tasks: Each task's options.
            conditioned: Append the one-hot task id to observations.
            defaults: This section's options, for what a task leaves out.
            shared: The options every task has as this section does.
        """
        self.tasks = TaskSet(
            tasks,
            defaults,
            self.num_agents,
            conditioned,
            lambda **task: AgentPopulation(**task, **shared),
        )
        first = self.tasks.populations[0]
        self.spec, self.max_episode_steps = first.spec, first.max_episode_steps
        for name, value in self.tasks.env_hparams(0).items():
            setattr(self, name, value)
        if len(self.tasks) > 1:
            self.env_id = " + ".join(p.env_id for p in self.tasks.populations)

    @property
    def task_sizes(self) -> list[int]:
        """How many agents each task has, agents numbered task by task."""
        return self.tasks.sizes if self.tasks is not None else [self.num_agents]

    def task_of(self, agent_id: int) -> int:
        """The task of agent ``agent_id``."""
        return self.tasks.locate(agent_id)[0] if self.tasks is not None else 0

    def task_population(self, task: int) -> AgentPopulation:
        """Task ``task``'s agents, numbered from 0, as a population of their own."""
        return self.tasks.populations[task] if self.tasks is not None else self

    def task_hparams(self, task: int) -> dict[str, Any]:
        """The sizes of task ``task``'s policy: its observation and action sizes and bounds."""
        if self.tasks is not None:
            return self.tasks.env_hparams(task)
        names = ("observation_dim", "num_actions", "continuous", "action_low", "action_high")
        return {name: getattr(self, name) for name in names}

    def agent_parameters(self, agent_id: int) -> dict[str, Any]:
        """Agent ``agent_id``'s environment attribute values (empty without heterogeneity)."""
        if self.tasks is not None:
            task, local = self.tasks.locate(agent_id)
            return {"task": task, **self.tasks.populations[task].agent_parameters(local)}
        return self.heterogeneity.values(agent_id)

    def model_hparams_of(self, agent_id: int) -> dict[str, Any]:
        """Agent ``agent_id``'s own model hyperparameters (``data.model_heterogeneity``)."""
        return self.model_heterogeneity.values(agent_id)

    @property
    def agents_differ(self) -> bool:
        """Whether agents differ (heterogeneity, attacks, tasks, models): ``agents.csv`` says."""
        differ = self.heterogeneity or self.byzantine or self.model_heterogeneity
        return bool(differ or self.tasks is not None)

    def agent_table(self) -> list[dict[str, Any]]:
        """One row per agent: its id, environment attribute values and attack, if any."""
        table = []
        for agent_id in range(self.num_agents):
            entry = {"agent": agent_id, **self.agent_parameters(agent_id)}
            if self.byzantine:
                entry["byzantine"] = self.byzantine.attack_of(agent_id) or ""
            own = self.model_hparams_of(agent_id).items()
            entry |= {f"model.{name}": value for name, value in own}
            table.append(entry)
        return table

    def make_env(self, agent_id: int, render_mode: str | None = None) -> gym.Env:
        """Build agent ``agent_id``'s environment, with its own attribute values.

        gymnasium's passive env checker ran once on the probe built by ``__init__``, so agents'
        environments skip its wrapper and the per-step cost that comes with it.

        Args:
            agent_id: The agent.
            render_mode: gymnasium's ``render_mode``, such as ``rgb_array`` to record videos.
        """
        if self.tasks is not None:
            task, local = self.tasks.locate(agent_id)
            env = self.tasks.populations[task].make_env(local, render_mode)
            return self.tasks.condition(env, task)
        env = self._make(disable_env_checker=True, render_mode=render_mode)
        return self.heterogeneity.apply(env, agent_id)

    def make_rollout_env(self, agent_id: int) -> gym.Env | gym.vector.VectorEnv:
        """What agent ``agent_id``'s rollouts step: its environment, or ``num_envs`` copies.

        The copies come from the environment's native vector implementation when it has one
        with every varying attribute (CartPole's, SimpleEnv's), set to the agent's values;
        otherwise from gymnasium's ``SyncVectorEnv`` over the agent's own environments. Either
        way episodes truncate after ``max_episode_steps``.
        """
        if self.tasks is not None:
            task, local = self.tasks.locate(agent_id)
            env = self.tasks.populations[task].make_rollout_env(local)
            return self.tasks.condition(env, task)
        if self.num_envs == 1:
            return self.make_env(agent_id)
        native = self._make_native_vector(self.num_envs)
        if native is not None and self.heterogeneity.fits(native):
            return self.heterogeneity.apply(native, agent_id)
        if native is not None:
            native.close()
        return gym.vector.SyncVectorEnv([lambda: self.make_env(agent_id)] * self.num_envs)

    def make_vector_env(self, agent_ids: list[int]) -> gym.vector.VectorEnv:
        """Build one vectorised environment with a sub-environment per entry of ``agent_ids``.

        Each sub-environment is seeded on its own, so the environment's native vector
        implementation is used only when it accepts a list of seeds (it sets
        ``accepts_seed_list``, as ``fedrl/Simple-v0`` does) and agents do not differ;
        otherwise gymnasium's ``SyncVectorEnv`` steps the agents' own environments. Either way
        episodes truncate after ``max_episode_steps``.
        """
        if self.tasks is not None:
            return gym.vector.SyncVectorEnv([partial(self.make_env, a) for a in agent_ids])
        if not self.heterogeneity:
            native = self._make_native_vector(len(agent_ids))
            if native is not None and getattr(native, "accepts_seed_list", False):
                return native
            if native is not None:
                native.close()
        return gym.vector.SyncVectorEnv([partial(self.make_env, a) for a in agent_ids])

    def _make_native_vector(self, num_envs: int) -> gym.vector.VectorEnv | None:
        """The native vector environment, or ``None`` when there is none that takes the limit.

        gymnasium passes a registered ``max_episode_steps`` to every vector entry point (as
        CartPole's and SimpleEnv's take it); one that does not accept the argument cannot cap
        its episodes, so the caller steps single environments instead.
        """
        if self.spec.vector_entry_point is None:
            return None
        try:
            return gym.make_vec(
                self.env_id,
                num_envs=num_envs,
                vectorization_mode="vector_entry_point",
                max_episode_steps=self.max_episode_steps,
                **self.env_kwargs,
            )
        except TypeError as err:
            log.debug("not using %s's native vector environment: %s", self.env_id, err)
            return None

    def _make(self, disable_env_checker: bool, render_mode: str | None = None) -> gym.Env:
        rendering = {"render_mode": render_mode} if render_mode is not None else {}
        try:
            return gym.make(
                self.env_id,
                max_episode_steps=self.max_episode_steps,
                disable_env_checker=disable_env_checker,
                **rendering,
                **self.env_kwargs,
            )
        except TypeError as err:
            raise ConfigError(f"data.env_kwargs: {err}") from None
        except gym.error.DependencyNotInstalled as err:
            raise dependency_error(self.env_id, err) from None
        except ConfigError:
            raise
        except Exception as err:  # an environment's constructor refusing a value, its own way
            option = "data.env_kwargs" if self.env_kwargs else "data.env_id"
            reason = " ".join(str(err).split()) or type(err).__name__
            raise ConfigError(f"{option}: {self.env_id} could not be made ({reason})") from None
