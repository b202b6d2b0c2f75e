"""Stopping a run cleanly on SIGINT (Ctrl-C) and SIGTERM (``timeout``, SLURM, Kubernetes)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = [
    "STOP_SIGNALS",
    "RunInterrupted",
    "deferred_signals",
    "interrupted_by",
    "keep_signal_handlers",
    "stop_on_signals",
]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(BaseException):  # noqa: N818  (named for what happened, like KeyboardInterrupt)
    """SIGINT or SIGTERM asked the run to stop.

    A ``BaseException``, as ``KeyboardInterrupt`` is, so that code which catches ``Exception``
    to survive an agent's failure lets it through, and so does Lightning, which re-raises it
    after its own teardown.

    Args:
        signum: The signal received.
        round_idx: The round that was running, once the federated trainer has said so.

    Attributes:
        signum: The signal received.
        round_idx: The round that was running, or ``None`` when none was.
    """

    def __init__(self, signum: int, round_idx: int | None = None) -> None:
        super().__init__(signum)
        self.signum = int(signum)
        self.round_idx = round_idx

    @property
    def exit_code(self) -> int:
        """The exit code a shell gives a process that this signal ended: 128 + its number."""
        return 128 + self.signum

    def __str__(self) -> str:
        if self.round_idx is None:
            return "interrupted"
        return f"interrupted during round {self.round_idx}; resume with --ckpt_path last"


class _Handler:
    """The one SIGINT and SIGTERM handler of this process, shared by nested blocks.

    The first signal raises :class:`RunInterrupted`, or, inside :func:`deferred_signals`, is
    kept until that block ends. Later signals are ignored until the outermost
    :func:`stop_on_signals` block ends, so that the cleanup the first one started (``finally``
    blocks, Ray's shutdown) runs to its end instead of being cut short by a second traceback.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.deferring = 0
        self.received = False
        self.pending: int | None = None
        self.previous: dict[int, Any] = {}

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.received:
            return
        self.received = True
        if self.deferring:
            self.pending = signum
            return
        raise RunInterrupted(signum)

    def enter(self) -> None:
        if self.depth == 0:
            self.received, self.pending = False, None
            self.previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
            for signum in STOP_SIGNALS:
                signal.signal(signum, self)
        self.depth += 1

    def exit(self) -> None:
        self.depth -= 1
        if self.depth == 0:
            _restore(self.previous)


_HANDLER = _Handler()


def _restore(handlers: dict[int, Any]) -> None:
    for signum, handler in handlers.items():
        # None: a handler not installed from Python, which Python cannot reinstall.
        signal.signal(signum, signal.SIG_DFL if handler is None else handler)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into :class:`RunInterrupted` inside the block.

    The first signal raises :class:`RunInterrupted` wherever the main thread is, even inside
    a local fit or a long episode; later signals are ignored while the block cleans up. The
    previous handlers come back when the outermost block ends. Blocks nest, and share one
    handler. Only the main thread can handle signals: in another thread the block changes
    nothing.

    Lightning's own SIGTERM handler, installed during each ``Trainer.fit``, calls the one it
    replaced, and Lightning re-raises the exception after its teardown, which restores this
    handler.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _HANDLER.enter()
    try:
        yield
    finally:
        _HANDLER.exit()


def interrupted_by(signum: int) -> RunInterrupted:
    """The exception to raise for a signal that another library's handler caught.

    Later signals are then ignored, as after one that :func:`stop_on_signals` caught.
    """
    _HANDLER.received = True
    return RunInterrupted(signum)


@contextmanager
def keep_signal_handlers() -> Iterator[None]:
    """Put back, after the block, the SIGINT and SIGTERM handlers it replaced.

    For libraries that install their own on start-up: ``ray.init`` makes SIGTERM end the
    process at once, which would bypass :func:`stop_on_signals`.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers: dict[int, Any] = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        _restore(handlers)


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold back :class:`RunInterrupted` until the end of the block.

    For steps that must not be cut in two, such as committing a round, and for calls into
    native code that cannot pass an exception raised by a Python signal handler through
    (``ray.wait`` reports it as a ``SystemError``, late). A signal that arrives inside the
    block raises when the block ends, unless the block is already ending with an exception.
    Outside :func:`stop_on_signals`, or in a thread other than the main one, the block changes
    nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _HANDLER.deferring += 1
    try:
        yield
    finally:
        _HANDLER.deferring -= 1
    if not _HANDLER.deferring and _HANDLER.pending is not None:
        signum, _HANDLER.pending = _HANDLER.pending, None
        raise RunInterrupted(signum)
