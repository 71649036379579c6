"""A sync web app (WSGI, as Django and Flask are) that enqueues durable jobs from its views.

Each request runs on a thread of the server and calls ``Task.enqueue_sync``: on SQLite and
PostgreSQL the insert happens on that thread (a small pool of connections, no event loop),
and the job survives a crash of the web process. Run it (standard library only)::

    TASKWARD_URL=sqlite:///shop.db python examples/wsgi_app.py        # serves :8000
    curl -X POST localhost:8000/orders/42                              # -> 202, job id
    taskward worker --app examples.wsgi_app:tw                         # runs the jobs

Importing this module starts nothing, so tests can import it and drive ``app``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from taskward import TaskManager

tw = TaskManager(os.environ.get("TASKWARD_URL", "sqlite:///shop.db"))


@tw.task(name="shop.send_receipt", queue="emails", max_attempts=5)
def send_receipt(order_id: int) -> str:
    """Pretend to email the receipt of ``order_id`` (a real app would call its mailer)."""
    return f"receipt for order {order_id} sent"


StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """``POST /orders/<id>`` enqueues the order's receipt; anything else is a 404."""
    parts = environ.get("PATH_INFO", "").strip("/").split("/")
    if environ.get("REQUEST_METHOD") == "POST" and len(parts) == 2 and parts[0] == "orders":
        if not parts[1].isdigit():
            return _reply(start_response, "400 Bad Request", {"error": "order id must be digits"})
        job = send_receipt.enqueue_sync(int(parts[1]))
        return _reply(start_response, "202 Accepted", {"job_id": job.id, "state": job.state})
    return _reply(start_response, "404 Not Found", {"error": "POST /orders/<id>"})


def _reply(start_response: StartResponse, status: str, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json")])
    return [data]


if __name__ == "__main__":  # pragma: no cover - manual run
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIServer, make_server

    class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
        """One thread per request, like a threaded production server."""

    with make_server("127.0.0.1", 8000, app, server_class=ThreadingWSGIServer) as server:
        print("serving on http://127.0.0.1:8000 (POST /orders/<id>)")
        server.serve_forever()
