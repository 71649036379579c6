"""``python manage.py taskward_worker``: ``taskward worker`` for a Django project's ``TASKS``.

Takes every option of ``taskward worker`` (``--burst``, ``-q NAME=CONCURRENCY``,
``--processes N``…) plus ``--backend ALIAS`` (default ``default``); without ``-q`` it serves
the alias's ``QUEUES``.
"""

from __future__ import annotations

from taskward.contrib.django.management.commands._forwarding import ForwardingCommand


class Command(ForwardingCommand):
    """Run a taskward worker for ``TASKS[--backend]`` (``--help``: the worker's options)."""

    help = "Run a taskward worker for TASKS[--backend] (options of `taskward worker`)."
    command = ("worker",)
