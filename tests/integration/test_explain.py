"""``tw.explain(job_id)`` on every backend: one test per reason a job is (not) running."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskward import Discard, JobNotFound, JobState, TaskManager
from taskward.cli import app
from taskward.explain import Explanation
from taskward.jobs import WorkerInfo


def boom() -> None:
    raise RuntimeError("the disk is full")


def login(password: str) -> None:
    return None


def discard() -> None:
    raise Discard("the address bounced")


ADD = "tests_support.jobs:add"  # a plain function workers run by name (TASKWARD_TASK_MODULES)


async def live_worker(tw: TaskManager, worker_id: str, **queues: int) -> None:
    """Record a worker that heartbeat just now, serving ``queues`` (name=concurrency)."""
    now = tw.clock.now()
    info = WorkerInfo(
        id=worker_id, hostname="host", pid=1, queues=queues, started_at=now, heartbeat_at=now
    )
    await tw.backend.record_worker(info)


async def claim(tw: TaskManager, queue: str, worker_id: str, limit: int = 10) -> list[int]:
    """Claim jobs of ``queue`` as a worker would (they become running), without running them."""
    now = tw.clock.now()
    jobs = await tw.backend.fetch(
        queue=queue,
        limit=limit,
        worker_id=worker_id,
        now=now,
        lease_until=now + timedelta(seconds=60),
    )
    return [j.id for j in jobs]


def one(explanation: Explanation, code: str) -> dict[str, object]:
    found = [r for r in explanation.reasons if r.code == code]
    assert len(found) == 1, explanation.reasons
    return found[0].data


def assert_json(explanation: Explanation) -> None:
    """The whole explanation is JSON as it is (data, job and all)."""
    again = json.loads(json.dumps(explanation.to_dict()))
    assert again["reasons"] == [r.to_dict() for r in explanation.reasons]


async def test_scheduled(tw: TaskManager) -> None:
    await live_worker(tw, "w1", default=2)
    job = await tw.enqueue_task(ADD, args=[1, 2], delay=600)
    why = await tw.explain(job.id)
    assert not why.running
    assert why.codes == ("scheduled",)
    data = one(why, "scheduled")
    assert data["due_at"] == job.scheduled_at.isoformat()
    assert 590 < float(str(data["in_seconds"])) <= 600
    assert "scheduled to run at" in why.reasons[0].text
    assert why.job["id"] == job.id
    assert why.job["state"] == "scheduled"
    assert_json(why)


async def test_backoff(tw: TaskManager) -> None:
    await live_worker(tw, "w1", default=2)
    tw.task(name="boom", max_attempts=3, backoff=3600)(boom)
    job = await tw.enqueue_task("boom")
    await tw.drain(timeout=30)
    assert (await tw.get_task_status(job.id)).state is JobState.RETRYABLE
    why = await tw.explain(job.id)
    assert why.codes == ("backoff",)
    data = one(why, "backoff")
    assert data["attempt"] == 1
    assert data["max_attempts"] == 3
    error = data["error"]
    assert isinstance(error, dict)
    assert (error["kind"], error["message"]) == ("RuntimeError", "the disk is full")
    assert 3000 < float(str(data["in_seconds"])) <= 3600 * 1.1
    text = why.reasons[0].text
    assert "retry backoff until" in text
    assert "attempt 1 of 3 failed with RuntimeError: the disk is full" in text
    assert_json(why)


async def test_paused(tw: TaskManager) -> None:
    await live_worker(tw, "w1", emails=2)
    job = await tw.enqueue_task(ADD, args=[1, 2], queue="emails")
    await tw.pause_queue("emails")
    why = await tw.explain(job.id)
    assert why.codes == ("paused",)
    assert one(why, "paused") == {"queue": "emails"}
    assert "queue emails is paused" in why.reasons[0].text
    await tw.resume_queue("emails")
    assert (await tw.explain(job.id)).codes == ("waiting",)


async def test_global_limit_names_the_jobs_holding_it(tw: TaskManager) -> None:
    await live_worker(tw, "w1", emails=10)
    await tw.configure_queue("emails", global_limit=2)
    jobs = [await tw.enqueue_task(ADD, args=[i, i], queue="emails") for i in range(3)]
    held = await claim(tw, "emails", "w1")
    assert len(held) == 2  # the limit holds at the claim
    (left,) = [j.id for j in jobs if j.id not in held]
    why = await tw.explain(left)
    assert why.codes == ("global_limit",)
    data = one(why, "global_limit")
    assert data["queue"] == "emails"
    assert data["limit"] == 2
    assert data["running"] == 2
    assert sorted(data["held_by"]) == sorted(held)  # type: ignore[type-var]
    assert "global limit of queue emails is full" in why.reasons[0].text
    # Raised: nothing holds it back any more.
    await tw.configure_queue("emails", global_limit=3)
    assert (await tw.explain(left)).codes == ("waiting",)


async def test_no_worker_says_which_queues_the_live_workers_serve(tw: TaskManager) -> None:
    job = await tw.enqueue_task(ADD, args=[1, 2], queue="reports")
    none_alive = await tw.explain(job.id)
    assert none_alive.codes == ("no_worker",)
    assert one(none_alive, "no_worker")["live_workers"] == []
    assert "no worker is alive" in none_alive.reasons[0].text

    await live_worker(tw, "w1", emails=2, default=4)
    await live_worker(tw, "w2", sms=1)
    why = await tw.explain(job.id)
    data = one(why, "no_worker")
    assert data["queue"] == "reports"
    assert sorted(data["live_workers"]) == ["w1", "w2"]  # type: ignore[type-var]
    assert data["served_queues"] == ["default", "emails", "sms"]
    assert "serve: default, emails, sms" in why.reasons[0].text


async def test_a_worker_that_stopped_heartbeating_is_not_alive(tw: TaskManager) -> None:
    old = tw.clock.now() - timedelta(seconds=tw.settings.lease_seconds * 3)
    info = WorkerInfo(
        id="gone", hostname="h", pid=1, queues={"default": 1}, started_at=old, heartbeat_at=old
    )
    await tw.backend.record_worker(info)
    job = await tw.enqueue_task(ADD, args=[1, 2])
    assert (await tw.explain(job.id)).codes == ("no_worker",)


async def test_every_block_is_listed_at_once(tw: TaskManager) -> None:
    job = await tw.enqueue_task(ADD, args=[1, 2], queue="emails", delay=600)
    await tw.pause_queue("emails")
    assert (await tw.explain(job.id)).codes == ("scheduled", "paused", "no_worker")


async def test_waiting_counts_the_jobs_ahead(tw: TaskManager) -> None:
    await live_worker(tw, "w1", default=3)
    first = await tw.enqueue_task(ADD, args=[1, 1])
    second = await tw.enqueue_task(ADD, args=[2, 2])
    urgent = await tw.enqueue_task(ADD, args=[3, 3], priority=0)
    why = await tw.explain(second.id)
    assert why.codes == ("waiting",)
    data = one(why, "waiting")
    assert data == {"queue": "default", "ahead": 2, "pending": 3, "workers": 1, "slots": 3}
    assert "2 job(s) of queue default are ahead of it" in why.reasons[0].text
    assert one(await tw.explain(urgent.id), "waiting")["ahead"] == 0
    assert one(await tw.explain(first.id), "waiting")["ahead"] == 1


async def test_running(tw: TaskManager) -> None:
    await live_worker(tw, "w1", default=1)
    job = await tw.enqueue_task(ADD, args=[1, 2])
    assert await claim(tw, "default", "w1") == [job.id]
    why = await tw.explain(job.id)
    assert why.running
    assert why.codes == ("running",)
    data = one(why, "running")
    stored = await tw.get_task_status(job.id)
    assert data["worker"] == "w1"
    assert data["attempt"] == 1
    assert data["lease_expired"] is False
    assert data["since"] == stored.attempted_at.isoformat()  # type: ignore[union-attr]
    assert data["lease_until"] == stored.lease_until.isoformat()  # type: ignore[union-attr]
    assert why.reasons[0].text.startswith("running on worker w1 since")
    assert "lease runs until" in why.reasons[0].text
    assert_json(why)


async def test_finished_completed(tw: TaskManager) -> None:
    job = await tw.enqueue_task(ADD, args=[1, 2])
    await tw.drain(timeout=30)
    why = await tw.explain(job.id)
    assert why.codes == ("finished",)
    data = one(why, "finished")
    done = await tw.get_task_status(job.id)
    assert data["state"] == "completed"
    assert data["at"] == done.completed_at.isoformat()  # type: ignore[union-attr]
    assert data["result_present"] is True
    assert data["error"] is None
    assert "completed at" in why.reasons[0].text
    assert "returned a result" in why.reasons[0].text


async def test_finished_failed(tw: TaskManager) -> None:
    tw.task(name="boom", max_attempts=1)(boom)
    job = await tw.enqueue_task("boom")
    await tw.drain(timeout=30)
    data = one(why := await tw.explain(job.id), "finished")
    assert data["state"] == "failed"
    assert data["at"] is not None
    error = data["error"]
    assert isinstance(error, dict)
    assert (error["kind"], error["message"]) == ("RuntimeError", "the disk is full")
    assert "it failed at" in why.reasons[0].text
    assert "RuntimeError: the disk is full" in why.reasons[0].text


async def test_finished_discarded(tw: TaskManager) -> None:
    tw.task(name="discard")(discard)
    job = await tw.enqueue_task("discard")
    await tw.drain(timeout=30)
    data = one(why := await tw.explain(job.id), "finished")
    assert data["state"] == "discarded"
    error = data["error"]
    assert isinstance(error, dict)
    assert error["message"] == "the address bounced"
    assert "it was discarded at" in why.reasons[0].text


async def test_finished_cancelled(tw: TaskManager) -> None:
    job = await tw.enqueue_task(ADD, args=[1, 2])
    await tw.cancel_task(job.id, reason="customer left")
    data = one(why := await tw.explain(job.id), "finished")
    assert data["state"] == "cancelled"
    assert data["at"] is not None
    assert "it was cancelled at" in why.reasons[0].text
    assert "customer left" in why.reasons[0].text


async def test_sensitive_arguments_are_redacted(tw: TaskManager) -> None:
    @tw.task(name="login", sensitive=("password",))
    def login(user: str, password: str) -> None:
        return None

    job = await login.enqueue("ada", "hunter2")
    why = await tw.explain(job.id)
    assert why.job["args"] == ["ada", "***"]
    assert "hunter2" not in json.dumps(why.to_dict())
    assert "unique_key" not in why.job


async def test_a_missing_job(tw: TaskManager) -> None:
    with pytest.raises(JobNotFound):
        await tw.explain(424242)


def test_the_sync_twin() -> None:
    tw = TaskManager("memory://")
    try:
        job = tw.sync.enqueue_task(ADD, args=[1, 2], delay=60)
        why = tw.sync.explain(job.id)
        assert isinstance(why, Explanation)
        assert why.codes[0] == "scheduled"
        assert isinstance(why.at, datetime)
    finally:
        tw.sync.shutdown()


# -- the CLI: taskward why, taskward queue configure|limits ------------------------------------
runner = CliRunner()


@pytest.fixture
def cli_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("TASKWARD_URL", url)
    monkeypatch.delenv("TASKWARD_APP", raising=False)
    # The read-only commands (why, queue limits) refuse a store that does not exist.
    assert invoke("migrate")[0] == 0
    return url


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_cli_why_in_words_and_as_json(cli_url: str) -> None:
    manager = TaskManager(cli_url)
    manager.task(name="login", sensitive=("password",), queue="emails")(login)
    job = manager.sync.enqueue_task("login", kwargs={"password": "hunter2"})
    manager.sync.pause_queue("emails")
    manager.sync.shutdown()

    code, out = invoke("why", str(job.id))
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == f"job {job.id} (login) on queue emails: pending, not running"
    assert lines[1].startswith("  paused: its queue emails is paused")
    assert lines[2].startswith("  no_worker: no live worker listens on queue emails")
    assert "hunter2" not in out

    code, out = invoke("why", str(job.id), "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["running"] is False
    assert [r["code"] for r in data["reasons"]] == ["paused", "no_worker"]
    assert data["job"]["kwargs"] == {"password": "***"}


def test_cli_why_a_finished_job(cli_url: str) -> None:
    manager = TaskManager(cli_url)
    job = manager.sync.enqueue_task(ADD, args=[1, 2])
    manager.sync.drain(timeout=30)
    manager.sync.shutdown()
    code, out = invoke("why", str(job.id))
    assert code == 0, out
    assert "completed, not running" in out
    assert "finished: it completed at" in out


def test_cli_why_bad_input(cli_url: str) -> None:
    code, out = invoke("why", "424242")
    assert code == 1
    assert out.strip().splitlines() == ["error: job 424242 not found (it never existed or was "
                                        "cleaned up)"]  # fmt: skip
    code, out = invoke("why", "abc")
    assert code == 2
    assert "Invalid value" in out


def test_cli_queue_configure_and_limits(cli_url: str) -> None:
    code, out = invoke("queue", "limits")
    assert (code, out.strip()) == (0, "no queue has limits")
    code, out = invoke("queue", "configure", "emails", "--global-limit", "5")
    assert code == 0, out
    assert out.startswith("queue emails: global limit 5")
    code, out = invoke("queue", "configure", "sms", "--global-limit", "1", "--json")
    assert json.loads(out) == {
        "queue": "sms",
        "global_limit": 1,
        "rate_limit": None,
        "partition_by": None,
    }
    code, out = invoke("queue", "limits", "--json")
    assert code == 0, out
    none = {
        "rate_limit": None,
        "partition_by": None,
        "started_in_window": None,
        "held_until": None,
        "waits": {},
    }
    assert json.loads(out) == [
        {"queue": "emails", "global_limit": 5, "running": 0, **none},
        {"queue": "sms", "global_limit": 1, "running": 0, **none},
    ]
    code, out = invoke("queue", "limits")
    assert "emails" in out
    assert "5" in out
    manager = TaskManager(cli_url)
    try:  # two jobs, a limit of one: the second claim is turned away while a job waits
        for n in range(2):
            manager.sync.enqueue_task("tests_support.jobs:add", args=[n], queue="sms")
        now = manager.clock.now()
        for worker in ("w1", "w2"):
            manager.run_sync(
                manager.backend.fetch(
                    queue="sms", limit=1, worker_id=worker, now=now, lease_until=now
                )
            )
    finally:
        manager.sync.shutdown()
    code, out = invoke("queue", "limits", "--json")
    assert json.loads(out)[1]["waits"] == {"global_limit": 1}
    code, out = invoke("queue", "limits")
    assert "1 by global limit" in out
    code, out = invoke("queue", "configure", "emails", "--no-global-limit")
    assert (code, out.strip()) == (0, "queue emails: no global limit; no rate limit")
    manager = TaskManager(cli_url)
    try:
        assert set(manager.sync.queue_limits()) == {"sms"}
    finally:
        manager.sync.shutdown()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--global-limit", "0"], 1, "error: global_limit must be between 1 and"),
        (["--global-limit", "-3"], 1, "error: global_limit must be between 1 and"),
        ([], 2, "error: give --global-limit N, --no-global-limit, --rate-limit RATE"),
        (["--partition-by", "not a kwarg!"], 1, "error: partition_by must name a keyword"),
        (["--partition-by", "999"], 1, "error: partition_by as an args position must be"),
        (
            ["--partition-by", "tenant", "--no-partition-by"],
            2,
            "error: give either --partition-by KWARG|POSITION or --no-partition-by",
        ),
        (
            ["--global-limit", "2", "--no-global-limit"],
            2,
            "error: give either --global-limit N or --no-global-limit",
        ),
        (
            ["--rate-limit", "2/s", "--no-rate-limit"],
            2,
            "error: give either --rate-limit RATE or --no-rate-limit",
        ),
        (["--rate-limit", "fast"], 1, "error: rate_limit must look like"),
        (["--rate-limit", "0/s"], 1, "error: a rate's count must be between 1"),
        (["--global-limit", "3", "--rate-limit", "10/0s"], 1, "error: a rate's window"),
    ],
)
def test_cli_queue_configure_bad_input(
    cli_url: str, args: list[str], code: int, message: str
) -> None:
    got, out = invoke("queue", "configure", "emails", *args)
    assert got == code
    (line,) = out.strip().splitlines()
    assert line.startswith(message)
    _, out = invoke("queue", "limits", "--json")
    assert json.loads(out) == []


def test_cli_queue_configure_a_bad_queue_name(cli_url: str) -> None:
    code, out = invoke("queue", "configure", "not a queue!", "--global-limit", "2")
    assert code == 1
    assert out.startswith("error: invalid queue name")
    code, out = invoke("queue", "configure", "emails", "--global-limit", "many")
    assert code == 2


def test_cli_queue_rate_limits_and_holds(cli_url: str) -> None:
    code, out = invoke("queue", "configure", "api", "--rate-limit", "100/s")
    assert code == 0, out
    assert out.startswith("queue api: no global limit; rate limit 100/s (at most 100 of its")
    code, out = invoke("queue", "configure", "api", "--global-limit", "4", "--json")
    assert json.loads(out) == {
        "queue": "api",
        "global_limit": 4,
        "rate_limit": "100/s",
        "partition_by": None,
    }
    code, out = invoke("queue", "hold", "api", "600")
    assert (code, out.strip()) == (0, "queue api: held back for 600 s (or longer if already held)")
    code, out = invoke("queue", "limits", "--json")
    (row,) = json.loads(out)
    assert (row["queue"], row["global_limit"], row["rate_limit"]) == ("api", 4, "100/s")
    assert row["started_in_window"] == 0
    assert row["held_until"] is not None
    code, out = invoke("queue", "limits")
    assert "100/s" in out
    assert "held until" in out
    code, out = invoke("queue", "release", "api")
    assert (code, out.strip()) == (0, "queue api: released")
    code, out = invoke("queue", "configure", "api", "--no-rate-limit", "--no-global-limit")
    assert (code, out.strip()) == (0, "queue api: no global limit; no rate limit")
    code, out = invoke("queue", "limits", "--json")
    assert json.loads(out) == []
    code, out = invoke("queue", "hold", "api", "--", "-5")
    assert code == 1
    assert out.startswith("error: ")


def test_cli_queue_partitions(cli_url: str) -> None:
    code, out = invoke(
        "queue", "configure", "api", "--partition-by", "tenant", "--global-limit", "2"
    )
    assert code == 0, out
    assert "partitioned by kwarg:tenant (the limits apply to each key)" in out
    code, out = invoke("queue", "configure", "api", "--partition-by", "1", "--json")
    assert json.loads(out)["partition_by"] == "arg:1"
    code, out = invoke("queue", "hold", "api", "60", "--key", "acme")
    assert (code, out.strip()) == (
        0,
        "queue api key 'acme': held back for 60 s (or longer if already held)",
    )
    code, out = invoke("queue", "release", "api", "--key", "acme")
    assert (code, out.strip()) == (0, "queue api key 'acme': released")
    code, out = invoke("queue", "limits")
    assert "arg:1" in out
    code, out = invoke("queue", "configure", "api", "--no-partition-by", "--no-global-limit")
    assert code == 0, out
    code, out = invoke("queue", "limits", "--json")
    assert json.loads(out) == []
