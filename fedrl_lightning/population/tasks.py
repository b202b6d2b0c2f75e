"""Multi-task populations: agents in groups that each have an environment of their own."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import TransformObservation
from gymnasium.wrappers.vector import TransformObservation as TransformVectorObservation

from fedrl_lightning.errors import ConfigError

if TYPE_CHECKING:
    from fedrl_lightning.population.agents import AgentPopulation

__all__ = ["TASK_OPTIONS", "TaskSet"]

TASK_OPTIONS = (
    "env_id",
    "num_agents",
    "env_kwargs",
    "max_episode_steps",
    "heterogeneity",
    "heterogeneity_mode",
)
"""What a task may set; what it leaves out comes from the ``data`` section itself."""

SPACE_HPARAMS = ("observation_dim", "num_actions", "continuous", "action_low", "action_high")


class TaskSet:
    """The tasks of a population, each a one-task population of its own agents.

    Agents are numbered task by task: with tasks of 5 and 5 agents, agents 0-4 are task 0's
    (its agents 0-4) and agents 5-9 task 1's (its agents 0-4). Each task's heterogeneity is
    spread over its own agents. With ``conditioned``, every observation of task ``t`` gets a
    one-hot task id appended (``num_tasks`` more features), so one policy can serve tasks that
    share their spaces and tell them apart.

    Args:
        specs: Each task's options (:data:`TASK_OPTIONS`).
        defaults: The population's own options, for what a task leaves out.
        num_agents: The population's size. Tasks that give no ``num_agents`` share what the
            others leave, evenly; all of them must add up to it.
        conditioned: Append the one-hot task id to every observation.
        build: Builds a one-task population from options.
    """

    def __init__(
        self,
        specs: Sequence[Mapping[str, Any]],
        defaults: Mapping[str, Any],
        num_agents: int,
        conditioned: bool,
        build: Callable[..., AgentPopulation],
    ) -> None:
        if not specs or isinstance(specs, str | Mapping):
            raise ConfigError("data.tasks: give a list of tasks, such as [{env_id: CartPole-v1}]")
        for index, spec in enumerate(specs):
            if not isinstance(spec, Mapping):
                raise ConfigError(f"data.tasks[{index}]: a task is a mapping, got {spec!r}")
            unknown = sorted(set(spec) - set(TASK_OPTIONS))
            if unknown:
                raise ConfigError(
                    f"data.tasks[{index}].{unknown[0]}: not an option of a task "
                    f"(a task may set {', '.join(TASK_OPTIONS)})"
                )
        self.sizes = self._sizes(specs, num_agents)
        self.conditioned = conditioned
        self.populations = []
        for index, spec in enumerate(specs):
            options = {key: spec.get(key, defaults.get(key)) for key in TASK_OPTIONS}
            options["num_agents"] = self.sizes[index]
            try:
                self.populations.append(build(**options))
            except ConfigError as err:
                raise ConfigError(f"data.tasks[{index}]: {err}") from None
        self._firsts = np.cumsum([0, *self.sizes[:-1]]).tolist()
        if conditioned and not self.same_spaces:
            raise ConfigError(
                "data.task_conditioned: the tasks' observation and action spaces differ; a "
                "task-conditioned policy needs them equal (scope the input and output layers "
                "to the task instead: --trainer.server Shared --trainer.server.task [...])"
            )

    def __len__(self) -> int:
        """How many tasks there are."""
        return len(self.populations)

    @property
    def same_spaces(self) -> bool:
        """Whether every task has the first task's observation and action spaces."""
        first = self._spaces(0)
        return all(self._spaces(t) == first for t in range(1, len(self)))

    def locate(self, agent_id: int) -> tuple[int, int]:
        """``(task, the agent's id within it)`` of agent ``agent_id``."""
        for task in range(len(self) - 1, -1, -1):
            if agent_id >= self._firsts[task]:
                return task, agent_id - self._firsts[task]
        raise ValueError(f"agent {agent_id} is in no task")

    def env_hparams(self, task: int) -> dict[str, Any]:
        """The sizes of task ``task``'s policy, its one-hot task id included."""
        hparams = dict(zip(SPACE_HPARAMS, self._spaces(task), strict=True))
        if self.conditioned:
            hparams["observation_dim"] += len(self)
        return hparams

    def one_hot(self, task: int) -> np.ndarray:
        """Task ``task``'s id as the features a conditioned observation ends with."""
        code = np.zeros(len(self), np.float32)
        code[task] = 1.0
        return code

    def condition(self, env: gym.Env | gym.vector.VectorEnv, task: int) -> Any:
        """``env`` with task ``task``'s one-hot id appended to its observations, if conditioned."""
        if not self.conditioned:
            return env
        code = self.one_hot(task)
        if isinstance(env, gym.vector.VectorEnv):
            single = _appended(env.single_observation_space, code)
            return TransformVectorObservation(
                env,
                lambda obs: np.concatenate(
                    [obs, np.broadcast_to(code, (len(obs), len(code)))], axis=1
                ).astype(np.float32),
                gym.vector.utils.batch_space(single, env.num_envs),
                single_observation_space=single,
            )
        return TransformObservation(
            env,
            lambda obs: np.concatenate([obs, code]).astype(np.float32),
            _appended(env.observation_space, code),
        )

    def _spaces(self, task: int) -> tuple[Any, ...]:
        population = self.populations[task]
        return tuple(getattr(population, name) for name in SPACE_HPARAMS)

    @staticmethod
    def _sizes(specs: Sequence[Mapping[str, Any]], num_agents: int) -> list[int]:
        given = [spec.get("num_agents") for spec in specs]
        for index, size in enumerate(given):
            if size is not None and (isinstance(size, bool) or not isinstance(size, int)):
                raise ConfigError(f"data.tasks[{index}].num_agents: expected an integer")
            if size is not None and size <= 0:
                raise ConfigError(f"data.tasks[{index}].num_agents must be positive, got {size}")
        left = num_agents - sum(size for size in given if size is not None)
        missing = [index for index, size in enumerate(given) if size is None]
        if missing and (left <= 0 or left % len(missing)):
            raise ConfigError(
                f"data.num_agents ({num_agents}): the tasks without num_agents cannot share the "
                f"{left} agents the others leave evenly; give every task its num_agents"
            )
        sizes = [size if size is not None else left // len(missing) for size in given]
        if sum(sizes) != num_agents:
            raise ConfigError(
                f"data.tasks: the tasks' num_agents add up to {sum(sizes)}, but data.num_agents "
                f"is {num_agents}"
            )
        return sizes


def _appended(space: spaces.Space, code: np.ndarray) -> spaces.Box:
    """``space`` with ``len(code)`` more features in [0, 1]."""
    assert isinstance(space, spaces.Box)  # env_specs.observation_dim refuses any other space
    low = np.concatenate([space.low, np.zeros_like(code)]).astype(np.float32)
    high = np.concatenate([space.high, np.ones_like(code)]).astype(np.float32)
    return spaces.Box(low, high, dtype=np.float32)
