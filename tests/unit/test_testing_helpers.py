from __future__ import annotations

import pytest

from taskward import TaskManager
from taskward.testing import assert_enqueued, enqueued_jobs, refute_enqueued


async def test_assert_and_refute_enqueued() -> None:
    async with TaskManager("memory://") as tw:

        @tw.task(queue="emails")
        async def send(user_id: int, *, template: str = "welcome") -> None:
            return None

        await send.enqueue(1)
        await send.enqueue(2, template="bye")
        job = await assert_enqueued(tw, task=send, args=[2], kwargs={"template": "bye"})
        assert job.queue == "emails"
        await refute_enqueued(tw, task=send, args=[3])
        assert len(await enqueued_jobs(tw, task=send)) == 2
        with pytest.raises(AssertionError, match="found 2"):
            await assert_enqueued(tw, task=send)
        with pytest.raises(AssertionError, match="expected no job"):
            await refute_enqueued(tw, queue="emails")
        await tw.drain()
        await refute_enqueued(tw, task=send)  # ran: no longer waiting
