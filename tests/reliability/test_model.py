"""Item 8: a Hypothesis state machine drives the public API (enqueue, schedule, a two-step
workflow, cancel, retry, run a worker step, a worker dying mid-job, rescue, stage, prune)
against a small reference
model, on memory, SQLite, PostgreSQL and Redis. After every step each job's state, attempt and
max_attempts equal the model's: only legal moves, attempts never above max_attempts, no job
lost or invented. ``TASKWARD_LONG=1`` runs ten times as many examples.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from reliability.harness import LONG
from taskward import FrozenClock, JobState, TaskManager, chain
from taskward.runtime.maintenance import Rescuer, Stager
from taskward.states import is_legal

S = JobState
LEASE = 30.0
BACKOFF = 10.0
WAITING = {S.BLOCKED, S.SCHEDULED, S.PENDING, S.RETRYABLE}
FINISHED = {S.COMPLETED, S.FAILED, S.DISCARDED, S.CANCELLED}


async def work(fails: bool) -> str:
    """The modelled task: fails when asked to."""
    if fails:
        raise RuntimeError("asked to fail")
    return "ok"


@dataclass
class Model:
    """What the reference model knows of one job."""

    fails: bool
    max_attempts: int
    scheduled_at: datetime
    state: JobState
    attempt: int = 0
    lease_until: datetime | None = None
    cancel_requested: bool = False
    parent: int | None = None
    """The step this one waits for (a two-step workflow), or None."""
    child: int | None = None
    """The step that waits for this one, or None."""
    propagated: bool = False
    """Cancelled because its parent ended other than completed."""

    def move(self, state: JobState) -> None:
        assert is_legal(self.state, state), f"the model itself moved {self.state} -> {state}"
        self.state = state


class JobMachine(RuleBasedStateMachine):
    """The public API against the model; ``fresh_url`` gives each example an empty store."""

    fresh_url: Callable[[], str] = staticmethod(lambda: "memory://")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FrozenClock()
        self.tw = TaskManager(self.fresh_url(), clock=self.clock, lease_seconds=LEASE)
        self.task = self.tw.task(name="model.work", backoff=BACKOFF)(work)
        self.model: dict[int, Model] = {}
        self.do(self.tw.open())

    def do(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.do(self.tw.close())
        self.loop.close()

    def pick(self, n: int, states: set[JobState] | None = None) -> int | None:
        ids = sorted(i for i, m in self.model.items() if states is None or m.state in states)
        return ids[n % len(ids)] if ids else None

    # -- produce -----------------------------------------------------------------------
    @rule(fails=st.booleans(), max_attempts=st.integers(1, 3), delay=st.sampled_from([0, 20]))
    def enqueue(self, fails: bool, max_attempts: int, delay: int) -> None:
        options = {"max_attempts": max_attempts, "delay": delay}
        job = self.do(self.tw.enqueue_task(self.task, args=[fails], **options))
        now = self.clock.now()
        state = S.SCHEDULED if delay else S.PENDING
        when = now + timedelta(seconds=delay)
        self.model[job.id] = Model(fails, max_attempts, when, state)

    @rule(fails=st.booleans(), max_attempts=st.integers(1, 3))
    def enqueue_chain(self, fails: bool, max_attempts: int) -> None:
        first = self.task.s(fails).set(max_attempts=max_attempts)
        then = self.task.s(False).set(max_attempts=max_attempts)
        record = self.do(self.tw.enqueue_workflow(chain(first, then)))
        a, b = (s.job.id for s in record.steps)
        now = self.clock.now()
        self.model[a] = Model(fails, max_attempts, now, S.PENDING, child=b)
        self.model[b] = Model(False, max_attempts, now, S.BLOCKED, parent=a)

    def ended(self, job_id: int) -> None:
        """``job_id`` reached a final state: release its waiting step, or cancel it."""
        m = self.model[job_id]
        child = self.model.get(m.child) if m.child is not None else None
        if child is None or child.state is not S.BLOCKED:
            return
        if m.state is S.COMPLETED:
            child.move(S.PENDING)
        else:
            child.move(S.CANCELLED)
            child.propagated = True
            assert m.child is not None
            self.ended(m.child)

    # -- work --------------------------------------------------------------------------
    def claim(self, worker_id: str) -> Any:
        now = self.clock.now()
        until = now + timedelta(seconds=LEASE)
        jobs = self.do(
            self.tw.backend.fetch(
                queue="default", limit=1, worker_id=worker_id, now=now, lease_until=until
            )
        )
        pending = [(m.scheduled_at, i) for i, m in self.model.items() if m.state is S.PENDING]
        if not pending:
            assert jobs == []
            return None
        (job,) = jobs
        assert job.id == min(pending)[1], "claims follow schedule order"
        m = self.model[job.id]
        m.move(S.RUNNING)
        m.attempt += 1
        m.lease_until = until
        return job

    @rule()
    def run_one(self) -> None:
        worker = self.tw.make_worker({"default": 1})
        job = self.claim(worker.id)
        if job is None:
            return

        async def run() -> None:
            update = await worker.run_one(job, worker.context_for(job))
            worker.acker.add(update)
            await worker.acker.flush()

        self.do(run())
        worker.close()
        self.outcome(job.id, failed=self.model[job.id].fails)

    @rule()
    def worker_dies_mid_job(self) -> None:
        self.claim("dead-worker")

    def outcome(self, job_id: int, *, failed: bool, orphaned: bool = False) -> None:
        m = self.model[job_id]
        m.lease_until = None
        if orphaned and m.cancel_requested:
            m.move(S.CANCELLED)
        elif not failed:
            m.move(S.COMPLETED)
        elif m.attempt >= m.max_attempts:
            m.move(S.FAILED)
        else:
            m.move(S.RETRYABLE)
            m.scheduled_at = self.clock.now() + timedelta(seconds=BACKOFF)
        m.cancel_requested = False
        if m.state in FINISHED:
            self.ended(job_id)

    # -- maintain ----------------------------------------------------------------------
    @rule(seconds=st.sampled_from([1, 11, 31, 3600]))
    def time_passes_and_stager_runs(self, seconds: int) -> None:
        self.clock.advance(seconds)
        self.do(Stager(self.tw.backend, self.clock, 1).run_once())
        for m in self.model.values():
            if m.state in (S.SCHEDULED, S.RETRYABLE) and m.scheduled_at <= self.clock.now():
                m.move(S.PENDING)

    @rule(past_lease=st.booleans())
    def rescuer_runs(self, past_lease: bool) -> None:
        if past_lease:
            self.clock.advance(LEASE + 1)  # every lease taken so far has expired
        rescuer = Rescuer(
            self.tw.backend,
            self.clock,
            1,
            leadership=None,
            resolve=self.tw._lookup,
            default_policy=self.tw.default_policy,
        )
        self.do(rescuer.run_once())
        now = self.clock.now()
        for job_id, m in self.model.items():
            if m.state is S.RUNNING and m.lease_until is not None and m.lease_until < now:
                self.outcome(job_id, failed=True, orphaned=True)

    @rule()
    def pruner_runs(self) -> None:
        self.clock.advance(1)  # everything finished is now older than the cutoff
        self.do(self.tw.cleanup_old_tasks(completed_days=0, failed_days=0))
        for job_id in [i for i, m in self.model.items() if m.state in FINISHED]:
            del self.model[job_id]

    # -- admin -------------------------------------------------------------------------
    @precondition(lambda self: self.model)
    @rule(n=st.integers(0, 99))
    def cancel(self, n: int) -> None:
        job_id = self.pick(n)
        assert job_id is not None
        self.do(self.tw.cancel_task(job_id))
        m = self.model[job_id]
        if m.state in WAITING:
            m.move(S.CANCELLED)
            self.ended(job_id)
        elif m.state is S.RUNNING:
            m.cancel_requested = True

    @precondition(lambda self: self.model)
    @rule(n=st.integers(0, 99))
    def retry(self, n: int) -> None:
        job_id = self.pick(n)
        assert job_id is not None
        self.do(self.tw.retry_task(job_id))
        m = self.model[job_id]
        if m.state in (S.FAILED, S.DISCARDED, S.CANCELLED):
            parent = self.model.get(m.parent) if m.parent is not None else None
            waits = parent is not None and parent.state is not S.COMPLETED  # gone: done
            m.move(S.BLOCKED if waits else S.PENDING)
            m.scheduled_at = self.clock.now()
            m.max_attempts = max(m.max_attempts, m.attempt + 1)
            m.cancel_requested = False
            m.propagated = False
            child = self.model.get(m.child) if m.child is not None else None
            if child is not None and child.state is S.CANCELLED and child.propagated:
                child.move(S.BLOCKED)  # its parent runs again: it waits again
                child.propagated = False

    # -- the invariants ----------------------------------------------------------------
    @invariant()
    def store_matches_the_model(self) -> None:
        page = self.do(self.tw.list_tasks(per_page=1000, sort_by="id"))
        stored = {j.id: j for j in page.items}
        assert set(stored) == set(self.model), "no job lost, none invented"
        for job_id, m in self.model.items():
            job = stored[job_id]
            assert (job.state, job.attempt, job.max_attempts) == (
                m.state,
                m.attempt,
                m.max_attempts,
            ), job_id
            assert job.attempt <= job.max_attempts
            assert job.cancel_requested == m.cancel_requested


def machine_for(fresh_url: Callable[[], str]) -> type[RuleBasedStateMachine]:
    """The state machine with every example on a fresh store from ``fresh_url``."""
    return type("JobMachineOn", (JobMachine,), {"fresh_url": staticmethod(fresh_url)})


@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgres", "redis"])
def test_public_api_follows_the_reference_model(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    counter = itertools.count()
    if backend == "postgres":
        pg_server = request.getfixturevalue("pg_server")
        base = pg_server.url()
        fresh = lambda: f"{base}?schema=model_{uuid.uuid4().hex[:12]}"  # noqa: E731
    elif backend == "redis":  # a new key prefix per example on the session's server
        redis_server = request.getfixturevalue("redis_server")
        fresh = lambda: redis_server.url(0, prefix=f"model_{uuid.uuid4().hex[:12]}")  # noqa: E731
    elif backend == "sqlite":
        fresh = lambda: f"sqlite:///{tmp_path}/model-{next(counter)}.db"  # noqa: E731
    else:
        fresh = lambda: "memory://"  # noqa: E731
    run_state_machine_as_test(
        machine_for(fresh),
        settings=settings(
            max_examples=500 if LONG else 50,
            stateful_step_count=30,
            deadline=None,
            derandomize=not LONG,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
