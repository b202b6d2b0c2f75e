"""Running a round's local fits as Ray tasks, on this machine or on a Ray cluster."""

from __future__ import annotations

import dataclasses
import logging
import signal
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.executors.base import Executor, describe_failure
from fedrl_lightning.federation.local_fit import LocalFit, fit_agent
from fedrl_lightning.population.agents import AgentPopulation
from fedrl_lightning.run.checkpoints import atomic_write_bytes
from fedrl_lightning.run.console import quiet_lightning
from fedrl_lightning.run.interrupts import (
    deferred_signals,
    interrupted_by,
    keep_signal_handlers,
)

__all__ = ["RayExecutor"]

WAIT_SLICE = 0.2  # seconds between looks at SIGINT / SIGTERM while waiting for fits


def fit_remotely(
    task: LocalFit,
    global_state: dict[str, torch.Tensor],
    population: AgentPopulation,
    verbose: bool,
) -> tuple[bytes, list[bytes]]:
    """A Ray task's body: fit one agent on the worker; return its checkpoint's bytes.

    The files its parts write besides (an agent's agent-scoped values) come back as bytes
    too, in the order of :meth:`FitPart.written_files`, for the driver to keep in the run
    folder (they are the agent's own: they count as no traffic).
    """
    with quiet_lightning(verbose), tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "agent.ckpt"
        extras = {name: part.relocated(Path(folder) / name) for name, part in task.extras.items()}
        for name in extras:
            (Path(folder) / name).mkdir()
        task = dataclasses.replace(
            task, global_state=global_state, checkpoint_path=path, extras=extras
        )
        checkpoint = fit_agent(task, population).read_bytes()
        written = [file for part in extras.values() for file in part.written_files()]
        return checkpoint, [file.read_bytes() for file in written]


