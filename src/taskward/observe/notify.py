"""Dead-letter notifier: tell someone when a job lands in the dead letters.

A job is a dead letter once it is ``failed`` (every attempt failed, or rescued with none left)
or ``discarded``. The notifier subscribes to those events in the process that runs the worker
(that is where outcomes happen) and calls a function you give, or POSTs JSON to a webhook URL,
or both.

What a webhook receives, one ``POST`` per dead letter, is :func:`dead_letter_payload`: a JSON
object with exactly ``event``, ``at``, ``job_id``, ``task``, ``queue``, ``state``, ``attempt``,
``max_attempts`` and ``error``. It never carries the job's arguments (they may be sensitive).
``error`` is the last error as ``"Kind: message"``; the message is whatever the job's code put
in its exception, so it reaches the webhook as written.

How it is sent, with the stdlib's ``http.client`` (see :mod:`taskward.observe.deadline_http`):

- Headers: ``Content-Type: application/json`` and ``User-Agent: taskward-dead-letter``, then
  the ``headers`` you give (they win on a clash, compared case-insensitively), plus ``Host``,
  ``Content-Length`` and ``Accept-Encoding: identity``, which http.client adds.
- No redirects: a 3xx answer is a failed delivery, so the payload and your headers (say, an
  ``Authorization``) go to the configured host and nowhere else. Proxy environment variables
  are not used.
- One deadline per delivery, ``timeout`` seconds for connecting, the TLS handshake, sending,
  and reading the whole answer (body capped at 64 KiB), so a server that trickles bytes is
  dropped when it passes. Host name resolution is the one step outside it (the system
  resolver has its own timeout).
- Bounded: at most ``max_workers`` threads deliver, fed by a queue of at most ``max_pending``
  dead letters. A dead letter that does not fit is dropped, counted in ``dropped`` and
  reported by a warning (at most one a minute); the caller never waits.

A delivery succeeds on a 2xx answer. Every failure (refused, timed out, TLS, non-2xx) is
logged, with the URL shown as its scheme, host and port only (a path or query may hold a
token); none is raised: the job's outcome is
already decided and written.
"""

from __future__ import annotations

import http.client
import inspect
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from taskward.observe.deadline_http import Target
from taskward.observe.events import Event, EventBus

__all__ = ["DeadLetterNotifier", "dead_letter_payload"]

logger = logging.getLogger(__name__)
DEAD_STATES = frozenset({"failed", "discarded"})
DROP_WARNING_INTERVAL = 60.0
"""Seconds between two warnings about dropped deliveries (each warning gives the total)."""
IDLE_WORKER_EXIT = 30.0
"""Seconds a delivery thread waits for work before it ends (a new one starts on demand)."""
DEFAULT_HEADERS = {"Content-Type": "application/json", "User-Agent": "taskward-dead-letter"}


def dead_letter_payload(event: Event) -> dict[str, Any]:
    """Return the JSON document sent for a dead letter (no args: they may be sensitive)."""
    job = event.job
    last = job.last_error if job is not None else None
    return {
        "event": event.name,
        "at": event.at.isoformat(),
        "job_id": event.job_id,
        "task": event.task,
        "queue": event.queue,
        "state": event.data.get("state"),
        "attempt": job.attempt if job is not None else None,
        "max_attempts": job.max_attempts if job is not None else None,
        "error": event.data.get("error") or (f"{last.kind}: {last.message}" if last else None),
    }


