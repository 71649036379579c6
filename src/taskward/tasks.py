"""Tasks: a registered function plus its default job options, and the registry that names them.

A :class:`Task` is what ``@manager.task()`` returns. Calling it runs the function inline;
``enqueue`` makes a durable job of it. The registry resolves names at enqueue time (so an
unknown task is rejected before anything is written) and in the worker.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import ModuleType
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from taskward.backoff import ExponentialBackoff, RetryPolicy
from taskward.errors import InvalidOptions, UnknownTask
from taskward.jobs import (
    Job,
    validate_max_attempts,
    validate_priority,
    validate_queue_name,
    validate_seconds,
)

REDACTED = "***"
"""What a sensitive value is shown as in the API, the dashboard, the CLI and the logs."""
SENSITIVE_META_KEY = "taskward.sensitive"
"""The job ``meta`` key recording which arguments are sensitive (written at enqueue)."""


logger = logging.getLogger("taskward")
_DEFAULT_POLICY: RetryPolicy = ExponentialBackoff()

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

    def __post_init__(self) -> None:
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
        self.takes_context = _takes_context(fn)
        self.sensitive_marker = _sensitive_marker(fn, options.sensitive, self.takes_context)
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

    async def schedule(self, at: datetime | float, *args: Any, **kwargs: Any) -> Job:
        """Enqueue a job to run at ``at`` (a datetime, or seconds from now)."""
        return await self._manager().schedule_task(self, at=at, args=args, kwargs=kwargs)


def _takes_context(fn: Callable[..., Any]) -> bool:
    """True when the first parameter is annotated ``JobContext``."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if not params:
        return False
    annotation = params[0].annotation
    if isinstance(annotation, str):
        return annotation.rsplit(".", 1)[-1] == "JobContext"
    return getattr(annotation, "__name__", None) == "JobContext"


