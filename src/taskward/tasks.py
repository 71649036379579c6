"""Tasks: a registered function, its default job options, its parameters and its secrets.

A :class:`Task` is what ``@manager.task()`` returns. Calling it runs the function inline;
``enqueue`` makes a durable job of it. Its :class:`~taskward.parameters.Parameters` check a
job's arguments at enqueue, so a call the function cannot take is refused before it is stored
(not failed by a worker, attempt after attempt). Its ``sensitive=`` names become a marker
stored in each job's meta, from which :func:`redact` shows the job's arguments to people.
Which tasks a worker may run is :mod:`taskward.registry`'s concern.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar

from taskward.backoff import RetryPolicy
from taskward.errors import InvalidOptions
from taskward.graph import step_marker
from taskward.jobs import (
    Job,
    validate_max_attempts,
    validate_priority,
    validate_queue_name,
    validate_seconds,
)
from taskward.parameters import Parameters
from taskward.sealing import ENCRYPTED_PLACEHOLDER, masked, still_sealed

if TYPE_CHECKING:
    from taskward.canvas import Step

REDACTED = "***"
"""What a sensitive value is shown as in the API, the dashboard, the CLI and the logs."""
SENSITIVE_META_KEY = "taskward.sensitive"
"""The job ``meta`` key recording which arguments are sensitive (written at enqueue)."""


P = ParamSpec("P")
R = TypeVar("R")


class Enqueuer(Protocol):
    """What a Task needs from its manager to enqueue itself (the manager implements it)."""

    async def enqueue_task(
        self,
        task: Any,
        *,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Job:
        """Enqueue one job."""
        ...

    async def enqueue_many(self, task: Any, calls: Iterable[Any], **options: Any) -> list[Job]:
        """Enqueue many jobs of one task."""
        ...

    async def schedule_task(
        self,
        task: Any,
        *,
        at: datetime | float,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Job:
        """Enqueue one job to run at a given time."""
        ...

    def run_sync(self, awaitable: Awaitable[R]) -> R:
        """Run a coroutine on the manager's loop thread and wait for it."""
        ...

    def enqueue_task_blocking(
        self,
        task: Any,
        *,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Job:
        """Enqueue one job from sync code, blocking the calling thread."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskOptions:
    """Default options of a task's jobs (each may be overridden at enqueue)."""

    queue: str | None = None
    priority: int | None = None
    max_attempts: int | None = None
    timeout: float | None = None
    unique_for: float | None = None
    sensitive: tuple[str, ...] = ()
    """Parameter names (and dict keys at any depth) whose values are shown as ``"***"``."""
    partition_key: Callable[..., str] | None = None
    """Called with a job's arguments at enqueue: the job's key in a partitioned queue."""
    encrypted: bool = False
    """Store this task's arguments, results and error texts encrypted (``taskward.sealing``);
    the manager needs ``encryption_keys``."""

    def __post_init__(self) -> None:
        if self.partition_key is not None and not callable(self.partition_key):
            raise InvalidOptions(
                f"partition_key must be a function of the job's arguments, got "
                f"{self.partition_key!r}"
            )
        if not isinstance(self.sensitive, tuple) or not all(
            isinstance(name, str) and name for name in self.sensitive
        ):
            raise InvalidOptions(
                f"sensitive must be a tuple of parameter names, got {self.sensitive!r}"
            )
        if self.queue is not None:
            validate_queue_name(self.queue)
        if self.priority is not None:
            validate_priority(self.priority)
        if self.max_attempts is not None:
            validate_max_attempts(self.max_attempts)
        validate_seconds("timeout", self.timeout, allow_zero=False)
        validate_seconds("unique_for", self.unique_for, allow_zero=False)


class Task(Generic[P, R]):
    """A function registered as a task: call it to run inline, ``enqueue`` it to run later."""

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str,
        options: TaskOptions,
        backoff: RetryPolicy,
        manager: Enqueuer | None,
    ) -> None:
        self.fn = fn
        self.name = name
        self.options = options
        self.backoff = backoff
        self.manager = manager
        self.is_async = inspect.iscoroutinefunction(fn)
        signature = _signature(fn)  # read once: the three below all follow from it
        self.takes_context = _takes_context(signature)
        # The check needs the signature the worker calls: a decorator's wrapper (which may
        # supply or take arguments of its own) is not its wrapped function; it is not checked.
        called = signature if _signature(fn, follow_wrapped=False) == signature else None
        self.parameters = Parameters.of(called, takes_context=self.takes_context)
        """What a job's arguments are checked against at enqueue (None: anything is taken)."""
        self.sensitive_marker = _sensitive_marker(signature, options.sensitive, self.takes_context)
        """What enqueue records in ``meta[SENSITIVE_META_KEY]``, or None (nothing sensitive)."""
        self.template_only = False
        """True for a name enqueued without its code registered here: never run by this process."""
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", name)
        self.__qualname__ = getattr(fn, "__qualname__", name)
        self.__module__ = getattr(fn, "__module__", __name__)
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<Task {self.name}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function now, in the caller (no job is created)."""
        return self.fn(*args, **kwargs)

    def _manager(self) -> Enqueuer:
        if self.manager is None:
            raise InvalidOptions(f"task {self.name!r} is not bound to a TaskManager")
        return self.manager

    async def enqueue(self, *args: Any, **kwargs: Any) -> Job:
        """Enqueue a job running this task with these arguments; return the stored job."""
        return await self._manager().enqueue_task(self, args=args, kwargs=kwargs)

    def enqueue_sync(self, *args: Any, **kwargs: Any) -> Job:
        """Blocking twin of :meth:`enqueue`, for sync code (a Django view, a script)."""
        return self._manager().enqueue_task_blocking(self, args=args, kwargs=kwargs)

    def enqueue_with_sync(
        self,
        *,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Job:
        """Blocking twin of :meth:`enqueue_with` (``connection=`` takes a sync psycopg one)."""
        return self._manager().enqueue_task_blocking(self, args=args, kwargs=kwargs, **options)

    async def enqueue_with(
        self,
        *,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Job:
        """Enqueue with explicit options (queue, priority, delay, connection…)."""
        return await self._manager().enqueue_task(self, args=args, kwargs=kwargs, **options)

    async def enqueue_many(self, calls: Iterable[Any], **options: Any) -> list[Job]:
        """Enqueue many jobs in bulk; each call is an args list or an ``(args, kwargs)`` pair."""
        return await self._manager().enqueue_many(self, calls, **options)

    def s(self, *args: Any, **kwargs: Any) -> Step:
        """A step of a workflow calling this task with these arguments (``taskward.canvas``).

        Arguments the function can never take (one too many, an unknown keyword) are refused
        here; a missing one only when the workflow is enqueued, since a ``pass_result`` step
        receives its first argument from its dependencies.
        """
        from taskward.canvas import Step  # a sibling that imports this module for typing

        if self.parameters is not None:
            self.parameters.check(self.name, args, kwargs, partial=True)
        return Step(self, args, kwargs)

    async def schedule(self, at: datetime | float, *args: Any, **kwargs: Any) -> Job:
        """Enqueue a job to run at ``at`` (a datetime, or seconds from now)."""
        return await self._manager().schedule_task(self, at=at, args=args, kwargs=kwargs)


def _signature(fn: Callable[..., Any], *, follow_wrapped: bool = True) -> inspect.Signature | None:
    """The function's signature, or None where Python cannot tell (some builtins)."""
    try:
        return inspect.signature(fn, follow_wrapped=follow_wrapped)
    except (TypeError, ValueError):
        return None


