"""Encryption at rest (``encryption_keys``, ``@task(encrypted=True)``, ``encrypt_all``).

Every durable store is read raw afterwards (the SQLite file and its WAL, every PostgreSQL
table of the store's schema, every Redis key of its prefix): the arguments, results and error
texts of sealed jobs appear nowhere in clear, while jobs of other tasks stay readable.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
import redis

from taskward import Discard, JobContext, JobState, TaskManager, chain
from taskward.backoff import ConstantBackoff
from taskward.encryption import EncryptionError, KeyRing, generate_key, is_envelope
from taskward.errors import InvalidOptions
from taskward.jobs import Reseal
from taskward.sealing import ENCRYPTED_PLACEHOLDER, SEALED_KWARG, still_sealed

CARD = "4111-1111-1111-1111-CARD"
RESULT = "RESULT-7f3a-TOKEN"
ERROR = "ERROR-92c1-LEAK"
PLAIN = "PLAIN-visible-ARG"


def store_text(url: str) -> str:
    """Everything the store holds, as text (what someone with the disk or the database reads)."""
    if url.startswith("sqlite"):
        path = Path(urlsplit(url).path)
        files = [path, Path(f"{path}-wal"), Path(f"{path}-journal")]
        return "".join(f.read_bytes().decode("latin-1") for f in files if f.exists())
    if url.startswith("postgresql"):
        base, _, query = url.partition("?")
        schema = parse_qs(query)["schema"][0]
        text = []
        with psycopg.connect(base) as conn:
            tables = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
            ).fetchall()
            for (table,) in tables:
                rows = conn.execute(f'SELECT t::text FROM "{schema}"."{table}" t').fetchall()
                text += [row[0] for row in rows]
        return "\n".join(text)
    prefix = parse_qs(urlsplit(url).query)["prefix"][0]
    client = redis.Redis.from_url(url.partition("?")[0], decode_responses=True)
    text = []
    for key in client.scan_iter(match=f"{{{prefix}}}*", count=1000):
        kind = client.type(key)
        if kind == "hash":
            text += [f"{k}={v}" for k, v in client.hgetall(key).items()]
        elif kind == "string":
            text.append(str(client.get(key)))
        elif kind == "zset":
            text += [str(m) for m in client.zrange(key, 0, -1)]
        elif kind == "set":
            text += [str(m) for m in client.smembers(key)]
        elif kind == "list":
            text += [str(m) for m in client.lrange(key, 0, -1)]
    client.close()
    return "\n".join(text)


def manager(url: str, keys: list[str] | None, **options: Any) -> TaskManager:
    return TaskManager(
        url, encryption_keys=keys, poll_interval=0.05, default_retry_delay=0, **options
    )


def register(tw: TaskManager) -> dict[str, Any]:
    @tw.task(name="pay", encrypted=True, max_attempts=1)
    def pay(card: str, amount: int) -> str:
        return f"{RESULT} for {amount}"

    @tw.task(name="refuse", encrypted=True, max_attempts=1)
    def refuse(card: str) -> None:
        raise ValueError(f"{ERROR} {card}")

    @tw.task(name="plain", max_attempts=1)
    def plain(text: str) -> str:
        return text

    @tw.task(name="unique", encrypted=True, unique_for=3600)
    def unique(card: str) -> str:
        return "ok"

    return {"pay": pay, "refuse": refuse, "plain": plain, "unique": unique}


async def test_nothing_sealed_is_stored_in_clear(store_url: str) -> None:
    key = generate_key()
    async with manager(store_url, [key]) as tw:
        tasks = register(tw)
        paid = await tasks["pay"].enqueue(CARD, 12)
        refused = await tasks["refuse"].enqueue(card=CARD)
        plain = await tasks["plain"].enqueue(PLAIN)
        first = await tasks["unique"].enqueue(CARD)
        again = await tasks["unique"].enqueue(CARD)
        assert again.id == first.id  # the keyed unique key still finds the duplicate
        await tw.drain(timeout=60)

        done = await tw.get_task_status(paid.id)
        assert done.state is JobState.COMPLETED
        assert (done.args, done.kwargs, done.result) == ([CARD, 12], {}, f"{RESULT} for 12")
        failed = await tw.get_task_status(refused.id)
        assert failed.state is JobState.FAILED
        assert failed.kwargs == {"card": CARD}
        assert failed.errors[-1].kind == "ValueError"
        assert ERROR in failed.errors[-1].message
        assert failed.errors[-1].traceback is not None
        assert ERROR in failed.errors[-1].traceback
        listed = await tw.list_tasks(task="pay")
        assert [job.args for job in listed.items] == [[CARD, 12]]

    raw = store_text(store_url)
    assert PLAIN in raw  # the reader works: a job of a plain task is there in clear
    for secret in (CARD, RESULT, ERROR):
        assert secret not in raw
    assert "ValueError" in raw  # an error's kind stays readable (dead letters group by it)

    # Without the key: the values read back sealed, and the placeholder says so.
    async with TaskManager(store_url) as reader:
        seen = await reader.get_task_status(paid.id)
        assert still_sealed(seen)
        assert is_envelope(seen.kwargs[SEALED_KWARG])
        assert is_envelope(seen.result)
        assert (await reader.get_task_status(plain.id)).args == [PLAIN]
    assert ENCRYPTED_PLACEHOLDER == "encrypted"


async def test_a_worker_without_the_key_fails_the_job_instead_of_running_it(
    manager_url: str,
) -> None:
    if manager_url == "memory://":
        pytest.skip("one memory store cannot be shared by two managers")
    ran: list[Any] = []
    key = generate_key()
    async with manager(manager_url, [key]) as producer:

        @producer.task(name="charge", encrypted=True)
        def charge(card: str) -> None:
            ran.append(card)

        job = await charge.enqueue(CARD)

    reasons = ("no encryption keys", "not among this process's encryption keys")
    for keys, reason in zip((None, [generate_key()]), reasons, strict=True):
        async with manager(manager_url, keys) as worker_side:  # no keys; a key, not the one
            worker_side.task(name="charge")(lambda card: ran.append(card))
            await worker_side.drain(timeout=30)
        assert ran == []
        # The operator who holds the right key reads why (the reason itself is not sealed).
        async with manager(manager_url, [key]) as operator:
            done = await operator.get_task_status(job.id)
            assert done.state is JobState.FAILED
            assert done.errors[-1].kind == "EncryptionError"
            assert reason in done.errors[-1].message
            assert CARD not in done.errors[-1].message
            await operator.retry_task(job.id)
    async with manager(manager_url, [key]) as fixed:
        fixed.task(name="charge")(lambda card: ran.append(card))
        await fixed.drain(timeout=30)
        assert (await fixed.get_task_status(job.id)).state is JobState.COMPLETED
    assert ran == [CARD]


async def test_encrypt_all_seals_every_task_and_needs_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/all.db"
    async with manager(url, [generate_key()], encrypt_all=True) as tw:

        @tw.task(name="echo")
        async def echo(ctx: JobContext, text: str) -> str:
            assert ctx.job.args == [text]  # the job's context sees the opened arguments
            return text

        job = await echo.enqueue(PLAIN)
        await tw.drain(timeout=30)
        assert (await tw.get_task_status(job.id)).result == PLAIN
    assert PLAIN not in store_text(url)
    with pytest.raises(InvalidOptions, match="encrypt_all needs encryption_keys"):
        TaskManager(url, encrypt_all=True)

    async with TaskManager(url) as keyless:

        @keyless.task(name="secret", encrypted=True)
        def secret(value: str) -> None: ...

        with pytest.raises(InvalidOptions, match="no encryption_keys"):
            await secret.enqueue("x")
        assert (await keyless.list_tasks(task="secret")).total_entries == 0


async def test_rotation_reseals_jobs_in_every_state(manager_url: str) -> None:
    old, new = generate_key(), generate_key()
    old_id = KeyRing([old]).primary_id
    async with manager(manager_url, [old]) as tw:
        ids = await _jobs_in_every_state(tw)
        await _rotate(tw, manager_url, ids, old, new)
        fence_holds = await tw.backend.reseal(
            [Reseal(job_id=ids["completed"], state=JobState.FAILED, attempt=1, errors_count=0)]
        )
        assert fence_holds == [False]  # a job no longer as it was read is left alone

    if manager_url != "memory://":
        assert f"twenc1.{old_id}." not in store_text(manager_url)
        async with manager(manager_url, [new]) as only_new:  # the old key is gone
            await _all_open(only_new, ids)


async def _jobs_in_every_state(tw: TaskManager) -> dict[str, int]:
    @tw.task(name="sealed.work", encrypted=True, max_attempts=1)
    def work(card: str, outcome: str) -> str:
        if outcome == "fail":
            raise ValueError(f"{ERROR} {card}")
        if outcome == "discard":
            raise Discard(f"{ERROR} discarded {card}")
        if outcome == "retry":
            raise RuntimeError(f"{ERROR} try later {card}")
        return f"{RESULT} {card}"

    ids = {}
    for state, outcome in (("completed", "ok"), ("failed", "fail"), ("discarded", "discard")):
        ids[state] = (await work.enqueue_with(args=[CARD, outcome], queue="work")).id
    retried = await tw.enqueue_task(work, args=[CARD, "retry"], queue="work", max_attempts=3)
    ids["retryable"] = retried.id
    ids["scheduled"] = (await work.enqueue_with(args=[CARD, "ok"], queue="idle", delay=3600)).id
    ids["pending"] = (await work.enqueue_with(args=[CARD, "ok"], queue="idle")).id
    ids["cancelled"] = (await work.enqueue_with(args=[CARD, "ok"], queue="idle")).id
    await tw.cancel_task(ids["cancelled"])
    ids["running"] = (await work.enqueue_with(args=[CARD, "ok"], queue="busy")).id
    tw.default_policy = ConstantBackoff(3600)  # the retryable job waits: it stays retryable
    await tw.drain(["work"], timeout=30)
    worker = tw.make_worker({"busy": 1})
    (claimed,) = await worker.fetch("busy", 1)
    worker.close()
    assert claimed.id == ids["running"]
    for state, job_id in ids.items():
        assert (await tw.get_task_status(job_id)).state.value == state
    return ids


async def _rotate(tw: TaskManager, url: str, ids: dict[str, int], old: str, new: str) -> None:
    async with manager(url, [new, old]) as rotating:
        if url == "memory://":
            rotating = tw
            rotating.keyring = KeyRing([new, old])
        report = await rotating.rotate_encryption_keys(batch_size=3)
        assert report.sealed == len(ids)
        assert report.resealed == len(ids)
        assert report.done
        again = await rotating.rotate_encryption_keys()
        assert (again.resealed, again.changed, again.unreadable) == (0, 0, [])
        if url == "memory://":
            rotating.keyring = KeyRing([new])
            await _all_open(rotating, ids)


async def _all_open(tw: TaskManager, ids: dict[str, int]) -> None:
    for state, job_id in ids.items():
        job = await tw.get_task_status(job_id)
        assert not still_sealed(job), state
        assert job.args == [CARD, job.args[1]]
        if state == "completed":
            assert job.result == f"{RESULT} {CARD}"
        if state in ("failed", "discarded", "retryable"):
            assert ERROR in job.errors[-1].message


async def test_a_chain_of_sealed_steps_passes_opened_results(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/flow.db"
    async with manager(url, [generate_key()]) as tw:

        @tw.task(name="sealed.first", encrypted=True)
        def first(card: str) -> str:
            return f"{RESULT}:{card}"

        @tw.task(name="sealed.second", encrypted=True)
        def second(previous: str) -> str:
            return previous.upper()

        flow = await tw.enqueue_workflow(chain(first.s(CARD), second.s(), pass_result=True))
        await tw.drain(timeout=30)
        *_, final = (await tw.get_workflow(flow.id)).steps
        assert final.job.task == "sealed.second"
        last = await tw.get_task_status(final.job.id)
        assert last.result == f"{RESULT}:{CARD}".upper()
    raw = store_text(url)
    for secret in (CARD, RESULT, RESULT.upper()):
        assert secret not in raw


async def test_enqueue_and_wait_for_give_opened_values(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/wait.db"
    key = generate_key()
    async with manager(url, [key]) as tw:

        @tw.task(name="sealed.echo", encrypted=True)
        def echo(card: str) -> str:
            return f"{RESULT}:{card}"

        job = await echo.enqueue(CARD)
        assert (job.args, job.kwargs) == ([CARD], {})  # as the producer gave them
        waiting = asyncio.create_task(tw.wait_for(job.id, timeout=30))
        await tw.drain(timeout=30)
        assert await waiting == f"{RESULT}:{CARD}"
        assert await job.wait(timeout=5) == f"{RESULT}:{CARD}"
    async with TaskManager(url) as keyless:
        with pytest.raises(EncryptionError, match="result is encrypted"):
            await keyless.wait_for(job.id, timeout=5)


async def test_a_step_never_receives_a_result_it_cannot_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/steps.db"
    key = generate_key()
    received: list[Any] = []
    async with manager(url, [key]) as tw:

        @tw.task(name="sealed.source", encrypted=True)
        def source() -> str:
            return RESULT

        @tw.task(name="plain.sink", queue="sinks")
        def sink(value: str) -> None:
            received.append(value)

        flow = await tw.enqueue_workflow(chain(source.s(), sink.s(), pass_result=True))
        await tw.drain(["default"], timeout=30)  # the source runs where the key is
    async with manager(url, None) as keyless:  # the sink's worker has no key
        keyless.task(name="plain.sink", queue="sinks")(sink)
        await keyless.drain(["sinks"], timeout=30)
    assert received == []
    async with manager(url, [key]) as tw:
        record = await tw.get_workflow(flow.id)
        first, last = record.steps
        assert first.job.result == RESULT  # get_workflow opens with the manager's keys
        assert last.job.state is JobState.FAILED
        assert last.job.errors[-1].kind == "EncryptionError"
        assert "dependency's encrypted result" in last.job.errors[-1].message


async def test_explain_and_reserved_meta(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/why.db"
    key = generate_key()
    async with manager(url, [key]) as tw:

        @tw.task(name="sealed.flaky", encrypted=True, max_attempts=3)
        def flaky(card: str) -> None:
            raise ValueError(f"{ERROR} {card}")

        job = await flaky.enqueue(CARD)
        tw.default_policy = ConstantBackoff(3600)
        await tw.drain(timeout=30)
        assert (await tw.get_task_status(job.id)).state is JobState.RETRYABLE
        why = await tw.explain(job.id)
        assert ERROR in str(why.to_dict())  # opened with the key
        with pytest.raises(InvalidOptions, match="reserved"):
            await tw.enqueue_task("sealed.flaky", args=["x"], meta={"taskward.sealed": 0})
    async with TaskManager(url) as keyless:
        shown = str((await keyless.explain(job.id)).to_dict())
        assert "twenc1." not in shown
        assert ERROR not in shown
        assert "encrypted" in shown
