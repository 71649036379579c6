"""Files taskward creates hold job arguments and results: only their owner may read them.

A new SQLite database, and the ``-wal`` and ``-shm`` files SQLite makes beside it (it gives
them the database file's mode), are 0600 however loose the umask; a stricter umask is kept,
and an existing file keeps the mode its operator chose. The wake-up folder is 0700.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from taskward.backends.sqlite import SqliteBackend
from taskward.backends.sqlite.wake import WakeChannel
from taskward.errors import BackendUnavailable
from taskward.jobs import JobState, NewJob

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


def job() -> NewJob:
    return NewJob(
        task="tests:noop", queue="default", args=[], kwargs={}, priority=5, max_attempts=3,
        scheduled_at=NOW, state=JobState.PENDING,
    )  # fmt: skip


@pytest.fixture
def umask() -> Iterator[None]:
    """A umask that lets anyone read new files (the usual 022), restored after the test."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def companions(db: Path) -> list[Path]:
    """The database file, its write-ahead log and its shared-memory index."""
    return [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]


@pytest.mark.usefixtures("umask")
async def test_a_new_store_and_its_wal_and_shm_are_private(tmp_path: Path) -> None:
    db = tmp_path / "new" / "jobs.db"
    backend = SqliteBackend(f"sqlite:///{db}")
    try:
        await backend.migrate()
        await backend.insert([job()], now=NOW)
        assert {p.name: mode(p) for p in companions(db)} == {
            "jobs.db": "0o600", "jobs.db-wal": "0o600", "jobs.db-shm": "0o600"
        }  # fmt: skip
    finally:
        await backend.close()


@pytest.mark.usefixtures("umask")
def test_a_store_first_opened_by_a_sync_producer_is_private(tmp_path: Path) -> None:
    """The blocking insert pool opens its own connections: the same rule holds there."""
    db = tmp_path / "jobs.db"
    backend = SqliteBackend(f"sqlite:///{db}")
    try:
        backend.migrate_blocking()
        backend.insert_blocking([job()], now=NOW)
        assert [mode(p) for p in companions(db)] == ["0o600"] * 3
    finally:
        backend._close_idle_stores()


async def test_a_stricter_umask_is_kept(tmp_path: Path) -> None:
    old = os.umask(0o277)  # owner read-only: taskward never widens what the umask allows
    try:
        db = tmp_path / "jobs.db"
        backend = SqliteBackend(f"sqlite:///{db}")
        try:
            # Without root, SQLite cannot write a file its owner may only read: not the point.
            with contextlib.suppress(BackendUnavailable):
                await backend.open()
        finally:
            await backend.close()
        assert mode(db) == "0o400"
    finally:
        os.umask(old)


@pytest.mark.usefixtures("umask")
async def test_an_existing_file_keeps_the_mode_its_operator_chose(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    db.touch()
    db.chmod(0o640)  # shared with a reporting group on purpose
    backend = SqliteBackend(f"sqlite:///{db}")
    try:
        await backend.migrate()
        await backend.insert([job()], now=NOW)
        assert [mode(p) for p in companions(db)] == ["0o640"] * 3
    finally:
        await backend.close()


@pytest.mark.usefixtures("umask")
async def test_the_wake_folder_is_private(tmp_path: Path) -> None:
    channel = WakeChannel(str(tmp_path / "jobs.db"))
    try:
        assert channel.listen(lambda queues: None)
        assert mode(channel.directory) == "0o700"
    finally:
        channel.close()
