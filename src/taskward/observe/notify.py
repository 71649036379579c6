"""Dead-letter notifier: tell someone when a job lands in the dead letters.

A job is a dead letter once it is ``failed`` (every attempt failed, or rescued with none left)
or ``discarded``. The notifier subscribes to those events in the process that runs the worker
(that is where outcomes happen) and calls a function you give, or POSTs JSON to a webhook URL
in a background thread with the stdlib's ``urllib``. Failures to notify are logged, never
raised: the job's outcome is already decided and written.
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from taskward.observe.events import Event, EventBus

__all__ = ["DeadLetterNotifier", "dead_letter_payload"]

logger = logging.getLogger(__name__)
DEAD_STATES = frozenset({"failed", "discarded"})


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

    ``callback`` may be sync or async. ``headers`` are added to the webhook request (e.g. an
    authorization header). Attach it with :meth:`attach` to ``manager.events``.
    """

    def __init__(
        self,
        *,
        callback: Callable[[dict[str, Any]], Awaitable[None] | None] | None = None,
        webhook_url: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 5.0,
    ) -> None:
        if callback is None and webhook_url is None:
            raise ValueError("give a callback, a webhook_url, or both")
        if webhook_url is not None and not webhook_url.startswith(("http://", "https://")):
            raise ValueError(f"webhook_url must be an http(s) URL, got {webhook_url!r}")
        self.callback = callback
        self.webhook_url = webhook_url
        self.headers = dict(headers or {})
        self.timeout = timeout
        self._threads: set[threading.Thread] = set()

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
        if self.webhook_url is not None:
            thread = threading.Thread(
                target=self._post, args=(payload,), name="taskward-webhook", daemon=True
            )
            self._threads.add(thread)
            thread.start()
        if self.callback is not None:
            result = self.callback(payload)
            if inspect.isawaitable(result):
                return result  # the EventBus awaits it and logs a failure
        return None

    def join(self, timeout: float | None = None) -> None:
        """Wait for webhook posts in flight (tests, shutdown)."""
        for thread in list(self._threads):
            thread.join(timeout)

    def _post(self, payload: dict[str, Any]) -> None:
        assert self.webhook_url is not None
        request = urllib.request.Request(
            self.webhook_url,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", **self.headers},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except Exception:
            logger.exception(
                "dead-letter webhook %s failed for job %s", self.webhook_url, payload["job_id"]
            )
        finally:
            self._threads.discard(threading.current_thread())
