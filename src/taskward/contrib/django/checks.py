"""Django system checks of a taskward ``TASKS`` entry (``manage.py check`` runs them)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskward.contrib.django.backend import TaskwardBackend

__all__ = ["APP", "backend_checks"]

APP = "taskward.contrib.django"


def backend_checks(backend: TaskwardBackend) -> Iterator[Any]:
    """Problems with a backend's configuration, as Django check messages."""
    from django.apps import apps
    from django.conf import settings
    from django.core import checks

    where = f"TASKS[{backend.alias!r}]"
    if not apps.is_installed(APP):
        yield checks.Warning(
            f"{where} uses taskward but {APP!r} is not in INSTALLED_APPS",
            hint=f"Add {APP!r} to INSTALLED_APPS: it provides `manage.py taskward_worker` and "
            "imports each app's tasks module at start-up.",
            id="taskward.W001",
        )
    alias = backend.config.database
    if alias not in settings.DATABASES:
        yield checks.Error(
            f"{where}['OPTIONS']['database'] is {alias!r}, which is not in DATABASES",
            id="taskward.E001",
        )
        return
    yield from _transaction_checks(backend, where, alias)


def _transaction_checks(backend: TaskwardBackend, where: str, alias: str) -> Iterator[Any]:
    from django.conf import settings
    from django.core import checks

    from taskward.contrib.django.options import POSTGRES_ENGINES

    if settings.DATABASES[alias].get("ENGINE") not in POSTGRES_ENGINES:
        return  # SQLite, MySQL…: no transaction to join (documented), nothing to warn about
    if backend.explicit_url:
        yield checks.Info(
            f"{where}: OPTIONS['url'] names the store, so it is not database {alias!r}: an "
            "enqueue inside atomic() is committed at once, whatever the transaction does",
            hint="Leave OPTIONS['url'] unset to keep the jobs in that database.",
            id="taskward.I001",
        )
        return
    try:
        import psycopg  # noqa: F401
    except ImportError:
        yield checks.Warning(
            f"{where}: database {alias!r} uses psycopg2, so an enqueue inside atomic() cannot "
            "join its transaction: the job is committed at once",
            hint="Install psycopg 3 (pip install 'taskward[postgres]'); Django prefers it.",
            id="taskward.W002",
        )
