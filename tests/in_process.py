"""``python -m fedrl_lightning`` run in the test's own process, as a fresh process would run it.

A subprocess pays several seconds of imports; ``main(argv)`` in this process pays none. What a
fresh process would give the command, the in-process run gives it too, and what the command
changes in the process is put back afterwards:

- the working folder, on ``sys.path`` first (as ``python -m`` puts it), and ``tests/`` on
  ``PYTHONPATH`` (for ``faults:Crashing-v0``, in Ray's workers too);
- stdout and stderr captured at the file descriptors, so that what native code (Ray's core,
  say) writes is captured as a subprocess's pipe would capture it, and the streams that
  logging handlers were given at import (Lightning's, Ray's) write there too;
- pytest's log capture off the root logger, so that a warning reaches stderr through
  logging's last resort, as in a process without logging configured;
- the warning filters that importing the command sets up (not pytest's, which would record
  warnings instead of printing them), and nothing shown "once" before;
- an exception that escapes ``main`` printed as a traceback, with exit code 1.

The environment, random states, torch's threads and default dtype, signal handlers, logging
configuration and modules imported from the working folder are restored or dropped afterwards:
:func:`restored_process_state`, which conftest.py also applies around every test.

One thing is left as ``main`` leaves it: the garbage collector's frozen generation. ``main``
collects and then freezes what is alive, so that the cyclic collector skips the million
objects of torch's and Lightning's imports; this module freezes them too, once, when it is
imported. Unfreezing after each command would make the next command's ``gc.collect()`` scan
everything a test process holds (a second or more, hundreds of times); objects that a freeze
caught are still freed when their last reference goes.

:class:`CliProcess` is for the tests that SIGKILL a run: a process of its own, forked from a
forkserver that imported the command once, so that it starts in milliseconds.
"""

from __future__ import annotations

import gc
import io
import logging
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch

import fedrl_lightning.cli.app

TESTS = Path(__file__).parent

# The filters a fresh ``python -m fedrl_lightning`` has once its imports ran: those at this
# module's import, less the two that pytest adds while it collects (it records every
# deprecation warning; a plain process ignores those outside ``__main__``).
_PYTEST_FILTERS = {
    ("always", None, DeprecationWarning, None, 0),
    ("always", None, PendingDeprecationWarning, None, 0),
}
FRESH_FILTERS = [f for f in warnings.filters if f not in _PYTEST_FILTERS]
# The objects of the imports, frozen as main() freezes them (see above).
gc.collect()
gc.freeze()
# The streams that logging handlers made at import (Lightning's, Ray's) write to.
_IMPORT_STREAMS = (sys.stdout, sys.stderr)


def cli_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The command's environment: this one, ``tests/`` importable, and ``env`` on top."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        **(env or {}),
    }


def _all_loggers() -> list[logging.Logger]:
    loggers = [logging.getLogger()]
    loggers += [
        logger
        for logger in list(logging.Logger.manager.loggerDict.values())
        if isinstance(logger, logging.Logger)
    ]
    return loggers


def _pytest_handler(handler: logging.Handler) -> bool:
    return type(handler).__module__.startswith("_pytest")


@contextmanager
def restored_process_state() -> Iterator[None]:
    """Put back, after the block, the process-wide state that a command or a test may change.

    The working folder, ``sys.path``, the environment, Python's, numpy's and torch's random
    states, torch's thread count and default dtype, the SIGINT and SIGTERM handlers, every
    logger's level and propagation (and no handler left that the block added, but pytest's
    own).
    """
    cwd = os.getcwd()
    path = list(sys.path)
    environ = dict(os.environ)
    python_rng, numpy_rng = random.getstate(), np.random.get_state()
    torch_rng = torch.get_rng_state()
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    loggers = {
        logger: (logger.level, set(logger.handlers), logger.propagate) for logger in _all_loggers()
    }
    try:
        yield
    finally:
        os.chdir(cwd)
        sys.path[:] = path
        for name in set(os.environ) - set(environ):
            del os.environ[name]
        for name, value in environ.items():
            if os.environ.get(name) != value:
                os.environ[name] = value
        random.setstate(python_rng)
        np.random.set_state(numpy_rng)
        torch.set_rng_state(torch_rng)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        torch.set_default_dtype(dtype)
        for signum, handler in handlers.items():
            if handler is not None:  # None: not installed from Python, cannot be reinstalled
                signal.signal(signum, handler)
        for logger, (level, logger_handlers, propagate) in loggers.items():
            if logger.level != level:  # setLevel clears every logger's cache: thousands here
                logger.setLevel(level)
            logger.propagate = propagate
            for handler in list(logger.handlers):
                if handler not in logger_handlers and not _pytest_handler(handler):
                    logger.removeHandler(handler)


