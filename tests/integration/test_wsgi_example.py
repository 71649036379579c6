"""examples/wsgi_app.py served by a real threaded WSGI server: views enqueue with enqueue_sync.

Every request runs on a thread of its own (``ThreadingMixIn``, as threaded production servers
do); the jobs they enqueue are stored once each and run by a worker afterwards.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from socketserver import ThreadingMixIn
from types import ModuleType
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from taskward import JobState
from tests_support.examples import loaded_example


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def example(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The example module, loaded fresh on this test's store."""
    monkeypatch.setenv("TASKWARD_URL", store_url)
    with loaded_example("wsgi_app.py") as module:
        try:
            yield module
        finally:
            module.tw.sync.shutdown()


def _post(base: str, path: str) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(base + path, method="POST", data=b"")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_threaded_views_enqueue_durable_jobs(example: ModuleType) -> None:
    server = make_server(
        "127.0.0.1", 0, example.app, server_class=_Server, handler_class=_QuietHandler
    )
    base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda n: _post(base, f"/orders/{n}"), range(1, 41)))
        assert _post(base, "/orders/abc") == (400, {"error": "order id must be digits"})
        assert _post(base, "/nowhere")[0] == 404
    finally:
        server.shutdown()
        server.server_close()
    assert {status for status, _ in answers} == {202}
    ids = [int(body["job_id"]) for _, body in answers]  # type: ignore[call-overload]
    assert len(set(ids)) == 40
    tw = example.tw
    assert tw.sync.drain(["emails"]).counts == {"completed": 40}
    for order, job_id in enumerate(ids, start=1):
        job = tw.sync.get_task_status(job_id)
        assert job.state is JobState.COMPLETED
        assert job.result == f"receipt for order {order} sent"