def _sensitive_marker(
    fn: Callable[..., Any], names: tuple[str, ...], takes_context: bool
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
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        # No signature to find the named parameters in (a builtin, a C function): hide every
        # argument rather than show one that was marked.
        return hide_all(names)
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


def redact(args: Any, kwargs: Any, meta: Mapping[str, Any]) -> tuple[Any, Any]:
    """Return ``(args, kwargs)`` as shown to people: sensitive values replaced by ``"***"``.

    ``meta[SENSITIVE_META_KEY]`` (written at enqueue from the task's ``sensitive=`` option,
    see :func:`_sensitive_marker`) says which values: the positional args at ``positions`` and
    from ``rest`` on, the keyword args not in ``params`` when it is given (a sensitive
    ``**kwargs``), and every dict key in ``names`` at any depth. Jobs without the key are
    returned unchanged (the same objects).
    """
    marker = meta.get(SENSITIVE_META_KEY)
    if not isinstance(marker, Mapping):
        return args, kwargs
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
            for index, item in enumerate(args)
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
    args, kwargs = redact(job.args, job.kwargs, job.meta)
    shown = job.to_dict()
    del shown["unique_key"]
    return {**shown, "args": args, "kwargs": kwargs, "unique": job.unique_key is not None}


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


class TaskRegistry:
    """The tasks one manager knows, by name, and which of them its workers may run.

    Only registered code runs: a job names its task, and the name comes from the store, which
    anyone with write access to the database can change. A worker therefore looks a name up
    (:meth:`runnable`) and never imports what the name says, except in modules the app
    declared (``task_modules``) or when ``import_by_path`` was switched on. A producer may
    still enqueue ``"module:function"`` for a task it has not registered (:meth:`template`):
    the job gets default options and the worker decides.
    """

    def __init__(
        self,
        *,
        task_modules: Iterable[str] = (),
        import_by_path: bool = False,
        make: Callable[[Callable[..., Any], str], Task[Any, Any]] | None = None,
    ) -> None:
        """``make(fn, name)`` wraps a plain function into a Task with default options."""
        self._make = make or _plain_task
        self._tasks: dict[str, Task[Any, Any]] = {}
        self._by_fn: dict[Any, Task[Any, Any]] = {}  # a registered function keeps its marks
        self._unverified: dict[str, Task[Any, Any]] = {}  # enqueue-only templates, never run
        self._modules: dict[str, ModuleType | None] = {}  # declared task modules, once imported
        self.task_modules = frozenset(task_modules)
        self.import_by_path = import_by_path

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[Task[Any, Any]]:
        return iter(list(self._tasks.values()))

    def __len__(self) -> int:
        return len(self._tasks)

    def add(self, task: Task[Any, Any]) -> None:
        """Register ``task`` (its workers may run it); another function under its name fails."""
        existing = self._tasks.get(task.name)
        if existing is not None and existing.fn is not task.fn:
            raise InvalidOptions(f"task name {task.name!r} is already registered")
        self._tasks[task.name] = task
        self._unverified.pop(task.name, None)
        with contextlib.suppress(TypeError):  # an unhashable callable: found by name only
            self._by_fn.setdefault(task.fn, task)

    def get(self, name: str) -> Task[Any, Any] | None:
        """Return the task registered as ``name``, if any."""
        return self._tasks.get(name)

    def for_function(self, fn: Callable[..., Any]) -> Task[Any, Any] | None:
        """Return the task registered for the function ``fn`` (under any name), if any."""
        try:
            return self._by_fn.get(fn)
        except TypeError:
            return None

    def runnable(self, name: str) -> Task[Any, Any] | None:
        """Return the task a worker may run for ``name``, or None; never imports a stranger.

        Registered tasks, top-level functions of a declared task module (imported here on
        first use), or, with ``import_by_path``, any importable ``module:function``.
        """
        task = self._tasks.get(name)
        if task is not None:
            return task
        fn: Any
        module_name, _, attr = name.partition(":")
        if module_name in self.task_modules:
            fn = _public_function(self._declared(module_name), attr)
        elif self.import_by_path:
            try:
                fn = import_function(name)
            except UnknownTask:
                return None
        else:
            return None
        if fn is None:
            return None
        if isinstance(fn, Task):
            if fn.name != name:
                return None  # a Task imported under another name runs under its own name
            self.add(fn)
            return fn
        task = self.for_function(fn)  # registered under another name: that task, marks and all
        if task is None:
            task = self._make(fn, name)
            self.add(task)
        return task

    def load_task_modules(self) -> None:
        """Import every declared task module and register the ``@task`` functions it defines.

        Called when a worker is made, so a module that fails to import is reported once, at
        start, and a task registered under a custom name in such a module is known by it.
        """
        for module_name in sorted(self.task_modules):
            module = self._declared(module_name)
            for obj in list(vars(module).values()) if module is not None else ():
                own = isinstance(obj, Task) and getattr(obj.fn, "__module__", None) == module_name
                if own and not obj.template_only and obj.name not in self:
                    self.add(obj)

    def _declared(self, module_name: str) -> ModuleType | None:
        """The declared task module ``module_name``, imported once (None if that failed)."""
        if module_name not in self._modules:
            try:
                self._modules[module_name] = importlib.import_module(module_name)
            except Exception:
                # Any error at import (a missing setting, say) must not escape into the
                # worker's run or the Rescuer: logged once, and its jobs are UnknownTask.
                logger.exception("cannot import the declared task module %r", module_name)
                self._modules[module_name] = None
        return self._modules[module_name]

    def template(self, name: str, *, imports: bool = True) -> Task[Any, Any]:
        """Return the task to enqueue ``name`` with; raise ``UnknownTask`` for a bad name.

        A registered or runnable name gives its task. Any other ``module:function`` is looked
        up for its options: when the module imports here and holds a ``@task`` at that name,
        that task (and its ``sensitive`` marks) is used and registered; a plain function, or
        a module this process cannot import, gives a template with default options that no
        worker of this registry runs unless it is declared. ``imports=False`` (a name read from
        the store, such as a cron schedule's) never imports anything.
        """
        task = self.runnable(name)
        if task is not None:
            return task
        cached = self._unverified.get(name)
        if cached is not None:
            return cached
        found = _code_for(name) if imports else None
        if isinstance(found, Task) and not found.template_only:
            self.add(found)
            return found
        registered = self.for_function(found) if found is not None else None
        if registered is not None:
            return registered  # registered under another name: its name, options and marks
        if not inspect.isfunction(found) and not inspect.ismethod(found):
            found = None  # a class, a builtin: nothing a job runs by this name
        task = self._make(found if found is not None else _elsewhere(name), name)
        task.template_only = True
        if found is None:
            # Without the code its sensitive marks are unknown: show none of its arguments.
            task.sensitive_marker = hide_all()
        if imports:  # a template without a look at the code is not kept for later producers
            self._unverified[name] = task
        return task


def _code_for(name: str) -> Any:
    """Import what a producer names as ``"module:function"``; None when the module is absent.

    A bad name, a missing function in a module that imports, or a module that fails on one of
    its own imports raise ``UnknownTask``: those are mistakes, not a producer without the code.
    """
    module_name, sep, attr_path = name.partition(":")
    if not sep or not _MODULE_PATH.fullmatch(module_name) or not _ATTR_PATH.fullmatch(attr_path):
        raise UnknownTask(
            f"unknown task {name!r}: register it with @manager.task or name it 'module:function'"
        )
    try:
        return import_function(name)
    except UnknownTask as exc:
        missing = getattr(exc.__cause__, "name", None)
        if not isinstance(exc.__cause__, ModuleNotFoundError) or not isinstance(missing, str):
            raise
        if not (module_name == missing or module_name.startswith(missing + ".")):
            raise  # the module exists but one of its own imports is missing
        return None  # a producer without the task's code: the worker decides


def _plain_task(fn: Callable[..., Any], name: str) -> Task[Any, Any]:
    return Task(fn, name=name, options=TaskOptions(), backoff=_DEFAULT_POLICY, manager=None)


def _elsewhere(name: str) -> Callable[..., Any]:
    """The stand-in function of a task whose code this process does not have."""

    def elsewhere(*args: Any, **kwargs: Any) -> Any:
        raise UnknownTask(f"task {name!r} is not available in this process")

    return elsewhere


_MODULE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_ATTR_PATH = _MODULE_PATH  # "function" or "Class.method"


def _public_function(module: ModuleType | None, attr: str) -> Any:
    """A public top-level function (or Task) defined in ``module``, else None.

    Only a plain name: no dotted path, no private name, nothing the module merely imported
    (``os`` in a task module is not a way to reach ``os.system``).
    """
    if module is None or not attr.isidentifier() or attr.startswith("_"):
        return None
    obj = getattr(module, attr, None)
    fn = obj.fn if isinstance(obj, Task) else obj
    if not (inspect.isfunction(fn) and getattr(fn, "__module__", None) == module.__name__):
        return None
    return obj


def import_function(path: str) -> Callable[..., Any]:
    """Import ``"package.module:function"`` (or ``Class.method``); raise ``UnknownTask``.

    Producers only (a name from code), or workers with ``import_by_path`` switched on.
    """
    module_name, sep, attr_path = path.partition(":")
    if not sep or not module_name or not attr_path:
        raise UnknownTask(
            f"unknown task {path!r}: register it with @manager.task or name it 'module:function'"
        )
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr_path.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise UnknownTask(f"cannot import task {path!r}: {exc}") from exc
    if not callable(obj):
        raise UnknownTask(f"task {path!r} is not callable")
    return obj  # type: ignore[no-any-return]
