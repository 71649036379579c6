"""The supervisor: N worker processes, restarted when they die, replaced when they recycle.

``taskward worker --processes N`` (or a recycling option) runs :class:`Supervisor` in the
process the operator started. It starts each child by running the child command (the CLI
passes the operator's own command line, so ``python -m taskward``, the ``taskward`` script
and a framework's management command all work) with the environment markers of
:mod:`taskward.runtime.supervised`; each child is a plain worker with its own worker id,
heartbeat and leases. Children are new processes, never forks: the store's connections and
SQLite's locks must not be shared between processes.

- A child that exits while the supervisor is not stopping is restarted after a delay from its
  slot's :class:`RestartBackoff` (0.5 s doubling to 30 s; back to 0.5 s once a child has run
  for 30 s), with one log line giving its index, pid and exit status or signal.
- A child that exits with ``RECYCLE_EXIT`` reached its recycling limits: it is replaced at
  once, logged as a recycle.
- A child that dies before it reported ready is a start-up failure. When
  ``start_failure_limit`` of them (default: the number of processes plus one, at least 3)
  come in a row and no child has ever been ready, the supervisor stops the others and raises
  :class:`SupervisorError` (a broken app fails once, instead of a restart storm).
- The first SIGINT or SIGTERM is forwarded to every child as SIGTERM (a graceful stop: each
  finishes its running jobs, or releases them after ``shutdown_timeout``); the supervisor
  returns once all have exited. A second one SIGKILLs them: their running jobs run again once
  their leases expire.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

from taskward.errors import TaskwardError
from taskward.runtime.supervised import CHILD_ENV, LINK_ENV, READY, RECYCLE_EXIT

__all__ = ["RestartBackoff", "Supervisor", "SupervisorError", "describe_exit"]

logger = logging.getLogger("taskward.supervisor")
# The longest the supervisor sleeps without looking at its children: a safety net only, since
# SIGCHLD, the signals it handles and readiness messages all wake it at once.
WAKE_SECONDS = 1.0


class SupervisorError(TaskwardError):
    """The supervisor gave up (children keep failing at start-up) or a child stopped badly."""


class RestartBackoff:
    """The delay before restarting one child slot: exponential, reset by a long enough run."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0, reset_after: float = 30.0):
        self.initial = initial
        self.maximum = maximum
        self.reset_after = reset_after
        """A child that ran this many seconds starts its slot's delays from ``initial`` again."""
        self.failures = 0
        """Exits of this slot in a row, each after a run shorter than ``reset_after``."""

    def after_exit(self, uptime: float) -> float:
        """Seconds to wait before restarting a child that exited after ``uptime`` seconds."""
        if uptime >= self.reset_after:
            self.failures = 0
        self.failures += 1
        return min(self.maximum, self.initial * 2.0 ** min(self.failures - 1, 32))

    def reset(self) -> None:
        """Forget earlier exits (a recycled child was healthy)."""
        self.failures = 0