@contextmanager
def _captured_output(
    stdout_file: io.BufferedRandom, stderr_file: io.BufferedRandom
) -> Iterator[None]:
    """Send file descriptors 1 and 2, ``sys.stdout``/``sys.stderr`` and the logging handlers
    that write to them into the two files, as a subprocess's pipes would receive them."""
    old_streams = (sys.stdout, sys.stderr)
    for stream in old_streams:
        stream.flush()
    saved_fds = os.dup(1), os.dup(2)
    new_stdout = io.TextIOWrapper(
        open(1, "wb", buffering=0, closefd=False), encoding="utf-8", newline="", write_through=True
    )
    new_stderr = io.TextIOWrapper(
        open(2, "wb", buffering=0, closefd=False),
        encoding="utf-8",
        errors="backslashreplace",
        newline="",
        write_through=True,
    )
    rebound = []
    for logger in _all_loggers():
        for handler in logger.handlers:
            stream = getattr(handler, "stream", None)
            if type(handler) is logging.FileHandler or stream is None:
                continue
            if stream in (sys.stderr, sys.__stderr__, _IMPORT_STREAMS[1]):
                rebound.append((handler, stream))
                handler.setStream(new_stderr)
            elif stream in (sys.stdout, sys.__stdout__, _IMPORT_STREAMS[0]):
                rebound.append((handler, stream))
                handler.setStream(new_stdout)
    os.dup2(stdout_file.fileno(), 1)
    os.dup2(stderr_file.fileno(), 2)
    sys.stdout, sys.stderr = new_stdout, new_stderr
    try:
        yield
    finally:
        for stream in (new_stdout, new_stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a reader that went away: nothing left to write
                pass
        sys.stdout, sys.stderr = old_streams
        os.dup2(saved_fds[0], 1)
        os.dup2(saved_fds[1], 2)
        for fd in saved_fds:
            os.close(fd)
        for handler, stream in rebound:
            handler.setStream(stream)


def _show_on_stderr(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


@contextmanager
def _fresh_warnings() -> Iterator[None]:
    """Warnings filtered as a fresh process filters them, and printed on stderr."""
    once = dict(warnings.onceregistry)
    warnings.onceregistry.clear()
    try:
        with warnings.catch_warnings():  # also makes every module's "already shown" stale
            warnings.filters[:] = FRESH_FILTERS
            warnings.showwarning = _show_on_stderr
            yield
    finally:
        warnings.onceregistry.clear()
        warnings.onceregistry.update(once)


@contextmanager
def _without_root_handlers() -> Iterator[None]:
    """No handler on the root logger (pytest's log capture), as in a plain process."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    root.handlers.clear()
    try:
        yield
    finally:
        root.handlers[:] = handlers


def _ray_is_running() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


class SharedRay:
    """One local Ray instance per test process, for the Ray tests to join.

    A command that starts Ray of its own pays for it: Ray's processes start, then each worker
    imports torch and Lightning, about ten seconds a run on two cores. Where this process has
    initialised Ray, the command's Ray executor joins it instead (as a driver on a cluster
    would) and finds its workers warm. The instance has what the command would have started
    for ``--trainer.num_workers 2``: two CPUs, no dashboard, nothing of the workers' output on
    the driver; ``tests/`` is on its workers' ``PYTHONPATH`` (for ``faults``).

    The tests that need a Ray of the command's own (or a cluster) stop it first
    (:meth:`stop`); :func:`run_in_process` stops it too for a command of a test that did not
    ask to join it, so that such a command starts its own as a user's would.
    """

    def __init__(self) -> None:
        self.started = False
        self.joined = False

    def start(self) -> None:
        """Start the instance, unless it runs."""
        if self.started:
            return
        if _ray_is_running():
            raise RuntimeError("Ray is initialized in this process, but not as the shared Ray")
        import ray

        previous = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS), previous or ""])
        try:
            ray.init(
                address="local",
                num_cpus=2,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
            )
        finally:
            if previous is None:
                del os.environ["PYTHONPATH"]
            else:
                os.environ["PYTHONPATH"] = previous
        self.started = True

    def stop(self) -> None:
        """Shut the instance down, if it runs."""
        if self.started:
            import ray

            ray.shutdown()
            self.started = False


SHARED_RAY = SharedRay()
"""The test process's shared Ray instance (``conftest.py``'s ``shared_ray`` fixture)."""


def _exit_code(done: SystemExit) -> int:
    """The exit code the interpreter gives ``raise SystemExit(code)``."""
    if done.code is None:
        return 0
    if isinstance(done.code, int):
        return done.code
    print(done.code, file=sys.stderr)
    return 1


def run_in_process(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``python -m fedrl_lightning *args`` in ``cwd``, run by ``main`` in this process.

    Args:
        *args: The command line after ``python -m fedrl_lightning``.
        cwd: The working folder.
        env: Environment variables to set for the command, on top of :func:`cli_env`'s.

    Returns:
        What a subprocess would have returned: the exit code, and stdout and stderr as text.
    """
    if not SHARED_RAY.joined:  # the command starts a Ray of its own, if it uses one
        SHARED_RAY.stop()
    if _ray_is_running() and not SHARED_RAY.joined:  # which the command's executor would join
        raise RuntimeError("Ray is initialized in this process; shut it down before run_cli")
    modules = set(sys.modules)
    cwd = Path(cwd).resolve()
    with ExitStack() as stack:
        stack.enter_context(restored_process_state())
        stdout_file = stack.enter_context(tempfile.TemporaryFile())
        stderr_file = stack.enter_context(tempfile.TemporaryFile())
        os.environ.update(cli_env(env))
        os.chdir(cwd)
        sys.path.insert(0, str(cwd))
        try:
            with _captured_output(stdout_file, stderr_file), _fresh_warnings():
                with _without_root_handlers():
                    try:
                        code = fedrl_lightning.cli.app.main(list(args))
                    except SystemExit as done:
                        code = _exit_code(done)
                    except Exception:  # what the interpreter would print, and its exit code
                        traceback.print_exc()
                        code = 1
        finally:
            for name in set(sys.modules) - modules:  # modules of the working folder, as mymod.py
                file = getattr(sys.modules[name], "__file__", None) or ""
                if file.startswith(f"{cwd}{os.sep}"):
                    del sys.modules[name]
        stdout_file.seek(0)
        stderr_file.seek(0)
        stdout = stdout_file.read().decode("utf-8", errors="replace")
        stderr = stderr_file.read().decode("utf-8", errors="replace")
    return subprocess.CompletedProcess(
        ["python", "-m", "fedrl_lightning", *args], code, stdout, stderr
    )


