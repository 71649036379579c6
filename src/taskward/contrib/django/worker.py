"""The manager ``manage.py taskward_worker`` hands to taskward's worker command.

``taskward worker --app taskward.contrib.django.worker:manager`` runs the worker of the
``TASKS`` alias named by ``TASKWARD_DJANGO_BACKEND`` (default ``"default"``), after Django
was set up by ``manage.py``. The management command sets both; child processes of
``--processes N`` re-run the same command line and so find the same alias.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["BACKEND_ENV", "backend_for", "backend_manager"]

BACKEND_ENV = "TASKWARD_DJANGO_BACKEND"


def backend_for(alias: str | None = None) -> Any:
    """The taskward backend ``TASKS[alias]`` (default: ``$TASKWARD_DJANGO_BACKEND``, "default")."""
    from taskward.contrib.django.backend import TaskwardBackend
    from taskward.contrib.django.compat import task_backends

    alias = alias or os.environ.get(BACKEND_ENV) or "default"
    backend = task_backends[alias]
    if not isinstance(backend, TaskwardBackend):
        from taskward.errors import InvalidOptions

        raise InvalidOptions(
            f"TASKS[{alias!r}] is {type(backend).__module__}.{type(backend).__qualname__}, "
            "not taskward.contrib.django.TaskwardBackend"
        )
    return backend


def backend_manager(alias: str | None = None) -> Any:
    """A new :class:`~taskward.TaskManager` for a command on the backend ``TASKS[alias]``."""
    return backend_for(alias).new_manager()


def __getattr__(name: str) -> Any:
    # ``--app module:manager`` reads an attribute: build it on demand (Django is set up by then).
    if name == "manager":
        return backend_manager()
    raise AttributeError(name)
