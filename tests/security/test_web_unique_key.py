"""The admin web never shows a sensitive argument, nor a job's ``unique_key`` (a hash of them).

A unique key is a hash over the task, queue and arguments, secrets included: a short secret
(a 6-digit code) is found from it by trying every value. So neither the value nor the key may
appear in any answer of the API or the dashboard about the job.
"""

from __future__ import annotations

import pytest

from security.helpers import BASIC, client_for, make_app
from taskward import TaskManager

SECRET_CODE = "731942"


@pytest.fixture
async def tw() -> TaskManager:
    return TaskManager("memory://")


def _verify(email: str, code: str) -> None:
    return None


async def test_neither_the_sensitive_value_nor_the_unique_key_is_shown(tw: TaskManager) -> None:
    tw.task(name="auth.verify", sensitive=("code",), unique_for=60)(_verify)
    app = make_app(tw)
    async with tw, client_for(app, authorization=BASIC) as client:
        queued = await tw.enqueue_task(
            "auth.verify", args=["ada@example.com"], kwargs={"code": SECRET_CODE}
        )
        stored = await tw.get_task_status(queued.id)
        assert stored.unique_key  # the precondition: the job has a key the web must hide
        answers = {
            "api job": await client.get(f"/api/jobs/{queued.id}"),
            "api list": await client.get("/api/jobs"),
            "api search": await client.get("/api/jobs", params={"q": "ada"}),
            "api events": await client.get("/api/events"),
            "dashboard job": await client.get(f"/dashboard/jobs/{queued.id}"),
            "dashboard fragment": await client.get(f"/dashboard/fragments/jobs/{queued.id}"),
            "dashboard list": await client.get("/dashboard/jobs"),
        }
        for where, answer in answers.items():
            assert answer.status_code == 200, (where, answer.text)
            assert "ada@example.com" in answer.text or where == "api events", where
            assert SECRET_CODE not in answer.text, where
            assert stored.unique_key not in answer.text, where
            assert "unique_key" not in answer.text, where
        detail = answers["api job"].json()
        assert detail["kwargs"] == {"code": "***"}
        assert detail["unique"] is True  # that it has a key is shown, the key is not
        # Searching for the secret finds nothing: redaction comes before matching.
        found = await client.get("/api/jobs", params={"q": SECRET_CODE})
        assert found.json()["total"] == 0
