"""What the backend objects of the process share: the tasks, and each alias's managers.

Django builds a backend object per thread (``task_backends`` is a connection handler, with
thread-local connections) and a new one after ``override_settings(TASKS=…)``. A ``@task``
registers with the object of the thread that imported its module, and may be enqueued on
another alias (``task.using(backend="other")``): so every task is kept here, for every alias,
and registered with every taskward manager of the process. Only imported code runs still: a
task is here because its module was imported. The managers (and their connections) are kept
per alias and configuration, so a threaded server opens them once, not once per thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from taskward.contrib.django.compat import AnyTask
from taskward.manager import TaskManager

__all__ = ["Shared", "forget_loop", "lock", "register_task", "shared_state", "tasks"]

_LOCK = threading.RLock()
_TASKS: dict[str, AnyTask] = {}  # taskward name -> the Task as decorated
_STATES: dict[tuple[str, str], Shared] = {}  # (alias, configuration) -> what it shares

LoopEntry = tuple[TaskManager, AsyncIterator[None]]


@dataclass
class Shared:
    """The managers of one alias and configuration."""

    alias: str
    manager: TaskManager | None = None
    loop_managers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopEntry] = field(
        default_factory=weakref.WeakKeyDictionary
    )

    def managers(self) -> list[TaskManager]:
        """Every manager built so far (call under the module's lock)."""
        built = [self.manager] if self.manager is not None else []
        return built + [manager for manager, _ in self.loop_managers.values()]


def shared_state(alias: str, params: Any) -> Shared:
    """The state of ``alias`` configured by ``params`` (one per distinct configuration)."""
    key = (alias, json.dumps(params, sort_keys=True, default=repr))
    with _LOCK:
        state = _STATES.get(key)
        if state is None:
            state = _STATES[key] = Shared(alias=alias)
        return state


def register_task(
    name: str, task: AnyTask, register: Callable[[TaskManager, AnyTask, str], None]
) -> None:
    """Record ``task`` and register it with every manager: ``register(manager, task, alias)``."""
    with _LOCK:
        known = _TASKS.get(name)
        if known is not None and known.func is task.func:
            return
        _TASKS[name] = task
        managers = [(m, state.alias) for state in _STATES.values() for m in state.managers()]
    for manager, alias in managers:
        register(manager, task, alias)


def tasks() -> dict[str, AnyTask]:
    """Every Django task registered in this process, by taskward name."""
    with _LOCK:
        return dict(_TASKS)


def forget_loop(state: Shared, loop: asyncio.AbstractEventLoop) -> None:
    """Drop the manager of ``loop`` (its entry holds the loop: it would never go away)."""
    with _LOCK:
        state.loop_managers.pop(loop, None)


def lock() -> threading.RLock:
    """The lock under which managers are built and looked up."""
    return _LOCK
