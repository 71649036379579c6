"""Task functions for ``shop.tests.test_ported``: the cases of Django's own ``tests/tasks``
suite that ``shop.tasks`` has no counterpart for (written here, not copied).

Imported by the test module, so the worker that a test runs in-process knows them.
"""

from __future__ import annotations

from typing import Any

try:
    from django.tasks import TaskContext, task
except ImportError:  # Django < 6: the backport
    from django_tasks import TaskContext, task  # type: ignore[no-redef]

# What ``record`` ran, in order: (token, label). A test filters by its own token, so jobs
# left in the store by other tests do not disturb it.
RUN_ORDER: list[tuple[str, str]] = []


class PortedError(Exception):
    """A custom exception, raised by ``raise_custom``."""


@task
def noop(*args: Any, **kwargs: Any) -> None:
    return None


@task
async def anoop(*args: Any, **kwargs: Any) -> None:
    return None


@task
def meaning_of_life() -> int:
    return 42


@task
async def ameaning_of_life() -> int:
    return 42


@task
def raise_value_error() -> None:
    raise ValueError("This task failed due to ValueError")


@task
def raise_system_exit() -> None:
    raise SystemExit("This task failed due to SystemExit")


@task
def raise_nested_value_error() -> None:
    raise ValueError(ValueError("This task failed"))


@task
def raise_custom() -> None:
    raise PortedError("custom failure")


@task
async def araise_custom() -> None:
    raise PortedError("async custom failure")


@task
def return_lambda() -> Any:
    return lambda: True  # neither JSON nor anything else a result can hold


@task(takes_context=True)
def own_result_id(context: Any) -> str:
    return str(context.task_result.id)


@task(takes_context=True)
def context_attempt_is(context: Any, attempt: int) -> None:
    assert isinstance(context, TaskContext)
    assert context.attempt == attempt


@task(takes_context=True)
async def acontext_summary(context: Any) -> dict[str, Any]:
    result = context.task_result
    return {"attempt": context.attempt, "id": result.id, "status": str(result.status)}


@task
def record(token: str, label: str) -> str:
    RUN_ORDER.append((token, label))
    return label


@task(takes_context=True, backend="retrying", queue_name="retries")
def fail_first_attempt(context: Any) -> dict[str, Any]:
    """Fails on attempt 1; on attempt 2 reports what its context holds."""
    if context.attempt == 1:
        raise PortedError("first attempt fails")
    result = context.task_result
    return {
        "attempt": context.attempt,
        "worker_ids": len(result.worker_ids),
        "errors": [e.exception_class_path for e in result.errors],
    }


@task(backend="retrying", queue_name="retries")
def retrying_meaning_of_life() -> int:
    return 42
