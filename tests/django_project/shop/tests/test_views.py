"""Views that enqueue: a sync one in a transaction, an async one with ``aenqueue``."""

from __future__ import annotations

from django.test import TransactionTestCase

from shop.models import Order
from shop.tasks import add, asend_confirmation
from shop.tests.helpers import burst
from taskward.contrib.django.compat import TaskResultDoesNotExist, TaskResultStatus


class AsyncViewTests(TransactionTestCase):
    async def test_an_async_view_enqueues_natively(self) -> None:
        response = await self.async_client.post("/orders/async/")
        self.assertEqual(response.status_code, 200)
        body = response.json()
        result = await asend_confirmation.aget_result(body["result"])
        self.assertEqual(result.status, TaskResultStatus.READY)
        self.assertEqual((await add.aget_result(body["add"])).args, [2, 3])

    def test_the_async_task_runs_and_uses_the_async_orm(self) -> None:
        order = Order.objects.create(email="x@example.com")
        result = asend_confirmation.enqueue(order.id)
        burst()
        result.refresh()
        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)
        self.assertEqual(result.return_value, "x@example.com")
        order.refresh_from_db()
        self.assertTrue(order.confirmed)

    def test_the_result_view(self) -> None:
        response = self.client.post("/orders/", {"email": "r@example.com"})
        result_id = response.json()["result"]
        self.assertEqual(self.client.get(f"/results/{result_id}/").json(), {"status": "READY"})
        with self.assertRaises(TaskResultDoesNotExist):  # the view does not catch it
            self.client.get("/results/999999999/")
