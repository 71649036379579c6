"""A PostgreSQL worker or producer role needs no DDL: docs/SECURITY.md's grants are enough.

The schema is migrated once by an owner role; the application's role gets only USAGE on the
schema and DML on its tables (and the sequence), runs with ``migrate_on_start=False``, and
does everything a worker and a producer do. It cannot create or alter anything.
"""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from taskward import JobState, TaskManager

pytestmark = pytest.mark.postgres

GRANTS = """
GRANT USAGE ON SCHEMA {schema} TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role};
"""


def double(n: int) -> int:
    return 2 * n


async def test_an_application_role_with_dml_only_runs_everything(pg_url: str) -> None:
    parts = urlsplit(pg_url)
    schema = parse_qs(parts.query)["schema"][0]
    role = f"tw_app_{uuid.uuid4().hex[:8]}"
    async with TaskManager(pg_url):  # the owner migrates
        pass
    admin_url = parts._replace(query="").geturl()
    with psycopg.connect(admin_url, autocommit=True) as db:
        db.execute(f"CREATE ROLE {role} LOGIN")
        for statement in GRANTS.format(schema=schema, role=role).strip().splitlines():
            db.execute(statement)
    app_url = pg_url.replace("postgres@", f"{role}@", 1)
    tw = TaskManager(app_url, poll_interval=0.05, migrate_on_start=False)
    tw.task(name="double", unique_for=60)(double)
    async with tw:
        job = await tw.enqueue_task("double", args=[21])
        again = await tw.enqueue_task("double", args=[21])
        assert again.id == job.id
        await tw.enqueue_many("double", [[1], [2], [3]])
        await tw.pause_queue("default")
        await tw.resume_queue("default")
        await tw.schedule_recurring_task("nightly", "double", cron="0 3 * * *", args=[1])
        await tw.drain()
        assert (await tw.get_task_status(job.id)).result == 42
        stats = await tw.get_statistics()
        assert stats["queues"]["default"][JobState.COMPLETED.value] == 4
        assert await tw.cleanup_old_tasks(completed_days=0, failed_days=0) == 4
    with psycopg.connect(app_url.split("?")[0], autocommit=True) as db:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute(f"CREATE TABLE {schema}.not_allowed (id int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute(f"ALTER TABLE {schema}.taskward_jobs ADD COLUMN x int")
    with psycopg.connect(admin_url, autocommit=True) as db:
        db.execute(f"DROP OWNED BY {role}")
        db.execute(f"DROP ROLE {role}")
