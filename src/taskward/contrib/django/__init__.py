"""taskward as the backend of Django's tasks framework (``django.tasks`` and ``django_tasks``).

Settings::

    INSTALLED_APPS = [..., "taskward.contrib.django"]
    TASKS = {"default": {"BACKEND": "taskward.contrib.django.TaskwardBackend",
                         "QUEUES": ["default", "emails"],
                         "OPTIONS": {"default_max_attempts": 3}}}

Then ``python manage.py taskward_worker`` runs the tasks. See the README's Django section.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TaskwardBackend"]


def __getattr__(name: str) -> Any:
    # Imported lazily: INSTALLED_APPS loads this package before Django's apps are ready.
    if name == "TaskwardBackend":
        from taskward.contrib.django.backend import TaskwardBackend

        return TaskwardBackend
    raise AttributeError(name)
