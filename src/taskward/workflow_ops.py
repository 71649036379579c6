"""The workflow half of the facade: enqueue, read and cancel workflows (mixed into the manager)."""

from __future__ import annotations

import logging
from dataclasses import replace

from taskward.backends.base import Backend, Capability
from taskward.building import JobBuilder
from taskward.clock import Clock
from taskward.encryption import KeyRing
from taskward.errors import NotSupported, WorkflowNotFound
from taskward.flows import Flow, build_workflow
from taskward.graph import WorkflowRecord
from taskward.observe.events import Event, EventBus
from taskward.sealing import open_job

__all__ = ["WorkflowOperations"]

logger = logging.getLogger("taskward")


class WorkflowOperations:
    """``enqueue_workflow``, ``get_workflow``, ``cancel_workflow`` (sync twins on ``.sync``)."""

    builder: JobBuilder
    events: EventBus
    clock: Clock
    keyring: KeyRing | None

    async def _backend(self) -> Backend:
        raise NotImplementedError

    def _unsealed_steps(self, record: WorkflowRecord) -> WorkflowRecord:
        """``record`` with its steps' encrypted values opened where this manager's keys can."""
        if self.keyring is None:
            return record
        steps = tuple(replace(s, job=open_job(self.keyring, s.job)) for s in record.steps)
        return replace(record, steps=steps)

    async def _workflow_store(self) -> Backend:
        backend = await self._backend()
        if Capability.WORKFLOWS not in backend.capabilities:
            raise NotSupported(f"{backend.url} keeps no workflows")
        return backend

    async def enqueue_workflow(self, flow: Flow, *, name: str | None = None) -> WorkflowRecord:
        """Validate ``flow`` and store every step in one transaction; return it with its id.

        ``flow``: a :class:`~taskward.canvas.Workflow`, a ``chain``, a ``group`` (or a chord,
        ``group(...).then(step)``) or one step. Bad input (an unknown step name, a cycle, an
        unregistered task name, an argument JSON cannot hold) raises before anything is stored.
        """
        new = build_workflow(flow, self.builder, name=name)
        backend = await self._workflow_store()
        record = await backend.insert_workflow(new, now=self.clock.now())
        logger.info(
            "workflow %s enqueued: %d step(s)",
            record.id,
            len(record.steps),
            extra={"workflow_id": record.id},
        )
        if self.events.wants("job.enqueued"):
            now = self.clock.now()
            for step in record.steps:
                self.events.emit(Event.for_job("job.enqueued", step.job, now))
        return self._unsealed_steps(record)

    async def get_workflow(self, workflow_id: int) -> WorkflowRecord:
        """The workflow and each step's job as stored; raise ``WorkflowNotFound``.

        A workflow whose steps were all pruned (or deleted) is not found: its state would be
        a guess.
        """
        record = await (await self._workflow_store()).get_workflow(workflow_id)
        if not record.steps:
            raise WorkflowNotFound(workflow_id)
        return self._unsealed_steps(record)

    async def cancel_workflow(
        self, workflow_id: int, *, reason: str = "workflow cancelled by an operator"
    ) -> WorkflowRecord:
        """Cancel every step not ended (running ones are asked to stop); finalizers still run."""
        backend = await self._workflow_store()
        record = await backend.cancel_workflow(workflow_id, reason=reason, now=self.clock.now())
        logger.info("workflow %s cancelled: %s", workflow_id, reason)
        return self._unsealed_steps(record)
