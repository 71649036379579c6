"""Static audit for asyncio tasks that nobody keeps or supervises (``taskward audit``).

This package owns the audit. It finds every place that starts an asyncio task
(``asyncio.create_task``, ``ensure_future``, ``asyncio.Task``, ``loop.create_task`` and their
aliases) and follows the task to say what happens to it: **dangling** (not kept anywhere: it
can be garbage-collected mid-flight and its exception is lost), **unsupervised** (kept, but
nothing awaits it or reads its exception) or **fine** (awaited, gathered, in a ``TaskGroup``,
or given to :mod:`taskward.aio`). ``--fix`` rewrites the dangling calls that can be rewritten
without changing behaviour to :func:`taskward.aio.safe_create_task`.

The seams, one module each:

* detection: ``index`` (scopes, bindings and uses of one module), ``receivers`` (which calls
  start tasks: asyncio, its aliases, loops, task groups), ``detect`` (one module's findings);
* classification: ``fate`` (the kinds), ``classify`` (following a task through names,
  attributes, containers, calls and returns), ``expressions`` (one rule per enclosing node),
  ``lifetimes`` (how long a local lives), ``supervision`` (done callbacks, safe coroutines);
* fixing: ``plan`` (what may be rewritten, and why not), ``fix`` and ``imports``;
* running: ``scan`` (files and the process pool), ``config`` (``pyproject.toml``), ``cache``,
  ``output`` (text, JSON, SARIF, GitHub) and ``cli``.

Only the standard library is imported, so the audit runs without taskward's runtime
dependencies; the ``taskward.aio`` it recommends is named, never imported.
"""

from taskward.audit.cli import main
from taskward.audit.detect import scan_source
from taskward.audit.fix import fix_source
from taskward.audit.model import AUDIT_VERSION, AuditReport, Finding, Kind, ScanFailure
from taskward.audit.scan import DEFAULT_SKIP_DIRS, scan_paths

__all__ = [
    "AUDIT_VERSION",
    "DEFAULT_SKIP_DIRS",
    "AuditReport",
    "Finding",
    "Kind",
    "ScanFailure",
    "fix_source",
    "main",
    "scan_paths",
    "scan_source",
]
