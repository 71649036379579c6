"""Recycling a worker process: its job budget and memory limit, and when it has reached them.

A worker with :class:`RecycleLimits` counts the jobs it claims and watches its resident set
(:func:`current_rss`). Once a limit is reached it stops claiming, finishes its running jobs and
exits with the recycle exit code (``taskward.runtime.supervised.RECYCLE_EXIT``), and its
supervisor starts a fresh process in its place: the cure for a slow leak in user code, as
Celery's ``max_tasks_per_child`` and ``max_memory_per_child`` are.

Also here: :func:`parse_size`, the ``SIZE`` format of ``--max-memory-per-process``.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RecycleLimits", "Recycler", "current_rss", "parse_size"]

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "k": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tib": 1024**4,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes in ``text``: a number of bytes, or a number and a unit (``200MB``, ``1.5GiB``).

    ``KB``, ``MB``, ``GB``, ``TB`` count in powers of 1000; ``KiB``, ``MiB``, ``GiB``, ``TiB``
    and the bare ``K``, ``M``, ``G``, ``T`` (as ``ulimit`` and systemd read them) in powers of
    1024. Case does not matter. Raises ``ValueError`` for anything else, or for zero.
    """
    match = _SIZE.fullmatch(text)
    unit = _UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        raise ValueError(
            f"{text!r} is not a size: use bytes or a number with a unit (500MB, 1.5GiB, 512M)"
        )
    size = int(float(match.group(1)) * unit)
    if size < 1:
        raise ValueError(f"{text!r}: a size must be at least 1 byte")
    return size


def current_rss() -> int | None:
    """The resident set of this process in bytes; None where it cannot be read.

    Linux: the current resident set (``/proc/self/statm``). Elsewhere the peak resident set
    (``getrusage``), which never shrinks: enough to tell that a limit was reached.
    """
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


@dataclass(frozen=True, slots=True, kw_only=True)
class RecycleLimits:
    """When a worker process should be replaced: after ``max_jobs`` jobs, or at ``max_rss``."""

    max_jobs: int | None = None
    """Jobs a process runs before it is replaced (claims are capped to what is left)."""
    max_rss: int | None = None
    """Resident set size in bytes at which a process is replaced, checked as each job ends
    and at each heartbeat."""

    def __post_init__(self) -> None:
        if self.max_jobs is not None and self.max_jobs < 1:
            raise ValueError(f"max_jobs must be at least 1, got {self.max_jobs}")
        if self.max_rss is not None and self.max_rss < 1:
            raise ValueError(f"max_rss must be at least 1 byte, got {self.max_rss}")

    @property
    def active(self) -> bool:
        """True if either limit is set."""
        return self.max_jobs is not None or self.max_rss is not None


class Recycler:
    """One worker's count of jobs against its :class:`RecycleLimits`; says when to recycle.

    Claims are reserved before they are made (:meth:`reserve`, then :meth:`release` of what
    the claim did not bring): several queue loops claim at once, and a process must not run
    more than ``max_jobs`` jobs because two of them asked at the same moment.
    """

    def __init__(
        self, limits: RecycleLimits, *, rss: Callable[[], int | None] = current_rss
    ) -> None:
        self.limits = limits
        self._rss = rss
        self.started = 0
        self.ended = 0
        self._reserved = 0

    @property
    def exhausted(self) -> bool:
        """True once the job budget is spent (started and reserved): claim nothing more."""
        limit = self.limits.max_jobs
        return limit is not None and self.started + self._reserved >= limit

    def reserve(self, wanted: int) -> int:
        """Reserve up to ``wanted`` claims within the job budget; return how many may be made."""
        limit = self.limits.max_jobs
        granted = (
            wanted if limit is None else max(0, min(wanted, limit - self.started - self._reserved))
        )
        self._reserved += granted
        return granted

    def release(self, reserved: int) -> None:
        """Give back a reservation (its claim returned; the jobs it brought count as started)."""
        self._reserved -= reserved

    def job_started(self) -> None:
        """Count one job started by this worker (claimed or dispatched to it)."""
        self.started += 1

    def job_ended(self) -> str | None:
        """Count one job ended; return why the worker should recycle now, if it should."""
        self.ended += 1
        limit = self.limits.max_jobs
        if limit is not None and self.ended >= limit:
            return f"it ran {self.ended} jobs (limit {limit})"
        return self.memory_reached()

    def memory_reached(self) -> str | None:
        """Why the worker should recycle if its resident set reached the limit, else None.

        Never before a job ended: a limit below what the process needs to start would
        otherwise replace every process at once, in a storm that runs nothing.
        """
        limit = self.limits.max_rss
        if limit is None or self.ended == 0:
            return None
        rss = self._rss()
        if rss is None or rss < limit:
            return None
        return f"its resident set is {_mib(rss)} (limit {_mib(limit)})"


def _mib(size: int) -> str:
    return f"{size / 1024**2:.1f} MiB"