class DeadLetterNotifier:
    """Calls ``callback(payload)`` and/or POSTs ``payload`` to ``webhook_url`` per dead letter.

    ``payload`` is :func:`dead_letter_payload`: the JSON fields ``event``, ``at``, ``job_id``,
    ``task``, ``queue``, ``state``, ``attempt``, ``max_attempts`` and ``error``, never the
    job's arguments. ``error`` is ``"Kind: message"`` with the message the job's own code
    raised. ``callback`` may be sync or async and is called inline, as an event hook.

    The webhook gets ``Content-Type: application/json``, ``User-Agent: taskward-dead-letter``
    and ``headers`` (e.g. an authorization header; yours win on a clash). Redirects are not
    followed: a 3xx is a failed delivery. Each delivery has ``timeout`` seconds in all to
    connect, send and read the answer (64 KiB of body at most). At most ``max_workers``
    threads deliver, from a queue of at most ``max_pending``; a dead letter that does not fit
    is dropped, counted in :attr:`dropped` and warned about (at most once a minute). Every
    failure is logged, never raised.

    Attach it with :meth:`attach` to ``manager.events``; at shutdown call :meth:`join` to let
    queued deliveries finish, then :meth:`close`.
    """

    def __init__(
        self,
        *,
        callback: Callable[[dict[str, Any]], Awaitable[None] | None] | None = None,
        webhook_url: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 5.0,
        max_workers: int = 4,
        max_pending: int = 1000,
    ) -> None:
        if callback is None and webhook_url is None:
            raise ValueError("give a callback, a webhook_url, or both")
        if not 0 < timeout < float("inf"):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if max_workers < 1 or max_pending < 1:
            raise ValueError(
                f"max_workers and max_pending must be at least 1, got {max_workers}, {max_pending}"
            )
        self.callback = callback
        self.webhook_url = webhook_url
        self.headers = _request_headers(headers or {})
        self.timeout = timeout
        self.max_workers = max_workers
        self.max_pending = max_pending
        self.dropped = 0
        """How many webhook deliveries were dropped: queue full, or the notifier closed."""
        self._target = Target.parse(webhook_url) if webhook_url is not None else None
        # One lock, two conditions: workers wait for work, join() waits for idleness. A
        # single condition could hand a submit's wake-up to a joiner and strand the work.
        self._lock = threading.Lock()
        self._has_work = threading.Condition(self._lock)
        self._is_idle = threading.Condition(self._lock)
        self._backlog: deque[dict[str, Any]] = deque()
        self._workers: set[threading.Thread] = set()
        self._waiting_workers = 0
        self._busy = 0
        self._closed = False
        self._last_drop_warning: float | None = None

    def attach(self, bus: EventBus) -> DeadLetterNotifier:
        """Subscribe to the events that create dead letters; return self."""
        for name in ("job.failed", "job.discarded", "job.rescued"):
            bus.on(name, self)
        return self

    def __call__(self, event: Event) -> Awaitable[None] | None:
        """Handle one event (a rescue counts only when it left the job failed)."""
        if event.data.get("state") not in DEAD_STATES:
            return None
        payload = dead_letter_payload(event)
        if self._target is not None:
            self._submit(payload)
        if self.callback is not None:
            result = self.callback(payload)
            if inspect.isawaitable(result):
                return result  # the EventBus awaits it and logs a failure
        return None

    def join(self, timeout: float | None = None) -> bool:
        """Wait for queued and in-flight webhook posts; True if none is left (tests, shutdown).

        ``timeout`` bounds the whole wait, not each delivery.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._backlog or self._busy:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._is_idle.wait(remaining)
            return True

    def close(self, timeout: float | None = None) -> None:
        """Stop the delivery threads; later webhook deliveries are dropped. Idempotent.

        Deliveries still queued are dropped (call :meth:`join` first to send them); those in
        flight finish, each within its deadline. Waits up to ``timeout`` seconds in all for
        the threads to end. The callback keeps being called.
        """
        with self._lock:
            self._closed = True
            abandoned = len(self._backlog)
            self._backlog.clear()
            self.dropped += abandoned
            self._has_work.notify_all()
            self._is_idle.notify_all()
            workers = list(self._workers)
        if abandoned:
            logger.warning(
                "dead-letter webhook %s closed: dropped %d queued deliveries",
                self._target,
                abandoned,
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in workers:
            if worker is not threading.current_thread():
                worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _submit(self, payload: dict[str, Any]) -> None:
        # Runs on the emitter's thread (often the event loop): a short lock, never a wait.
        with self._lock:
            if not self._closed and len(self._backlog) < self.max_pending:
                self._backlog.append(payload)
                self._has_work.notify()
                if len(self._backlog) > self._waiting_workers and (
                    len(self._workers) < self.max_workers
                ):
                    self._start_worker()
                return
            self.dropped += 1
            dropped = self.dropped
            why = "the notifier is closed" if self._closed else f"{self.max_pending} queued"
            if not self._should_warn_drop():
                return
        logger.warning(
            "dead-letter webhook %s: dropped the delivery for job %s (%s); %d dropped so far",
            self._target,
            payload["job_id"],
            why,
            dropped,
        )

    def _should_warn_drop(self) -> bool:
        now, last = time.monotonic(), self._last_drop_warning
        if last is not None and now - last < DROP_WARNING_INTERVAL:
            return False
        self._last_drop_warning = now
        return True

    def _start_worker(self) -> None:
        worker = threading.Thread(target=self._work, name="taskward-webhook", daemon=True)
        self._workers.add(worker)
        try:
            worker.start()
        except RuntimeError:  # no thread to be had: the payload waits for a running worker
            self._workers.discard(worker)
            logger.exception("dead-letter webhook %s: cannot start a thread", self._target)

    def _work(self) -> None:
        while (payload := self._next()) is not None:
            try:
                self._deliver(payload)
            finally:
                with self._lock:
                    self._busy -= 1
                    self._is_idle.notify_all()

    def _next(self) -> dict[str, Any] | None:
        """The next payload to deliver, or None when this worker should end."""
        with self._lock:
            while not self._backlog and not self._closed:
                self._waiting_workers += 1
                woken = self._has_work.wait(IDLE_WORKER_EXIT)
                self._waiting_workers -= 1
                if not woken and not self._backlog:
                    break  # idle: end, so an unclosed notifier does not hold threads forever
            if not self._backlog:
                self._workers.discard(threading.current_thread())
                return None
            self._busy += 1
            return self._backlog.popleft()

    def _deliver(self, payload: dict[str, Any]) -> None:
        assert self._target is not None
        body = json.dumps(payload).encode()
        try:
            status, reason = self._target.post(body, self.headers, self.timeout)
            if 200 <= status < 300:
                return
            redirect = " (redirects are not followed)" if 300 <= status < 400 else ""
            why = f"HTTP {status} {reason}{redirect}"
        except TimeoutError:
            why = f"no complete answer within {self.timeout} s"
        except (OSError, http.client.HTTPException) as exc:
            why = f"{type(exc).__name__}: {exc}"
        except Exception:  # a bug, not the network: keep the traceback
            logger.exception(
                "dead-letter webhook %s failed for job %s", self._target, payload["job_id"]
            )
            return
        logger.error(
            "dead-letter webhook %s failed for job %s: %s", self._target, payload["job_id"], why
        )


def _request_headers(given: Mapping[str, str]) -> dict[str, str]:
    """The defaults overridden by ``given``, refusing values http.client would reject later."""
    for name, value in given.items():
        if any(c in name + value for c in "\r\n\0") or ":" in name or not name.strip():
            raise ValueError(f"header {name!r} has a line break, NUL or colon, or no name")
        try:
            (name + value).encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"header {name!r} must be Latin-1 text") from None
    taken = {name.lower() for name in given}
    defaults = {k: v for k, v in DEFAULT_HEADERS.items() if k.lower() not in taken}
    return {**defaults, **given}
