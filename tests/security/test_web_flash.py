"""The dashboard shows a flash message only if this server wrote it (no text injection)."""

from __future__ import annotations

import re

from security.helpers import BASIC, client_for, make_app
from taskward import TaskManager


async def test_only_signed_flash_messages_are_shown() -> None:
    async with TaskManager("memory://") as tw:
        tw.task(name="send", queue="emails")(len)
        await tw.enqueue_task("send", args=["x"])
        app = make_app(tw)
        async with client_for(app, authorization=BASIC) as browser:
            forged = await browser.get(
                "/dashboard", params={"flash": "Session expired: sign in at evil.example"}
            )
            assert forged.status_code == 200
            assert "evil.example" not in forged.text
            tampered = await browser.get(
                "/dashboard", params={"flash": "evil.example", "flash_sig": "0" * 32}
            )
            assert "evil.example" not in tampered.text
            page = await browser.get("/dashboard")
            match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert match is not None
            token = match.group(1)
            done = await browser.post("/dashboard/queues/emails/pause", data={"csrf_token": token})
            assert done.status_code == 303
            shown = await browser.get(done.headers["location"])
            assert "queue emails paused" in shown.text
