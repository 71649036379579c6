"""Views that create an order and enqueue its follow-up, sync and async."""

from __future__ import annotations

import json

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse

from shop.models import Order
from shop.tasks import add, asend_confirmation, send_confirmation


def create_order(request: HttpRequest) -> JsonResponse:
    """Create an order and enqueue its confirmation in one transaction."""
    with transaction.atomic():
        order = Order.objects.create(email=request.POST.get("email", "a@example.com"))
        result = send_confirmation.enqueue(order.id)
    return JsonResponse({"order": order.id, "result": result.id})


class Refused(Exception):
    """The view's own failure after the enqueue, which rolls the transaction back."""


def create_order_then_fail(request: HttpRequest) -> HttpResponse:
    """Enqueue inside a transaction that then rolls back: the response names the result id."""
    result_id = None
    try:
        with transaction.atomic():
            order = Order.objects.create(email="rolled@example.com")
            result_id = send_confirmation.enqueue(order.id).id
            raise Refused
    except Refused:
        pass
    return JsonResponse({"result": result_id}, status=409)


async def create_order_async(request: HttpRequest) -> JsonResponse:
    """An async view: the ORM's async API and ``aenqueue``."""
    order = await Order.objects.acreate(email="async@example.com")
    result = await asend_confirmation.aenqueue(order.id)
    total = await add.aenqueue(2, 3)
    return JsonResponse({"order": order.id, "result": result.id, "add": total.id})


def result(request: HttpRequest, result_id: str) -> HttpResponse:
    """The status of a task result, as an API of the app would show it."""
    from shop.tasks import send_confirmation

    found = send_confirmation.get_backend().get_result(result_id)
    return HttpResponse(json.dumps({"status": str(found.status)}), content_type="application/json")
