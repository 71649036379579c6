"""Service: the one lifecycle every background loop has (start, stop, run_once)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod

logger = logging.getLogger(__name__)


class PeriodicService(ABC):
    """A loop that calls :meth:`run_once` every ``interval`` seconds until stopped.

    An error in one round is logged and the loop goes on: a maintenance hiccup (a locked
    database, a dropped connection) must never kill the worker that hosts the service.
    """

    name = "service"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    @abstractmethod
    async def run_once(self) -> None:
        """Do one round of work (tests call this directly)."""

    def start(self) -> None:
        """Start the loop on the running event loop (idempotent)."""
        if self._task is None:
            self._stop.clear()
            self._task = asyncio.create_task(self._loop(), name=f"taskward-{self.name}")

    async def stop(self) -> None:
        """Stop the loop and wait for it (idempotent)."""
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            await task

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.run_once()
            except Exception:
                logger.exception(
                    "taskward %s round failed; retrying in %ss", self.name, self.interval
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)
