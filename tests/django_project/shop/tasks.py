"""The shop's tasks, written against Django's API only (``@task``, ``TaskContext``)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

try:
    from django.tasks import task
except ImportError:  # Django < 6: the backport
    from django_tasks import task  # type: ignore[no-redef]

from shop.models import Order


class CustomError(Exception):
    """Raised on purpose by ``fail``."""


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


@task(queue_name="emails")
def send_confirmation(order_id: int) -> str:
    order = Order.objects.get(pk=order_id)
    order.confirmed = True
    order.save(update_fields=["confirmed"])
    return order.email


@task
async def asend_confirmation(order_id: int) -> str:
    order = await Order.objects.aget(pk=order_id)
    order.confirmed = True
    await order.asave(update_fields=["confirmed"])
    return order.email


@task
def fail(message: str = "failed on purpose") -> None:
    raise CustomError(message)


@task
def fail_builtin() -> None:
    raise ValueError("bad value")


@task(takes_context=True)
def with_context(context: Any, n: int) -> dict[str, Any]:
    return {"attempt": context.attempt, "id": context.task_result.id, "n": n}


@task(takes_context=True, backend="retrying", queue_name="retries")
def flaky(context: Any, order_id: int) -> int:
    """Fails on its first two attempts, then succeeds: counts attempts on the order."""
    Order.objects.filter(pk=order_id).update(attempts=context.attempt)
    if context.attempt < 3:
        raise CustomError(f"attempt {context.attempt}")
    return context.attempt


@task(backend="retrying", queue_name="retries")
def always_fails() -> None:
    raise CustomError("never works")


@task
def returns_tuple() -> tuple[int, int]:
    return (1, 2)


@task
def returns_unserializable() -> object:
    return object()


@task
async def sleep_then_return(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@task
def record_order(order_id: int) -> int:
    Order.objects.filter(pk=order_id).update(attempts=1)
    return order_id


@task(takes_context=True, backend="retrying", queue_name="retries")
def hangs_on_first_attempt(context: Any, marker: str) -> int:
    """Hangs on its first attempt (its worker is killed meanwhile), returns on the next."""
    if context.attempt == 1:
        Path(marker).write_text("started")
        time.sleep(120)
    return int(context.attempt)
