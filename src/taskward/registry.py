"""The task registry: which names a producer may enqueue, and which a worker may run.

Only registered code runs: a job names its task, and the name comes from the store, which
anyone with write access to the database can change. A worker therefore looks a name up
(:meth:`TaskRegistry.runnable`) and never imports what the name says, except in modules the
app declared (``task_modules``) or when ``import_by_path`` was switched on. A producer may
still enqueue ``"module:function"`` for a task it has not registered
(:meth:`TaskRegistry.template`): the job gets default options and the worker decides.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any

from taskward.backoff import ExponentialBackoff, RetryPolicy
from taskward.errors import InvalidOptions, UnknownTask
from taskward.tasks import Task, TaskOptions, hide_all

__all__ = ["TaskRegistry", "import_function"]

logger = logging.getLogger("taskward")
_DEFAULT_POLICY: RetryPolicy = ExponentialBackoff()


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