def _takes_context(signature: inspect.Signature | None) -> bool:
    """True when the first parameter is annotated ``JobContext``."""
    params = list(signature.parameters.values()) if signature is not None else []
    if not params:
        return False
    annotation = params[0].annotation
    if isinstance(annotation, str):
        return annotation.rsplit(".", 1)[-1] == "JobContext"
    return getattr(annotation, "__name__", None) == "JobContext"


def _sensitive_marker(
    signature: inspect.Signature | None, names: tuple[str, ...], takes_context: bool
) -> dict[str, Any] | None:
    """Where the sensitive values sit in a job's arguments (stored in its meta at enqueue).

    ``names``: every sensitive name (parameters, and dict keys at any depth). ``positions``:
    indexes in the job's args of sensitive positional parameters (a leading ``JobContext`` is
    not in the job's args). ``rest``: the index from which every positional arg is sensitive
    (a sensitive ``*args``). ``params``: with a sensitive ``**kwargs``, the named parameters;
    every other keyword argument is then sensitive.
    """
    if not names:
        return None
    if signature is None:
        # No signature to find the named parameters in (a builtin, a C function): hide every
        # argument rather than show one that was marked.
        return hide_all(names)
    params = list(signature.parameters.values())
    if takes_context and params:
        params = params[1:]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    marker: dict[str, Any] = {
        "names": sorted(set(names)),
        "positions": [index for index, p in enumerate(positional) if p.name in names],
    }
    for p in params:
        if p.kind is p.VAR_POSITIONAL and p.name in names:
            marker["rest"] = len(positional)
        elif p.kind is p.VAR_KEYWORD and p.name in names:
            marker["params"] = sorted(
                q.name for q in params if q.kind in (q.POSITIONAL_OR_KEYWORD, q.KEYWORD_ONLY)
            )
    return marker


