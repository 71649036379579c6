"""What every backend object of one ``TASKS`` alias shares: its tasks and its managers.

Django builds a backend object per thread (``task_backends`` is a connection handler, with
thread-local connections) and a new one after ``override_settings(TASKS=…)``. A ``@task``
registers with the object of the thread that imported its module, so the tasks are kept per
alias, here, for every object of that alias; the managers (and their connections) are kept
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

__all__ = ["Shared", "lock", "register_task", "shared_state", "tasks_of"]

_LOCK = threading.RLock()
_TASKS: dict[str, dict[str, AnyTask]] = {}  # alias -> taskward name -> the Task as decorated
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
    alias: str, name: str, task: AnyTask, register: Callable[[TaskManager, AnyTask], None]
) -> None:
    """Record ``task`` for ``alias`` and register it with every manager of that alias."""
    with _LOCK:
        known = _TASKS.setdefault(alias, {}).get(name)
        if known is not None and known.func is task.func:
            return
        _TASKS[alias][name] = task
        managers = [
            m for state in _STATES.values() if state.alias == alias for m in state.managers()
        ]
    for manager in managers:
        register(manager, task)


def tasks_of(alias: str) -> dict[str, AnyTask]:
    """The tasks registered for ``alias``, by taskward name."""
    with _LOCK:
        return dict(_TASKS.get(alias, {}))


def lock() -> threading.RLock:
    """The lock under which managers are built and looked up."""
    return _LOCK
