"""Where a round's local fits run: the executor interface, and the in-process one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from fedrl_lightning.federation.local_fit import LocalFit, fit_agent
from fedrl_lightning.population.agents import AgentPopulation

__all__ = ["Executor", "SequentialExecutor", "describe_failure"]


def describe_failure(err: BaseException) -> str:
    """One line saying why an agent failed: the exception's type and first line."""
    return f"{type(err).__name__}: {err}".splitlines()[0]


class Executor(ABC):
    """Runs the local fits of each round, and says which agents failed.

    An executor is opened once per run with the population, runs every round's fits (submitted,
    then collected), and is closed when the run ends. Every fit writes its checkpoint to the task's
    ``checkpoint_path``; the federated loop reads the checkpoints that exist.
    """

    def open(self, population: AgentPopulation, verbose: bool) -> None:
        """Get ready to run fits on ``population``'s agents."""
        self.population = population
        self.verbose = verbose

    @abstractmethod
    def submit(self, tasks: Sequence[LocalFit]) -> None:
        """Start a round's fits, which all start from the same global weights.

        Only one round is in flight at a time: :meth:`collect` ends it. An executor that runs
        fits in parallel starts them now, so they run while the caller evaluates the previous
        round; one that runs them in this process waits for :meth:`collect`.
        """

    @abstractmethod
    def collect(self) -> dict[int, str]:
        """Wait for the submitted round's fits to end.

        Returns:
            Why each agent that failed, failed, by agent id. An agent not listed wrote its
            checkpoint.
        """

    def close(self) -> None:  # noqa: B027  (a hook: most executors hold nothing)
        """Release what :meth:`open` acquired."""


class SequentialExecutor(Executor):
    """Runs the local fits one after another, in this process, when they are collected."""

    def __init__(self) -> None:
        self._tasks: list[LocalFit] = []

    def submit(self, tasks: Sequence[LocalFit]) -> None:
        """Keep ``tasks`` for :meth:`collect`."""
        self._tasks = list(tasks)

    def collect(self) -> dict[int, str]:
        """Fit each agent in turn; an exception fails that agent only."""
        tasks, self._tasks = self._tasks, []
        failures: dict[int, str] = {}
        for task in tasks:
            try:
                fit_agent(task, self.population)
            except Exception as err:  # an agent's failure, whatever it is, must not end the round
                failures[task.agent_id] = describe_failure(err)
        return failures
