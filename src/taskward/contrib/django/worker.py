"""The manager ``manage.py taskward_worker`` and ``manage.py taskward`` hand to taskward's CLI.

``--app taskward.contrib.django.worker:manager:ALIAS`` names a new manager of the taskward
backend ``TASKS[ALIAS]`` (``…:manager`` alone: ``$TASKWARD_DJANGO_BACKEND``, else
``default``), built after ``manage.py`` set Django up. The commands put the alias in that
path, so nothing is shared between calls through the environment.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["BACKEND_ENV", "app_path", "backend_for", "backend_manager"]

BACKEND_ENV = "TASKWARD_DJANGO_BACKEND"
_ATTRIBUTE = "manager"


def app_path(alias: str) -> str:
    """The ``--app`` value naming the manager of ``TASKS[alias]``."""
    return f"{__name__}:{_ATTRIBUTE}:{alias}"


def backend_for(alias: str | None = None) -> Any:
    """The taskward backend ``TASKS[alias]``; a clear ``InvalidOptions`` for anything else."""
    from django.core.exceptions import ImproperlyConfigured

    from taskward.contrib.django.backend import TaskwardBackend
    from taskward.contrib.django.compat import task_backends
    from taskward.errors import InvalidOptions

    alias = alias or os.environ.get(BACKEND_ENV) or "default"
    try:
        backend = task_backends[alias]
    except ImproperlyConfigured as exc:  # no such alias, or a bad entry
        raise InvalidOptions(str(exc)) from None
    if not isinstance(backend, TaskwardBackend):
        raise InvalidOptions(
            f"TASKS[{alias!r}] is {type(backend).__module__}.{type(backend).__qualname__}, "
            "not taskward.contrib.django.TaskwardBackend"
        )
    return backend


def backend_manager(alias: str | None = None) -> Any:
    """A new :class:`~taskward.TaskManager` for a command on the backend ``TASKS[alias]``."""
    from django.core.exceptions import ImproperlyConfigured

    from taskward.errors import InvalidOptions

    try:
        return backend_for(alias).new_manager()
    except ImproperlyConfigured as exc:  # a bad OPTIONS: one error line, not a traceback
        raise InvalidOptions(str(exc)) from None


def __getattr__(name: str) -> Any:
    # ``--app module:manager[:ALIAS]`` reads an attribute: build it on demand.
    head, _, alias = name.partition(":")
    if head == _ATTRIBUTE:
        return backend_manager(alias or None)
    raise AttributeError(name)