class RayExecutor(Executor):
    """Runs every sampled agent's local fit as a Ray task, each with its own fresh Trainer.

    The global weights go to the workers once per round through Ray's object store. Each task
    returns its agent's checkpoint as bytes, which the driver writes to the run folder and
    then loads like any other agent checkpoint, with ``weights_only=True``. Returning bytes
    rather than a path needs no storage shared between the machines of a cluster. A round's
    fits start as soon as they are submitted, so they run while the driver evaluates and saves
    the previous round.

    Ray's calls cannot pass on an exception raised by a signal handler, so they run under
    :func:`~fedrl_lightning.run.interrupts.deferred_signals`, and a round's fits are awaited in
    slices of ``WAIT_SLICE`` seconds: SIGINT or SIGTERM stops the driver within one slice.
    Closing the executor, as an interrupted run does, cancels the fits still running and stops
    the Ray instance it started, with its workers.

    Args:
        num_workers: CPUs of the local Ray instance, one local fit per CPU; ``None``: all of
            this machine's. Not used when joining a cluster.
        address: ``auto``, ``host:port`` or ``ray://host:port`` joins an existing cluster;
            ``None`` starts a local Ray instance, even on a node of a cluster or with
            ``RAY_ADDRESS`` set (where a bare ``ray.init()`` would join that cluster), unless
            this process has already initialised Ray.
        round_timeout: Seconds a round waits for its fits, from when they were submitted
            (while the driver evaluated the previous round); fits still running then are
            cancelled and count as failed. Which fits that cuts short depends on timing.
            ``None``: wait as long as they take.
    """

    def __init__(
        self,
        num_workers: int | None = None,
        address: str | None = None,
        round_timeout: float | None = None,
    ) -> None:
        self.num_workers = num_workers
        self.address = address
        self.round_timeout = round_timeout
        self._started_ray = False
        self._submitted: dict[Any, LocalFit] = {}
        self._submitted_at = 0.0

    def open(self, population: AgentPopulation, verbose: bool) -> None:
        """Start or join Ray, and put the population in its object store."""
        super().open(population, verbose)
        import ray

        self._ray = ray
        with deferred_signals():
            self._start_ray()
            self._population = ray.put(population)
        # A fit whose worker or node dies fails its agent in that round, as an exception does;
        # Ray's default, 3 retries, would rerun it elsewhere, later.
        self._fit = ray.remote(num_cpus=1, max_retries=0)(fit_remotely)

    def _start_ray(self) -> None:
        ray = self._ray
        if not ray.is_initialized():
            try:
                with keep_signal_handlers():  # ray.init's would end the process at once
                    ray.init(
                        address=self.address if self.address is not None else "local",
                        num_cpus=self.num_workers if self.address is None else None,
                        include_dashboard=False,
                        log_to_driver=self.verbose,
                        logging_level=logging.INFO if self.verbose else logging.ERROR,
                    )
            except SystemExit:  # Ray's own SIGTERM handlers, while ray.init runs, raise it
                self._started_ray = True  # so that close() stops what was started
                raise interrupted_by(signal.SIGTERM) from None
            except (ConnectionError, ValueError, RuntimeError) as err:
                option = (
                    f"trainer.ray_address {self.address!r}: cannot join Ray"
                    if self.address is not None
                    else f"trainer.num_workers {self.num_workers}: cannot start Ray"
                )
                raise ConfigError(f"{option} ({str(err).splitlines()[0]})") from None
            self._started_ray = True

    def submit(self, tasks: Sequence[LocalFit]) -> None:
        """Send the global weights once, and start a Ray task per fit."""
        ray = self._ray
        self._submitted_at = time.monotonic()
        self._submitted = {}
        if not tasks:
            return
        with deferred_signals():
            global_state = ray.put(tasks[0].global_state)
            for task in tasks:
                ref = self._fit.remote(
                    dataclasses.replace(task, global_state={}),
                    global_state,
                    self._population,
                    self.verbose,
                )
                self._submitted[ref] = task

    def collect(self) -> dict[int, str]:
        """Wait up to the round timeout, counted from :meth:`submit`; write the checkpoints."""
        ray = self._ray
        submitted = self._submitted
        if not submitted:
            return {}
        ready, late = self._wait(list(submitted))
        failures: dict[int, str] = {}
        with deferred_signals():
            for ref in late:
                ray.cancel(ref, force=True)
                failures[submitted[ref].agent_id] = (
                    f"TimeoutError: no result within trainer.round_timeout ({self.round_timeout} s)"
                )
            results = [(submitted[ref], self._result(ref)) for ref in ready]
        self._submitted = {}
        for task, result in results:
            if isinstance(result, str):
                failures[task.agent_id] = result
                continue
            checkpoint, written = result
            targets = [file for part in task.extras.values() for file in part.written_files()]
            try:
                for content, target in zip(written, targets, strict=True):
                    atomic_write_bytes(content, target)
                atomic_write_bytes(checkpoint, task.checkpoint_path)
            except OSError as err:
                failures[task.agent_id] = describe_failure(err)
        return failures

    def _wait(self, refs: list[Any]) -> tuple[list[Any], list[Any]]:
        """Wait for ``refs`` up to the round timeout, in slices that let signals through."""
        deadline = None
        if self.round_timeout is not None:
            deadline = self._submitted_at + self.round_timeout
        ready: list[Any] = []
        while refs:
            timeout = WAIT_SLICE
            if deadline is not None:
                timeout = max(0.0, min(timeout, deadline - time.monotonic()))
            with deferred_signals():
                done, refs = self._ray.wait(refs, num_returns=len(refs), timeout=timeout)
            ready += done
            if deadline is not None and time.monotonic() >= deadline:
                break
        return ready, refs

    def _result(self, ref: Any) -> tuple[bytes, list[bytes]] | str:
        """A finished fit's checkpoint (and personal file) bytes, or why it failed."""
        ray = self._ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as err:
            return describe_failure(err.cause or err)
        except ray.exceptions.RayError as err:  # a lost worker, a cancelled task
            return describe_failure(err)

    def close(self) -> None:
        """Cancel the fits still running, and shut Ray down if this executor started it."""
        submitted, self._submitted = self._submitted, {}
        with deferred_signals():
            for ref in submitted:
                self._ray.cancel(ref, force=True)
            if self._started_ray:
                # ray.shutdown resets SIGTERM to the default action at its start, then stops
                # Ray's processes (about a second), and leaves it so.
                with keep_signal_handlers():
                    self._ray.shutdown()
                self._started_ray = False
