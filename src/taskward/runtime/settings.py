"""What a worker is given and what a drain answers: :class:`WorkerConfig`, :class:`DrainResult`.

Plain values, apart from the worker's logic (``runtime/worker.py``), so that the manager's
wiring and the drain read them without the worker's machinery.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from taskward.jobs import JobState

__all__ = ["DrainResult", "WorkerConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerConfig:
    """How a worker runs: queues with their concurrency, timings, identity."""

    queues: Mapping[str, int]
    lease_seconds: float = 30.0
    poll_interval: float = 1.0
    shutdown_timeout: float = 30.0
    default_timeout: float | None = None
    worker_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    )


@dataclass(slots=True)
class DrainResult:
    """What a :meth:`Worker.drain` run did, by final state of each attempt."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, state: JobState) -> None:
        """Count one attempt that ended in ``state``."""
        self.counts[state.value] = self.counts.get(state.value, 0) + 1

    @property
    def total(self) -> int:
        """How many attempts ran."""
        return sum(self.counts.values())
