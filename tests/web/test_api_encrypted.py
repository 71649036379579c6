"""The admin API, the dashboard and the CLI on sealed jobs: "encrypted" without a key, clear
with one, and never the clear value in a page served by a server without the key."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from taskward import TaskManager
from taskward.cli import app as cli_app
from taskward.encryption import KeyRing, generate_key
from taskward.web import AdminAuth, create_app
from taskward.web.queries import SEALED_PROBLEM
from web.helpers import BEARER, client_for

CARD = "4111-SEALED-CARD"
ANSWER = "SEALED-ANSWER-42"
OOPS = "SEALED-OOPS"
KEYS = "TASKWARD_ENCRYPTION_KEYS"


async def _sealed_jobs(url: str, key: str) -> tuple[int, int]:
    async with TaskManager(url, encryption_keys=[key]) as tw:

        @tw.task(name="vault.open", encrypted=True, max_attempts=1)
        def open_vault(card: str, *, fail: bool = False) -> str:
            if fail:
                raise RuntimeError(f"{OOPS} {card}")
            return ANSWER

        done = await open_vault.enqueue(CARD)
        failed = await open_vault.enqueue(CARD, fail=True)
        await tw.drain(timeout=30)
    return done.id, failed.id


async def test_the_api_and_pages_show_encrypted_without_the_key(
    tmp_path: Path, auth: AdminAuth
) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    key = generate_key()
    done, failed = await _sealed_jobs(url, key)

    async with TaskManager(url) as keyless:
        app = create_app(keyless, auth=auth)
        async with client_for(app, authorization=BEARER) as api:
            shown = (await api.get(f"/api/jobs/{done}")).json()
            assert shown["args"] == []
            assert shown["kwargs"] == {}
            assert shown["payload_error"] == SEALED_PROBLEM
            assert shown["result"] == "encrypted"
            broken = (await api.get(f"/api/jobs/{failed}")).json()
            assert broken["errors"][-1]["kind"] == "RuntimeError"
            assert broken["errors"][-1]["message"] == "encrypted"
            assert broken["errors"][-1]["traceback"] is None
            listing = (await api.get("/api/jobs")).text
            page = (await api.get(f"/dashboard/jobs/{failed}")).text
            dead = (await api.get("/dashboard/dead")).text
        for text in (json.dumps(shown), json.dumps(broken), listing, page, dead):
            for secret in (CARD, ANSWER, OOPS, "twenc1."):
                assert secret not in text
        assert "encrypted" in page

    async with TaskManager(url, encryption_keys=[key]) as keyed:
        app = create_app(keyed, auth=auth)
        async with client_for(app, authorization=BEARER) as api:
            shown = (await api.get(f"/api/jobs/{done}")).json()
            broken = (await api.get(f"/api/jobs/{failed}")).json()
    assert (shown["args"], shown["result"], shown["payload_error"]) == ([CARD], ANSWER, None)
    assert OOPS in broken["errors"][-1]["message"]


def test_the_cli_shows_encrypted_without_the_key_and_rotates_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    old, new = generate_key(), generate_key()
    done, _ = asyncio.run(_sealed_jobs(url, old))
    runner = CliRunner()
    keyless = runner.invoke(cli_app, ["status", str(done), "--json", "--url", url])
    assert keyless.exit_code == 0, keyless.output
    shown = json.loads(keyless.stdout)
    assert (shown["args"], shown["kwargs"], shown["result"]) == ("encrypted",) * 3
    keyed = runner.invoke(cli_app, ["status", str(done), "--json", "--url", url], env={KEYS: old})
    assert keyed.exit_code == 0, keyed.output
    assert json.loads(keyed.stdout)["args"] == [CARD]

    no_keys = runner.invoke(cli_app, ["keys", "rotate", "--url", url])
    assert no_keys.exit_code == 1
    assert no_keys.stderr.startswith("error: no encryption keys")
    missing = runner.invoke(cli_app, ["keys", "rotate", "--url", url], env={KEYS: new})
    assert missing.exit_code == 1
    assert "2 sealed jobs open with none of the listed keys" in missing.stderr
    rotated = runner.invoke(
        cli_app, ["keys", "rotate", "--url", url, "--batch-size", "1"], env={KEYS: f"{new},{old}"}
    )
    assert rotated.exit_code == 0, rotated.output
    assert "examined 2 jobs, 2 sealed: 2 sealed again with the first key" in rotated.stdout
    assert "older keys may be removed" in rotated.stdout
    after = runner.invoke(cli_app, ["status", str(done), "--json", "--url", url], env={KEYS: new})
    assert json.loads(after.stdout)["result"] == ANSWER
    generated = runner.invoke(cli_app, ["keys", "generate"])
    assert generated.exit_code == 0
    assert len(KeyRing([generated.stdout.strip()]).key_ids) == 1
