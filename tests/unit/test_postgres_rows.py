"""Unit tests for the PostgreSQL backend's bulk rows: batches, COPY lines, the jobs returned."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

from taskward.backends.postgres.rows import batch_keys, batches, copy_rows
from taskward.backends.sql.rows import jobs_from_batch
from taskward.jobs import JobState, NewJob, NewJobBatch
from taskward.limits import PartitionBy
from taskward.serialize import encode_payload

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def new_job(args: list[object], **changes: object) -> NewJob:
    fields: dict[str, object] = {
        "task": "t", "queue": "default", "args": args, "kwargs": {}, "priority": 0,
        "max_attempts": 3, "scheduled_at": NOW, "state": JobState.PENDING,
    }  # fmt: skip
    fields.update(changes)
    return NewJob(**fields)  # type: ignore[arg-type]


def test_batches_group_runs_of_jobs_alike_but_for_their_arguments() -> None:
    other_zone = NOW.astimezone(timezone(timedelta(hours=2)))  # the same instant
    jobs = [
        new_job([1]),
        new_job([2]),
        new_job([3], priority=5),
        new_job([4], meta={"a": 1}),  # meta: never shared, even when equal
        new_job([5], meta={"a": 1}),
        new_job([6]),
        new_job([7], scheduled_at=other_zone),
        new_job([8], timeout=1),
        new_job([9], timeout=1.0),  # equal to 1, yet its own value
    ]
    got = list(batches(jobs))
    assert [[p.args[0] for p in b.payloads] for b in got] == [
        [1, 2], [3], [4], [5], [6], [7], [8], [9]
    ]  # fmt: skip
    assert [b.template.priority for b in got][:3] == [0, 5, 0]
    assert [b.template.meta for b in got][2:5] == [{"a": 1}, {"a": 1}, {}]
    assert got[5].template.scheduled_at.utcoffset() == timedelta(hours=2)
    assert [type(b.template.timeout) for b in got[6:]] == [int, float]
    assert got[0].payloads[1].args_json == "[2]"
    assert got[0].payloads[1].kwargs_json == "{}"


def test_copy_lines_escape_what_copy_text_format_reads_as_separators() -> None:
    payload = encode_payload(["a\tb\nc\\d"], {"k": "\r"}, max_bytes=1000)
    batch = NewJobBatch(template=new_job([], tags=("x", 'q"')), payloads=[payload])
    (line,) = copy_rows(batch, NOW).splitlines()
    fields = line.split("\t")
    assert fields[:2] == ["t", "default"]
    assert fields[2] == '["a\\\\tb\\\\nc\\\\\\\\d"]'  # JSON's escapes, each backslash doubled
    assert fields[3] == '{"k":"\\\\r"}'
    assert fields[4:9] == ["pending", "0", "3", NOW.isoformat(), NOW.isoformat()]
    assert fields[9] == "\\N"  # no unique key
    assert fields[10] == '{"x","q\\\\""}'  # the array's quote escaped, then COPY's


def test_jobs_of_a_batch_each_get_their_own_meta() -> None:
    template = new_job([], meta={"tenant": {"id": 1}})
    payloads = [encode_payload([n], {}, max_bytes=1000) for n in range(3)]
    jobs = jobs_from_batch(NewJobBatch(template=template, payloads=payloads), [10, 11, 12], NOW)
    assert [(job.id, job.args) for job in jobs] == [(10, [0]), (11, [1]), (12, [2])]
    assert all(job.inserted_at == NOW and job.attempt == 0 for job in jobs)
    jobs[0].meta["tenant"]["id"] = 2  # a caller's change: never seen by the others
    assert jobs[1].meta == jobs[2].meta == template.meta == {"tenant": {"id": 1}}
    assert jobs[1].meta is not jobs[2].meta


def test_a_batch_never_mixes_jobs_with_and_without_a_producers_key() -> None:
    jobs = [
        new_job([1]),
        new_job([2], partition_key="a"),
        new_job([3], partition_key=""),
        new_job([4]),
    ]
    got = list(batches(jobs))
    assert [[p.args[0] for p in b.payloads] for b in got] == [[1], [2, 3], [4]]
    assert [batch_keys(b) for b in got] == [None, ["a", ""], None]


def test_batch_keys_are_the_producers_else_what_the_rule_reads() -> None:
    payloads = [
        encode_payload([], {"tenant": "acme"}, max_bytes=1000),
        encode_payload([], {"tenant": {"é": 1}}, max_bytes=1000),
        replace(encode_payload([], {"tenant": "x"}, max_bytes=1000), partition_key="given"),
        encode_payload([], {}, max_bytes=1000),
    ]
    batch = NewJobBatch(template=new_job([]), payloads=payloads)
    rule = PartitionBy(kwarg="tenant")
    assert batch_keys(batch, rule) == ["acme", '{"\\u00e9":1}', "given", ""]
    assert batch_keys(batch) == [None, None, "given", None]
    both = NewJobBatch(template=new_job([], partition_key="all"), payloads=payloads[:1])
    assert batch_keys(both, rule) == ["all"]  # the producer's key of the whole batch


def test_copy_lines_end_with_each_jobs_key() -> None:
    payloads = [encode_payload([n], {}, max_bytes=1000) for n in range(3)]
    batch = NewJobBatch(template=new_job([]), payloads=payloads)
    lines = copy_rows(batch, NOW, ["a\tb", None, ""]).splitlines()
    assert [line.split("\t")[-1] for line in lines] == ["a\\tb", "\\N", ""]
    assert {line.split("\t")[-1] for line in copy_rows(batch, NOW).splitlines()} == {"\\N"}
