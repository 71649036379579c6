"""The dead-letter webhook against real HTTP servers on loopback.

Each server runs in a thread of this process on a random port and is stopped at the end of the
test. Nothing of urllib or http.client is mocked: what the notifier sends is what a server gets.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from taskward.jobs import Job, JobState
from taskward.observe.events import Event
from taskward.observe.notify import DeadLetterNotifier

LOGGER = "taskward.observe.notify"
AT = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
SECRET_HEADER = "Bearer webhook-s3cret"
POOL_THREAD = "taskward-webhook"


@dataclass
class Received:
    """One request as the server read it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    """A loopback HTTP server: what it received, and the signals tests wait on."""

    url: str
    stop: threading.Event
    requests: list[Received] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    in_flight: int = 0
    max_in_flight: int = 0

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)


Respond = Callable[[BaseHTTPRequestHandler, Server], None]


@contextmanager
def serve(respond: Respond) -> Iterator[Server]:
    """Run a server on 127.0.0.1 that records each request, then calls ``respond``."""
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def handle_one(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            got = Received(self.command, self.path, dict(self.headers), self.rfile.read(length))
            with server.changed:
                server.requests.append(got)
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
                server.changed.notify_all()
            try:
                respond(self, server)
            finally:
                with server.changed:
                    server.in_flight -= 1
                    server.changed.notify_all()

        do_GET = do_POST = do_PUT = handle_one

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server = Server(url=f"http://127.0.0.1:{httpd.server_port}/hook", stop=stop)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()  # responders that wait or trickle return at once
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def answer(status: int, **headers: str) -> Respond:
    def respond(handler: BaseHTTPRequestHandler, server: Server) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return respond


def trickle(data: bytes, every: float = 0.2) -> Respond:
    """Write ``data`` one byte at a time, until the client leaves or the test ends."""

    def respond(handler: BaseHTTPRequestHandler, server: Server) -> None:
        for byte in data:
            if server.stop.wait(every):
                return
            try:
                handler.wfile.write(bytes([byte]))
            except OSError:  # the notifier gave up and closed the connection
                return

    return respond


def dead_letter(job_id: int) -> Event:
    job = Job(
        id=job_id,
        task="billing.charge",
        queue="payments",
        args=["4111-1111-1111-1111"],
        kwargs={"cvv": "123"},
        state=JobState.FAILED,
        priority=0,
        attempt=3,
        max_attempts=3,
        scheduled_at=AT,
        inserted_at=AT,
    )
    return Event.for_job("job.failed", job, AT, state="failed", error="RuntimeError: declined")


def new_pool_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [
        t
        for t in threading.enumerate()
        if t not in before and t.name.startswith(POOL_THREAD) and t.is_alive()
    ]


def test_posts_the_documented_fields_and_headers() -> None:
    with serve(answer(204)) as server:
        notifier = DeadLetterNotifier(
            webhook_url=server.url, headers={"Authorization": SECRET_HEADER}
        )
        notifier(dead_letter(7))
        done = notifier.join(10)
        assert len(server.requests) == 1
        assert done is True
        notifier.close()
    (got,) = server.requests
    assert (got.method, got.path) == ("POST", "/hook")
    assert got.headers["Authorization"] == SECRET_HEADER
    assert got.headers["Content-Type"] == "application/json"
    body = json.loads(got.body)
    assert set(body) == {
        "event",
        "at",
        "job_id",
        "task",
        "queue",
        "state",
        "attempt",
        "max_attempts",
        "error",
    }
    assert body["job_id"] == 7
    assert body["error"] == "RuntimeError: declined"
    assert "4111" not in got.body.decode()
    assert "cvv" not in got.body.decode()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed(status: int, caplog: pytest.LogCaptureFixture) -> None:
    with (
        serve(answer(204)) as target,
        serve(answer(status, Location=target.url + "?stolen=1")) as redirector,
    ):
        notifier = DeadLetterNotifier(
            webhook_url=redirector.url, headers={"Authorization": SECRET_HEADER}
        )
        with caplog.at_level(logging.ERROR, logger=LOGGER):
            notifier(dead_letter(1))
            done = notifier.join(10)
        assert target.requests == []  # neither the payload nor the credential went there
        assert done is True
        notifier.close()
    assert len(redirector.requests) == 1
    assert redirector.requests[0].headers["Authorization"] == SECRET_HEADER
    (record,) = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.ERROR
    assert "failed for job 1" in record.getMessage()
    assert str(status) in record.getMessage()


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 2000, id="status-and-headers"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + b"a" * 2000, id="body"),
    ],
)
def test_a_trickling_server_is_abandoned_at_the_deadline(
    sent: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    timeout = 1.0
    with serve(trickle(sent)) as server:
        before = set(threading.enumerate())
        notifier = DeadLetterNotifier(webhook_url=server.url, timeout=timeout)
        with caplog.at_level(logging.ERROR, logger=LOGGER):
            started = time.monotonic()
            notifier(dead_letter(3))
            done = notifier.join(15)
            elapsed = time.monotonic() - started
        # Generous: a per-read timeout (the old behaviour) never fires against a byte every
        # 0.2 s, so the delivery would still be running when join gives up after 15 s.
        assert elapsed < timeout + 2.0
        assert done is True
        notifier.close(timeout=5)
        assert new_pool_threads(before) == []
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(messages) == 1
    assert "failed for job 3" in messages[0]


def test_a_response_body_is_read_up_to_a_cap(caplog: pytest.LogCaptureFixture) -> None:
    def endless(handler: BaseHTTPRequestHandler, server: Server) -> None:
        handler.send_response(200)
        handler.send_header("Connection", "close")
        handler.end_headers()
        chunk = b"x" * 8192
        while not server.stop.wait(0.01):
            try:
                handler.wfile.write(chunk)
            except OSError:
                return

    with serve(endless) as server:
        notifier = DeadLetterNotifier(webhook_url=server.url, timeout=60)
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            started = time.monotonic()
            notifier(dead_letter(4))
            done = notifier.join(15)
            elapsed = time.monotonic() - started
        # 64 KiB arrive in well under a second; reading until the end would never finish.
        assert elapsed < 5
        assert done is True
        notifier.close()
    assert [r for r in caplog.records if r.name == LOGGER] == []  # a 200 is a delivery


def test_the_log_shows_the_url_without_its_path_and_query(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with serve(answer(500)) as server:
        notifier = DeadLetterNotifier(webhook_url=server.url + "?sig=query-s3cret")
        with caplog.at_level(logging.ERROR, logger=LOGGER):
            notifier(dead_letter(5))
            done = notifier.join(10)
        assert server.requests[0].path == "/hook?sig=query-s3cret"
        assert "500" in caplog.text
        origin = server.url.removesuffix("/hook")
        assert f"{origin}/*** failed" in caplog.text
        assert "/hook" not in caplog.text  # a path may hold a token too (Slack's do)
        assert "query-s3cret" not in caplog.text
        assert done is True
        notifier.close()


def test_deliveries_are_bounded_and_overflow_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()

    def held(handler: BaseHTTPRequestHandler, server: Server) -> None:
        release.wait(10)
        answer(204)(handler, server)

    with serve(held) as server:
        before = set(threading.enumerate())
        notifier = DeadLetterNotifier(webhook_url=server.url, max_workers=2, max_pending=3)
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            notifier(dead_letter(1))
            notifier(dead_letter(2))
            assert server.wait_for(lambda: server.in_flight == 2)
            started = time.monotonic()
            for job_id in range(3, 11):  # 3 wait in the queue, 5 do not fit
                notifier(dead_letter(job_id))
            assert time.monotonic() - started < 1.0  # the caller never waits for a worker
            assert notifier.dropped == 5
            assert len(new_pool_threads(before)) == 2
            release.set()
            assert notifier.join(15)
        notifier.close(timeout=5)
        assert new_pool_threads(before) == []
    assert sorted(json.loads(r.body)["job_id"] for r in server.requests) == [1, 2, 3, 4, 5]
    assert server.max_in_flight == 2
    drops = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert len(drops) == 1  # one warning for a burst, not one per dropped delivery
    assert "dropped" in drops[0].getMessage()


def test_close_stops_the_pool_and_later_webhooks_are_dropped() -> None:
    letters: list[dict[str, Any]] = []
    with serve(answer(204)) as server:
        before = set(threading.enumerate())
        notifier = DeadLetterNotifier(webhook_url=server.url, callback=letters.append)
        notifier(dead_letter(1))
        assert notifier.join(10)
        assert len(new_pool_threads(before)) == 1
        notifier.close(timeout=5)
        assert new_pool_threads(before) == []
        notifier(dead_letter(2))
        notifier.close()  # idempotent
        assert new_pool_threads(before) == []
    assert [json.loads(r.body)["job_id"] for r in server.requests] == [1]
    assert notifier.dropped == 1
    assert [p["job_id"] for p in letters] == [1, 2]  # the callback does not depend on the pool


@pytest.mark.parametrize(
    "options",
    [
        {"webhook_url": "ftp://example.test/hook"},
        {"webhook_url": "http://user:pw@example.test/hook"},
        {"webhook_url": "http:///no-host"},
        {"webhook_url": "http://example.test/", "headers": {"X-A": "v\r\nX-Injected: 1"}},
        {"webhook_url": "http://example.test/", "timeout": 0},
        {"webhook_url": "http://example.test/", "max_workers": 0},
        {"webhook_url": "http://example.test/", "max_pending": 0},
    ],
)
def test_bad_options_are_refused_at_construction(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by option
        DeadLetterNotifier(**options)
