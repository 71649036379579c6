"""The workflow methods of a store that keeps no workflows: each raises ``NotSupported``."""

from __future__ import annotations

from datetime import datetime

from taskward.errors import NotSupported
from taskward.graph import NewWorkflow, WorkflowRecord

__all__ = ["NoWorkflows"]

_WHY = "this store keeps no workflows (see Capability.WORKFLOWS in the docs' backend table)"


class NoWorkflows:
    """Mixed into a backend without ``Capability.WORKFLOWS``."""

    async def insert_workflow(self, flow: NewWorkflow, *, now: datetime) -> WorkflowRecord:
        """Refuse: no workflows here."""
        raise NotSupported(_WHY)

    async def get_workflow(self, workflow_id: int) -> WorkflowRecord:
        """Refuse: no workflows here."""
        raise NotSupported(_WHY)

    async def cancel_workflow(
        self, workflow_id: int, *, reason: str, now: datetime
    ) -> WorkflowRecord:
        """Refuse: no workflows here."""
        raise NotSupported(_WHY)

    async def release_blocked(
        self, *, now: datetime, limit: int, after: int = 0
    ) -> tuple[int, int]:
        """Nothing is ever blocked here: nothing released, the walk at its end."""
        return 0, 0
