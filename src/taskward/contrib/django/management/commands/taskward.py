"""``python manage.py taskward COMMAND …``: any taskward command on a ``TASKS`` alias's store.

``manage.py taskward jobs --state failed``, ``manage.py taskward dashboard``,
``manage.py taskward retry 42``…: the CLI's commands with ``--app`` set to the manager of
``TASKS[--backend]`` (default ``default``), so they reach the store the project configured.
"""

from __future__ import annotations

from taskward.contrib.django.management.commands._forwarding import ForwardingCommand


class Command(ForwardingCommand):
    """Run a taskward command on the store of ``TASKS[--backend]``."""

    help = "Run a taskward command (jobs, stats, dashboard, retry…) on TASKS[--backend]'s store."