def describe_exit(code: int) -> str:
    """How a child ended, from its ``Popen.returncode``: a status, or the signal's name."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    if code == RECYCLE_EXIT:
        return "exited to be recycled"
    return f"exited with status {code}"


@dataclass(eq=False)
class _Child:
    """One slot: the process running in it, if any, and when to start the next one."""

    index: int
    backoff: RestartBackoff
    proc: subprocess.Popen[bytes] | None = None
    link: socket.socket | None = None  # the supervisor's end of the child's link
    started_at: float = 0.0
    ready: bool = False
    start_at: float | None = 0.0  # monotonic time to (re)start it; None: not scheduled


class Supervisor:
    """Runs ``processes`` copies of ``command`` as worker processes (see the module docstring).

    ``env`` is the children's environment (default: this process's). :meth:`run` installs
    signal handlers, so it runs in the main thread.
    """

    def __init__(
        self,
        command: Sequence[str],
        processes: int,
        *,
        env: Mapping[str, str] | None = None,
        backoff: Callable[[], RestartBackoff] = RestartBackoff,
        start_failure_limit: int | None = None,
    ) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, got {processes}")
        self.command = list(command)
        self.env = dict(os.environ if env is None else env)
        self.children = [_Child(index, backoff()) for index in range(processes)]
        self.start_failure_limit = start_failure_limit or max(3, processes + 1)
        self._signals: list[int] = []
        self._wake = -1  # read end of the signal wake-up pipe
        self._stopping = False
        self._killed = False
        self._ever_ready = False
        self._start_failures = 0
        self._failure: str | None = None
        self._unclean: list[str] = []

    def run(self) -> None:
        """Supervise until stopped; raise :class:`SupervisorError` unless all stopped cleanly."""
        logger.info(
            "supervisor (pid %d): starting %d worker process(es)", os.getpid(), len(self.children)
        )
        with self._signal_handlers():
            while True:
                self._handle_signals()
                for child in self.children:
                    if child.proc is not None and (code := child.proc.poll()) is not None:
                        self._exited(child, code)
                if self._stopping and not self._live():
                    break
                self._start_due()
                self._wait()
        if self._failure is not None:
            raise SupervisorError(self._failure)
        if self._killed:
            raise SupervisorError(
                f"stopped by a second signal: {len(self._unclean)} worker process(es) killed; "
                "their running jobs run again once their leases expire"
            )
        if self._unclean:
            raise SupervisorError(f"did not stop cleanly: {', '.join(self._unclean)}")
        logger.info("supervisor: every worker process stopped cleanly")

    # -- signals ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _signal_handlers(self) -> Iterator[None]:
        wake, wake_w = os.pipe()
        os.set_blocking(wake, False)
        os.set_blocking(wake_w, False)
        # Every handled signal writes a byte there, so a select() waiting on it returns at once:
        # no signal is slept through, whenever it arrives.
        previous_fd = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, _wake_only)
        self._wake = wake
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(previous_fd)
            os.close(wake)
            os.close(wake_w)
            for child in self.children:
                self._close_link(child)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)  # acted on by the loop, not inside the handler

    def _handle_signals(self) -> None:
        while self._signals:
            name = signal.Signals(self._signals.pop(0)).name
            if not self._stopping:
                self._begin_stop(name)
            elif not self._killed:
                self._killed = True
                live = self._live()
                logger.warning(
                    "supervisor: second %s: killing %d worker process(es) now; their running "
                    "jobs run again once their leases expire",
                    name,
                    len(live),
                )
                for child in live:
                    _send(child, signal.SIGKILL)

    def _begin_stop(self, why: str) -> None:
        self._stopping = True
        live = self._live()
        logger.info(
            "supervisor: %s: stopping %d worker process(es) gracefully; a second SIGINT or "
            "SIGTERM kills them",
            why,
            len(live),
        )
        for child in live:
            _send(child, signal.SIGTERM)

    # -- children --------------------------------------------------------------------------
    def _live(self) -> list[_Child]:
        return [child for child in self.children if child.proc is not None]

    def _start_due(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if self._stopping:
                return  # a failed start may have begun the stop
            if child.proc is None and child.start_at is not None and child.start_at <= now:
                self._start(child, now)

    def _start(self, child: _Child, now: float) -> None:
        ours, theirs = socket.socketpair()
        env = {**self.env, CHILD_ENV: str(child.index), LINK_ENV: str(theirs.fileno())}
        try:
            proc = subprocess.Popen(self.command, env=env, pass_fds=(theirs.fileno(),))
        except OSError as exc:
            ours.close()
            self._failure = f"cannot start a worker process ({self.command[0]}): {exc}"
            self._begin_stop("a worker process cannot start")
            return
        finally:
            theirs.close()  # the child has its copy: the link ends when the child does
        ours.setblocking(False)
        child.proc, child.link, child.started_at = proc, ours, now
        child.ready, child.start_at = False, None
        logger.info("worker process %d started (pid %d)", child.index, proc.pid)

    def _exited(self, child: _Child, code: int) -> None:
        assert child.proc is not None
        pid, uptime = child.proc.pid, time.monotonic() - child.started_at
        self._read_link(child)  # a readiness report it sent just before exiting counts
        self._close_link(child)
        child.proc = None
        what = describe_exit(code)
        if self._stopping:
            self._stopped(child, pid, code, what)
        elif code == RECYCLE_EXIT:
            logger.info(
                "worker process %d (pid %d) recycled after %.1fs; starting its replacement",
                child.index,
                pid,
                uptime,
            )
            child.backoff.reset()
            child.start_at = time.monotonic()
        else:
            self._crashed(child, pid, uptime, what)

    def _crashed(self, child: _Child, pid: int, uptime: float, what: str) -> None:
        delay = child.backoff.after_exit(uptime)
        if not child.ready:
            self._start_failures += 1
            if not self._ever_ready and self._start_failures >= self.start_failure_limit:
                self._failure = (
                    f"worker processes keep failing at start-up ({self._start_failures} in a "
                    f"row, none ever ready): the last, process {child.index} (pid {pid}), "
                    f"{what} after {uptime:.1f}s; its output above says why"
                )
                self._begin_stop("giving up")
                return
        logger.warning(
            "worker process %d (pid %d) %s after %.1fs%s; restarting it in %.1fs",
            child.index,
            pid,
            what,
            uptime,
            "" if child.ready else ", before it was ready",
            delay,
        )
        child.start_at = time.monotonic() + delay

    def _stopped(self, child: _Child, pid: int, code: int, what: str) -> None:
        # A worker handles SIGTERM and SIGINT for as long as it may hold jobs: a child killed
        # by one was still starting, or had already stopped its worker and was exiting.
        if code in (0, RECYCLE_EXIT, -signal.SIGTERM, -signal.SIGINT):
            logger.info("worker process %d (pid %d) stopped", child.index, pid)
        else:
            self._unclean.append(f"worker process {child.index} (pid {pid}) {what}")
            logger.warning("worker process %d (pid %d) %s while stopping", child.index, pid, what)

    # -- waiting ---------------------------------------------------------------------------
    def _wait(self) -> None:
        timeout = WAKE_SECONDS
        due = [c.start_at for c in self.children if c.proc is None and c.start_at is not None]
        if due and not self._stopping:
            timeout = max(0.0, min(timeout, min(due) - time.monotonic()))
        links = {c.link.fileno(): c for c in self.children if c.link is not None}
        readable, _, _ = select.select([self._wake, *links], [], [], timeout)
        for source in readable:
            if source == self._wake:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake, 512):
                        pass
            else:
                self._read_link(links[source])

    def _read_link(self, child: _Child) -> None:
        if child.link is None:
            return
        try:
            data = child.link.recv(64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if READY in data and not child.ready:
            child.ready = self._ever_ready = True
            self._start_failures = 0
            logger.debug("worker process %d is ready", child.index)
        if not data:
            self._close_link(child)  # the child is exiting; poll() sees its status

    def _close_link(self, child: _Child) -> None:
        if child.link is not None:
            child.link.close()
            child.link = None


def _send(child: _Child, sig: signal.Signals) -> None:
    if child.proc is not None:
        with contextlib.suppress(ProcessLookupError):
            child.proc.send_signal(sig)


def _wake_only(signum: int, frame: FrameType | None) -> None:
    """SIGCHLD's handler: the wake-up byte is all that is needed (the loop polls children)."""