# --- a process of its own, without the imports' seconds --------------------------------------

# A fresh interpreter that has imported the command once; each process is forked from it.
_FORKSERVER = multiprocessing.get_context("forkserver")
_FORKSERVER.set_forkserver_preload(["fedrl_lightning.cli.app", "faults"])


def _forked_main(
    args: list[str], cwd: str, env: dict[str, str], stdout_path: str, stderr_path: str
) -> NoReturn:
    """What ``python -m fedrl_lightning *args`` does, in a process forked from the forkserver."""
    for fd, path in ((1, stdout_path), (2, stderr_path)):
        file = os.open(path, os.O_WRONLY)
        os.dup2(file, fd)
        os.close(file)
    sys.stdout = io.TextIOWrapper(open(1, "wb", closefd=False), encoding="utf-8")
    sys.stderr = io.TextIOWrapper(
        open(2, "wb", closefd=False),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.path.insert(0, cwd)
    sys.exit(fedrl_lightning.cli.app.main(args))


class CliProcess:
    """``python -m fedrl_lightning`` in a process of its own, to stop with a signal or SIGKILL.

    The process is forked from a forkserver: a fresh interpreter that imported the command
    once, so a process starts in milliseconds, not the seconds of a subprocess's imports.
    Otherwise it is one: its own pid, working folder and environment, its stdout and stderr
    in files, and its exit code, negative for the signal that ended it, as ``Popen`` gives.

    Args:
        args: The command line after ``python -m fedrl_lightning``.
        cwd: The working folder.
        env: Environment variables to set, on top of :func:`cli_env`'s.
    """

    def __init__(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.args = ["python", "-m", "fedrl_lightning", *args]
        self._output = Path(tempfile.mkdtemp(prefix="fedrl-cli-"))
        self._stdout, self._stderr = self._output / "stdout", self._output / "stderr"
        self._stdout.touch()
        self._stderr.touch()
        target_args = (list(args), str(Path(cwd).resolve()), cli_env(env))
        self._process = _FORKSERVER.Process(
            target=_forked_main, args=(*target_args, str(self._stdout), str(self._stderr))
        )
        self._process.start()
        self.pid = self._process.pid

    @property
    def returncode(self) -> int | None:
        """The exit code, negative for a signal; ``None`` while the process runs."""
        return self._process.exitcode

    def poll(self) -> int | None:
        """The exit code, or ``None`` while the process runs."""
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to end; its exit code.

        Raises:
            subprocess.TimeoutExpired: Where it still runs after ``timeout`` seconds.
        """
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self._process.exitcode

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` to the process."""
        os.kill(self.pid, signum)

    @property
    def stdout(self) -> str:
        """What the process wrote to stdout so far."""
        return self._stdout.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        """What the process wrote to stderr so far."""
        return self._stderr.read_text(errors="replace")

    def close(self) -> None:
        """Kill the process if it still runs, and remove its output files."""
        if self._process.exitcode is None:
            self._process.kill()
            self._process.join()
        self._process.close()
        shutil.rmtree(self._output, ignore_errors=True)
