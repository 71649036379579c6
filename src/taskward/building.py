"""Job building: a task reference, arguments and options become validated ``NewJob`` values.

Everything here runs before anything is written: bad input raises a ``TaskwardError`` and the
store is never touched. :class:`JobBuilder` resolves what a producer names (a Task, a function,
a registered name or ``"module:function"``), validates every option once per task (a template
a bulk enqueue shares), checks the arguments against the task function's parameters (where
this process has the function), encodes them and derives the unique key. The manager wires
it to the backend; the cron scheduler builds each fire time's job with ``schedule_job``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from taskward.backoff import RetryPolicy
from taskward.clock import Clock
from taskward.encryption import KeyRing
from taskward.errors import InvalidOptions, UnknownTask
from taskward.jobs import (
    EncodedPayload,
    JobState,
    NewJob,
    NewJobBatch,
    Schedule,
    validate_max_attempts,
    validate_priority,
    validate_queue_name,
    validate_seconds,
    validate_tags,
)
from taskward.parameters import Parameters
from taskward.registry import TaskRegistry
from taskward.runtime.scheduler import cron_unique_key
from taskward.sealing import SEALED_META, seal_payload
from taskward.serialize import dumps, encode_payload, loads
from taskward.settings import Settings
from taskward.tasks import (
    SENSITIVE_META_KEY,
    Enqueuer,
    Task,
    TaskOptions,
    qualified_name,
)

__all__ = ["JOB_OPTIONS", "JobBuilder", "TaskRef", "call_key_function", "split_call"]

TaskRef = Task[Any, Any] | Callable[..., Any] | str
JOB_OPTIONS = frozenset(
    {
        "queue",
        "priority",
        "max_attempts",
        "timeout",
        "unique_for",
        "delay",
        "at",
        "tags",
        "meta",
        "partition_key",
    }
)
"""The per-job options ``enqueue_task`` and friends accept."""


class Owner(Enqueuer, Protocol):
    """What the builder reads from its manager at each call (assignable there, never copied)."""

    settings: Settings
    clock: Clock
    default_policy: RetryPolicy
    meta_providers: list[Callable[[str, str], Mapping[str, Any]]]
    keyring: KeyRing | None


class JobBuilder:
    """Turns what a producer names and passes into ``NewJob`` values (see the module doc)."""

    def __init__(self, *, registry: TaskRegistry, owner: Owner) -> None:
        self.registry = registry
        self.owner = owner
        """The manager: its settings, clock, default policy and meta providers are read from
        it, and plain functions made into tasks are bound to it."""
        # build_job's validated template per task, for calls without per-job options
        self._key_functions: dict[str, Callable[..., Any]] = {}  # task name -> partition_key
        # task name -> what its jobs' arguments must fit; kept like _key_functions, since a
        # template (and so a bulk enqueue's calls) knows its task by name only
        self._parameters: dict[str, Parameters] = {}
        self._default_templates: weakref.WeakKeyDictionary[
            Task[Any, Any], tuple[TaskOptions, Settings, NewJob]
        ] = weakref.WeakKeyDictionary()

    def resolve_task(self, ref: TaskRef) -> Task[Any, Any]:
        """Return the Task to enqueue: a Task, a function, a registered name or ``module:function``.

        A function registered with ``@task`` resolves to its Task under whatever name it was
        registered (its ``sensitive`` marks go with it); another function is registered as a
        task with default options (the code handed it over). A ``"module:function"`` name this
        process has not registered is enqueued with default options, and only a worker that
        registered it (or declared its module in ``task_modules``) will run it.
        """
        if isinstance(ref, Task):
            if ref.name not in self.registry and not ref.template_only:
                self.registry.add(ref)
            return ref
        if callable(ref):
            found = self.registry.for_function(ref) or self.registry.get(qualified_name(ref))
            if found is not None and found.fn is ref:
                return found
            task = self.plain_task(ref, qualified_name(ref))
            self.registry.add(task)
            return task
        if isinstance(ref, str):
            return self.registry.template(ref)
        raise UnknownTask(f"cannot use {ref!r} as a task: pass a Task, a function or a name")

    def task_name(self, ref: TaskRef) -> str:
        """The name jobs of ``ref`` are stored under, registering nothing (a read)."""
        if isinstance(ref, str | Task):
            return ref if isinstance(ref, str) else ref.name
        found = self.registry.for_function(ref)
        return found.name if found is not None else qualified_name(ref)

    def plain_task(self, fn: Callable[..., Any], name: str) -> Task[Any, Any]:
        """Wrap a plain function as a task with default options, bound to the manager."""
        return Task(
            fn,
            name=name,
            options=TaskOptions(),
            backoff=self.owner.default_policy,
            manager=self.owner,
        )

    def build_job(
        self,
        ref: TaskRef,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        received: int = 0,
        /,
        **options: Any,
    ) -> NewJob:
        """Validate a job and return it ready to insert; raise before anything is written.

        ``received``: how many values the worker will put before ``args`` (a workflow step
        that receives its dependencies' result: 1), for the check of the arguments.
        Positional only, so that an option of that name is refused as unknown, like any other.
        """
        if options or self.owner.meta_providers:
            return self.with_payload(self.template(ref, options), args, kwargs, received=received)
        # The common call (no per-job options): the task's validated template is reused, and
        # only the schedule (now) changes. A bulk enqueue shares one template the same way.
        task = self.resolve_task(ref)
        cached = self._default_templates.get(task)
        # Valid while the task's options and the settings it was built from are the same.
        if cached is None or cached[0] is not task.options or cached[1] is not self.owner.settings:
            cached = (task.options, self.owner.settings, self.template(task, {}))
            self._default_templates[task] = cached
        return self.with_payload(
            cached[2], args, kwargs, due=self.owner.clock.now(), received=received
        )

    def keys_by_job(self, template: NewJob) -> bool:
        """True when each job of ``template`` gets its own partition key from the producer."""
        return template.partition_key is not None or template.task in self._key_functions

    def template(self, ref: TaskRef, options: Mapping[str, Any]) -> NewJob:
        """Resolve the task and validate every option once (a bulk enqueue shares it)."""
        unknown = set(options) - JOB_OPTIONS
        if unknown:
            raise InvalidOptions(f"unknown job option(s): {', '.join(sorted(unknown))}")
        task = self.resolve_task(ref)
        opts, cfg = task.options, self.owner.settings
        now = self.owner.clock.now()
        scheduled_at = self.scheduled_at(now, options.get("at"), options.get("delay"))
        queue = validate_queue_name(_first(options.get("queue"), opts.queue, cfg.default_queue))
        meta = _meta(options.get("meta"))
        if SEALED_META in meta:
            # Only the task's encrypted option may mark a job sealed: a mark without a sealed
            # payload would hand the function the stored envelope as a keyword argument.
            raise InvalidOptions(f"meta key {SEALED_META!r} is reserved (use encrypted=True)")
        for provide in self.owner.meta_providers:
            meta = {**meta, **provide(task.name, queue)}
        if task.sensitive_marker is not None:
            meta = {**meta, SENSITIVE_META_KEY: task.sensitive_marker}
        if opts.encrypted or cfg.encrypt_all:
            if self.owner.keyring is None:
                raise InvalidOptions(
                    f"task {task.name!r} is encrypted and this manager has no encryption_keys"
                )
            meta = {**meta, SEALED_META: 1}
        if opts.partition_key is not None:
            self._key_functions[task.name] = opts.partition_key
        else:
            self._key_functions.pop(task.name, None)
        if task.parameters is not None:
            self._parameters[task.name] = task.parameters
        else:
            self._parameters.pop(task.name, None)
        return NewJob(
            task=task.name,
            queue=queue,
            args=[],
            kwargs={},
            priority=validate_priority(
                _first(options.get("priority"), opts.priority, cfg.default_priority)
            ),
            max_attempts=validate_max_attempts(
                _first(options.get("max_attempts"), opts.max_attempts, cfg.default_max_attempts)
            ),
            timeout=validate_seconds(
                "timeout", _first(options.get("timeout"), opts.timeout), allow_zero=False
            ),
            scheduled_at=scheduled_at,
            state=JobState.PENDING if scheduled_at <= now else JobState.SCHEDULED,
            unique_window=validate_seconds(
                "unique_for", _first(options.get("unique_for"), opts.unique_for), allow_zero=False
            ),
            tags=validate_tags(options.get("tags")),
            meta=meta,
            partition_key=_partition_key(options.get("partition_key")),
        )

    def with_payload(
        self,
        template: NewJob,
        args: Sequence[Any],
        kwargs: Mapping[str, Any] | None,
        due: datetime | None = None,
        *,
        received: int = 0,
    ) -> NewJob:
        """Return ``template`` carrying these validated, encoded arguments (due now: ``due``)."""
        payload = encode_payload(
            args, kwargs or {}, max_bytes=self.owner.settings.max_payload_bytes
        )
        self._check_arguments(template.task, payload, received)
        unique_key = None
        if template.unique_window is not None:
            unique_key = _unique_key(template.task, template.queue, payload.args, payload.kwargs)
        partition_key = template.partition_key
        if partition_key is None and self._key_functions:
            key_function = self._key_functions.get(template.task)
            if key_function is not None:
                partition_key = call_key_function(key_function, payload.args, payload.kwargs)
        if SEALED_META in template.meta:
            payload, unique_key = self._sealed(template.task, payload, unique_key)
        # Built field by field: dataclasses.replace costs more than the rest of this function.
        return NewJob(
            task=template.task,
            queue=template.queue,
            args=payload.args,
            kwargs=payload.kwargs,
            args_json=payload.args_json,
            kwargs_json=payload.kwargs_json,
            priority=template.priority,
            max_attempts=template.max_attempts,
            timeout=template.timeout,
            scheduled_at=template.scheduled_at if due is None else due,
            state=template.state if due is None else JobState.PENDING,
            unique_key=unique_key,
            unique_window=template.unique_window,
            tags=template.tags,
            # Each job its own meta: a template is shared by many jobs (a bulk enqueue, and
            # every plain call of a task), and a caller may change a returned job's meta.
            meta=copy.deepcopy(template.meta) if template.meta else {},
            partition_key=partition_key,
        )

    def scheduled_at(self, now: datetime, at: Any, delay: Any) -> datetime:
        """When a job given ``at=`` or ``delay=`` (or neither: now) is due; validated."""
        if at is not None and delay is not None:
            raise InvalidOptions("give either at= or delay=, not both")
        if isinstance(at, datetime):
            if at.tzinfo is None:
                raise InvalidOptions("at= must be timezone-aware (e.g. datetime.now(UTC))")
            return max(at.astimezone(UTC), now)
        seconds = validate_seconds("at" if at is not None else "delay", _first(at, delay))
        return now + timedelta(seconds=seconds) if seconds else now

    def schedule_job(self, schedule: Schedule, fire_at: datetime) -> NewJob:
        """Return the job for one fire time of ``schedule`` (unique per name and fire time)."""
        # The schedule's task name was read from the store: looked up, never imported.
        new = self.build_job(
            self.registry.template(schedule.task, imports=False),
            schedule.args,
            schedule.kwargs,
            queue=schedule.queue,
            priority=schedule.priority,
            max_attempts=schedule.max_attempts,
            meta={"schedule": schedule.name, "fire_at": fire_at.isoformat()},
        )
        return replace(
            new,
            scheduled_at=fire_at,
            state=JobState.PENDING,
            unique_key=cron_unique_key(schedule.name, fire_at),
            unique_window=None,
        )

    def _sealed(
        self, task: str, payload: EncodedPayload, unique_key: str | None
    ) -> tuple[EncodedPayload, str | None]:
        """A sealed job's payload and unique key as stored (``taskward.sealing``)."""
        keyring = self.owner.keyring
        if keyring is None:  # the template was built while the manager had keys
            raise InvalidOptions(f"task {task!r} is encrypted and this manager has no keys")
        if unique_key is not None:
            # A plain hash of the arguments would let whoever reads the store test guesses.
            unique_key = "sealed:" + keyring.fingerprint(unique_key.encode())
        return seal_payload(keyring, payload, task), unique_key

    def batch(self, template: NewJob, calls: Iterable[Any]) -> NewJobBatch:
        """One chunk of a streamed bulk enqueue: the template plus each call's payload."""
        max_bytes = self.owner.settings.max_payload_bytes
        payloads = [
            encode_payload(args, kwargs or {}, max_bytes=max_bytes)
            for args, kwargs in map(split_call, calls)
        ]
        for payload in payloads:
            self._check_arguments(template.task, payload, 0)
        if SEALED_META in template.meta:  # a stream carries no unique key
            payloads = [self._sealed(template.task, p, None)[0] for p in payloads]
        return NewJobBatch(template=template, payloads=payloads)

    def _check_arguments(self, task: str, payload: EncodedPayload, received: int) -> None:
        """Refuse arguments the task's function cannot take (``InvalidJob``), where known.

        Checked on the encoded payload, so on what the worker will call the function with.
        """
        parameters = self._parameters.get(task)
        if parameters is not None:
            parameters.check(task, payload.args, payload.kwargs, received=received)


def _partition_key(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidOptions(f"partition_key must be a str, got {value!r}")


def call_key_function(
    key_function: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]
) -> str:
    """A task's partition key for these arguments; any failure is the enqueue's, stored nothing."""
    try:
        key = key_function(*args, **kwargs)
    except Exception as exc:
        raise InvalidOptions(
            f"the task's partition_key function raised {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(key, str):
        raise InvalidOptions(f"the task's partition_key function must return a str, got {key!r}")
    return key


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _meta(meta: Any) -> dict[str, Any]:
    """Return ``meta`` as its JSON round trip, so every backend stores (and returns) the same."""
    if meta is None:
        return {}
    if not isinstance(meta, Mapping):
        raise InvalidOptions(f"meta must be a dict of JSON values, got {type(meta).__name__}")
    return dict(loads(dumps(dict(meta), label="meta"))) if meta else {}


def split_call(call: Any) -> tuple[Sequence[Any], Mapping[str, Any] | None]:
    """A bulk call as ``(args, kwargs)``: an args list, or an ``(args, kwargs)`` pair."""
    if isinstance(call, tuple) and len(call) == 2 and isinstance(call[1], Mapping):
        return call[0], call[1]
    if isinstance(call, list | tuple):
        return call, None
    raise InvalidOptions(f"each call must be an args list or an (args, kwargs) pair, got {call!r}")


def _unique_key(task: str, queue: str, args: list[Any], kwargs: dict[str, Any]) -> str:
    """Hash task, queue and arguments (kwargs order-insensitive) into a unique key."""
    canonical = json.dumps([task, queue, args, kwargs], sort_keys=True, separators=(",", ":"))
    return f"unique:{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"
