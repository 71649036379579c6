"""The Django app ``taskward.contrib.django``: task discovery and ``manage.py taskward_worker``."""

from __future__ import annotations

from django.apps import AppConfig


class TaskwardConfig(AppConfig):  # type: ignore[misc]
    """Imports every installed app's ``tasks`` module once Django is ready.

    A worker runs only the tasks its process registered, and a Django task registers when
    its module is imported (``@task`` validates it with the backend). Importing each app's
    ``tasks`` module, as Celery's ``autodiscover_tasks`` does, gives the worker and the web
    processes the same tasks without a list to maintain.
    """

    name = "taskward.contrib.django"
    label = "taskward_django"
    verbose_name = "taskward"

    def ready(self) -> None:
        """Import ``<app>.tasks`` for every installed app that has one."""
        from django.utils.module_loading import autodiscover_modules

        autodiscover_modules("tasks")
