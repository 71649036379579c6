"""Sensitive marks hold for every shape of signature and every way a task is enqueued.

Found in issue 17: ``sensitive=`` missed ``*args`` and ``**kwargs``, a registered function
enqueued by the function object under a custom name lost its marks, hooks got the raw job
(``repr(event)`` logged the secret), and a job's unique key (a hash of its arguments) let a
short secret be found by brute force.
"""

from __future__ import annotations

import json

from taskward import JobContext, TaskManager
from taskward.observe.events import Event
from taskward.tasks import REDACTED, redact, shown_job

SECRET = "s3cr3t-4242"
CODE = "123456"


def collect(tw: TaskManager) -> list[Event]:
    events: list[Event] = []
    tw.on("*", events.append)
    return events


async def test_sensitive_var_positional_args_are_redacted() -> None:
    async with TaskManager("memory://") as tw:

        @tw.task(sensitive=("secrets",))
        async def rotate(user: str, *secrets: str) -> None:
            return None

        job = await rotate.enqueue("ada", SECRET, SECRET + "-2")
        assert redact(job.args, job.kwargs, job.meta)[0] == ["ada", REDACTED, REDACTED]
        assert SECRET not in json.dumps(shown_job(job))


async def test_sensitive_var_keyword_args_are_redacted() -> None:
    async with TaskManager("memory://") as tw:

        @tw.task(sensitive=("creds",))
        async def connect(host: str, *, port: int = 5432, **creds: str) -> None:
            return None

        job = await connect.enqueue("db", port=6543, password=SECRET, token=SECRET)
        _, kwargs = redact(job.args, job.kwargs, job.meta)
        # The named parameters stay readable; whatever **creds collected is hidden.
        assert kwargs == {"port": 6543, "password": REDACTED, "token": REDACTED}
        by_keyword = await connect.enqueue(host="db", user=SECRET)
        assert redact(by_keyword.args, by_keyword.kwargs, by_keyword.meta)[1] == {
            "host": "db",
            "user": REDACTED,
        }


async def test_the_position_of_a_secret_skips_a_leading_job_context() -> None:
    async with TaskManager("memory://") as tw:

        @tw.task(sensitive=("password",))
        def login(ctx: JobContext, user: str, password: str) -> None:
            return None

        job = await login.enqueue("bob", SECRET)
        assert redact(job.args, job.kwargs, job.meta)[0] == ["bob", REDACTED]


async def test_a_registered_function_keeps_its_marks_however_it_is_enqueued() -> None:
    def login(user: str, password: str) -> None:
        return None

    async with TaskManager("memory://") as tw:
        task = tw.task(name="auth.login", sensitive=("password",))(login)
        ways = [
            await tw.enqueue_task(login, args=["ada", SECRET]),
            await tw.enqueue_task(task, args=["ada", SECRET]),
            await tw.enqueue_task("auth.login", args=["ada", SECRET]),
            await tw.schedule_task(login, at=60, args=["ada", SECRET]),
            *(await tw.enqueue_many(login, [["ada", SECRET], ["bob", SECRET]])),
        ]
        for job in ways:
            assert job.task == "auth.login"
            assert redact(job.args, job.kwargs, job.meta)[0][1] == REDACTED
        assert tw.sync.enqueue_task(login, args=["ada", SECRET]).task == "auth.login"
        tw.sync.shutdown()


async def test_hooks_never_see_a_secret_nor_the_unique_key() -> None:
    async with TaskManager("memory://") as tw:
        events = collect(tw)

        @tw.task(sensitive=("code",), unique_for=60, max_attempts=1)
        async def verify(user: str, code: str) -> None:
            raise ValueError("wrong code")

        job = await verify.enqueue("ada", CODE)
        assert job.unique_key is not None  # the producer's own Job keeps it
        await tw.drain()
        assert {e.name for e in events} >= {"job.enqueued", "job.started", "job.failed"}
        for event in events:
            assert event.job is not None
            assert CODE not in repr(event), event.name
            assert event.job.unique_key is None
            assert event.job.args == ["ada", REDACTED]


async def test_the_unique_key_is_never_shown() -> None:
    async with TaskManager("memory://") as tw:

        @tw.task(sensitive=("code",), unique_for=60)
        async def verify(user: str, code: str) -> None:
            return None

        job = await verify.enqueue("ada", CODE)
        assert job.unique_key is not None
        shown = json.dumps(shown_job(job))
        assert job.unique_key not in shown
        assert CODE not in shown
        assert shown_job(job)["unique"] is True


def test_a_job_without_marks_is_not_copied_for_events() -> None:
    # Redacted copies only for jobs with sensitive arguments: the hot path stays a reference.
    from taskward.clock import utcnow
    from taskward.jobs import Job, JobState

    now = utcnow()
    job = Job(id=1, task="t", queue="q", args=[1], kwargs={}, state=JobState.PENDING,
              priority=0, attempt=0, max_attempts=1, scheduled_at=now, inserted_at=now)  # fmt: skip
    assert Event.for_job("job.enqueued", job, now).job is job


async def test_a_function_registered_under_another_name_keeps_its_marks_by_path() -> None:
    from tests_support.jobs import add

    async with TaskManager("memory://") as tw:
        tw.task(name="adder", sensitive=("b",))(add)
        job = await tw.enqueue_task("tests_support.jobs:add", args=[1, 2])
        assert job.task == "adder"
        assert redact(job.args, job.kwargs, job.meta)[0] == [1, REDACTED]


async def test_without_the_code_no_argument_is_shown() -> None:
    # A producer without the task's code, or a cron leader without it, cannot know which
    # arguments are sensitive: none is shown.
    async with TaskManager("memory://", task_modules=()) as tw:
        job = await tw.enqueue_task(
            "billing_service.jobs:charge", args=["4111-1111"], kwargs={"x": 1}
        )
        assert redact(job.args, job.kwargs, job.meta) == ([REDACTED], {"x": REDACTED})
        from taskward.jobs import Schedule

        schedule = Schedule(name="n", task="otp.send", cron="* * * * *", args=[CODE])
        new = tw.schedule_job(schedule, tw.clock.now())
        assert redact(new.args, new.kwargs, new.meta)[0] == [REDACTED]


async def test_a_function_without_a_signature_hides_every_argument() -> None:
    async with TaskManager("memory://") as tw:
        tw.task(name="biggest", sensitive=("secret",))(max)
        job = await tw.enqueue_task("biggest", args=[SECRET, "x"])
        assert redact(job.args, job.kwargs, job.meta)[0] == [REDACTED, REDACTED]