def hide_all(names: Iterable[str] = ()) -> dict[str, Any]:
    """A marker that hides every argument: where the marks cannot be known, none is shown."""
    return {"names": sorted(set(names)), "positions": [], "rest": 0, "params": []}


def redact(args: Any, kwargs: Any, meta: Any) -> tuple[Any, Any]:
    """Return ``(args, kwargs)`` as shown to people: sensitive values replaced by ``"***"``.

    ``meta[SENSITIVE_META_KEY]`` (written at enqueue from the task's ``sensitive=`` option,
    see :func:`_sensitive_marker`) says which values: the positional args at ``positions`` and
    from ``rest`` on, the keyword args not in ``params`` when it is given (a sensitive
    ``**kwargs``), and every dict key in ``names`` at any depth. Jobs without the key are
    returned unchanged (the same objects).

    The marker counts positions from the function's first parameter; a workflow step that
    receives a value (``pass_result``, a finalizer: ``taskward.graph.step_marker``) gets it as
    that first argument, so its stored args start one parameter later and are shifted here.
    """
    if not isinstance(meta, Mapping):
        # Unreadable stored meta: which values are sensitive is written there, so none shows.
        hidden = [REDACTED for _ in args] if isinstance(args, list) else args
        return hidden, dict.fromkeys(kwargs, REDACTED) if isinstance(kwargs, dict) else kwargs
    marker = meta.get(SENSITIVE_META_KEY)
    if not isinstance(marker, Mapping):
        return args, kwargs
    step = step_marker(meta)
    received = 1 if step is not None and step.get("pass", "none") != "none" else 0
    names = frozenset(n for n in marker.get("names", ()) if isinstance(n, str))
    positions = frozenset(p for p in marker.get("positions", ()) if isinstance(p, int))
    rest = marker.get("rest")
    rest = rest if isinstance(rest, int) and not isinstance(rest, bool) else None
    params = marker.get("params")
    named = frozenset(p for p in params if isinstance(p, str)) if isinstance(params, list) else None
    if isinstance(args, list):
        args = [
            REDACTED
            if index in positions or (rest is not None and index >= rest)
            else _redact_keys(item, names)
            for index, item in enumerate(args, start=received)
        ]
    if isinstance(kwargs, dict):
        kwargs = {
            key: REDACTED
            if key in names or (named is not None and key not in named)
            else _redact_keys(value, names)
            for key, value in kwargs.items()
        }
    return args, kwargs


def shown_job(job: Job) -> dict[str, Any]:
    """The job as JSON for people (CLI, exports): sensitive arguments as ``"***"``.

    ``unique_key`` is left out (``unique`` says whether the job has one): it is a hash of the
    arguments, secrets included, so a short secret could be found from it by brute force.
    """
    job = masked(job)
    args, kwargs = redact(job.args, job.kwargs, job.meta)
    if still_sealed(job):
        args, kwargs = ENCRYPTED_PLACEHOLDER, ENCRYPTED_PLACEHOLDER
    shown = job.to_dict()
    del shown["unique_key"]
    return {
        **shown,
        "args": args,
        "kwargs": kwargs,
        "unique": job.unique_key is not None,
        "partition_key": shown_partition_key(job),
    }


def shown_partition_key(job: Job) -> str | None:
    """The job's partition key as people may see it (``"***"`` if its task has secrets).

    A key is read from the arguments and may be one of them, so a job whose task marks any
    argument sensitive shows none.
    """
    if job.partition_key is None or SENSITIVE_META_KEY not in job.meta:
        return job.partition_key
    return REDACTED


def _redact_keys(value: Any, names: frozenset[str]) -> Any:
    """Copy ``value`` with the value of every dict key in ``names`` replaced, at any depth."""
    if isinstance(value, dict):
        return {k: REDACTED if k in names else _redact_keys(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_keys(item, names) for item in value]
    return value


def qualified_name(fn: Callable[..., Any]) -> str:
    """Return ``module:qualname``, the default task name and the import path of ``fn``."""
    return f"{fn.__module__}:{fn.__qualname__}"
