"""HTTP POST within one deadline, with the stdlib's ``http.client``: the webhook's transport.

A socket timeout bounds each read, so a server that sends a byte just inside it holds a
connection forever; here every socket operation gets the time left before one deadline, which
bounds the whole exchange (connect, TLS handshake, send, the answer's status line, headers and
up to :data:`MAX_RESPONSE_BYTES` of body). Redirects are never followed (http.client does
not), and proxy environment variables are not read.
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_RESPONSE_BYTES", "Target"]

MAX_RESPONSE_BYTES = 64 * 1024
"""How much of an answer's body is read; the rest is never fetched."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Where a webhook goes, parsed once; ``str()`` is the URL as logs show it."""

    host: str
    port: int
    path: str  # with the query: the request target
    shown: str
    context: ssl.SSLContext | None  # None: plain HTTP

    @classmethod
    def parse(cls, url: str) -> Target:
        """Parse and check ``url`` (http or https, a host, no credentials); raise ValueError."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"webhook_url must be an http(s) URL, got {url!r}")
        if not parts.hostname:
            raise ValueError(f"webhook_url has no host: {url!r}")
        if parts.username is not None or parts.password is not None:
            raise ValueError("webhook_url must not hold credentials: pass them in headers=")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ValueError(f"webhook_url has an invalid port: {url!r}") from None
        tls = parts.scheme == "https"
        # A token often rides in the path (/services/T0/B0/XXXX) or the query (?sig=…):
        # logs show the scheme, host and port only.
        hidden = parts.path not in ("", "/") or parts.query
        shown = parts._replace(path="/***" if hidden else parts.path, query="", fragment="")
        return cls(
            host=parts.hostname,
            port=port,
            path=(parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
            shown=urllib.parse.urlunsplit(shown),
            context=ssl.create_default_context() if tls else None,
        )

    def __str__(self) -> str:
        return self.shown

    def post(self, body: bytes, headers: Mapping[str, str], timeout: float) -> tuple[int, str]:
        """POST ``body``; the answer's status and reason, all within ``timeout`` seconds."""
        connection = _DeadlineConnection(self, time.monotonic() + timeout)
        try:
            connection.request("POST", self.path, body=body, headers=dict(headers))
            # http.client never follows a redirect: a 3xx is just a status here.
            response = connection.getresponse()
            response.read(MAX_RESPONSE_BYTES)
            return response.status, response.reason
        finally:
            connection.release()


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the delivery's deadline passed")
    return left


class _DeadlineConnection(http.client.HTTPConnection):
    """An HTTP(S) connection whose every socket operation ends by one deadline.

    A socket timeout bounds each read, so a server sending a byte just inside it would hold
    the connection forever; setting the timeout to the time left before each operation turns
    it into a deadline for the whole exchange, including http.client's line-by-line reads.
    """

    def __init__(self, target: Target, deadline: float) -> None:
        super().__init__(target.host, target.port)
        self._target, self._deadline = target, deadline
        self._real: socket.socket | None = None

    def release(self) -> None:
        """Close the connection and its socket, which close() leaves to the response."""
        self.close()
        if self._real is not None:
            self._real.close()
            self._real = None

    def connect(self) -> None:
        raw = _open_socket(self._target.host, self._target.port, self._deadline)
        try:
            sock: socket.socket = raw
            if self._target.context is not None:
                # The handshake is one call, bounded as a whole by the socket's timeout.
                raw.settimeout(_remaining(self._deadline))
                sock = self._target.context.wrap_socket(raw, server_hostname=self._target.host)
        except BaseException:
            raw.close()
            raise
        self._real = sock
        # http.client only calls sendall(), makefile() and close() on its socket.
        self.sock = _DeadlineSocket(sock, self._deadline)  # typed socket | Any


def _open_socket(host: str, port: int, deadline: float) -> socket.socket:
    """Connect to the first address of ``host`` that answers, each try within the deadline."""
    last: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_remaining(deadline))
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
            if isinstance(exc, TimeoutError):
                break
    raise last


class _DeadlineSocket:
    """The three socket methods http.client uses, each bounded by the deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock, self._deadline = sock, deadline

    def sendall(self, data: bytes) -> None:
        # send() in a loop, not sendall(): SSLSocket.sendall applies the timeout per chunk.
        view = memoryview(data)
        while view:
            self._sock.settimeout(_remaining(self._deadline))
            view = view[self._sock.send(view) :]

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))

    def close(self) -> None:
        # http.client closes its socket as soon as it knows the server will, before the body
        # is read (a real socket stays open while a makefile() reader lives): release() does.
        pass


class _DeadlineReader(io.RawIOBase):
    """Reads from a socket, its timeout set to the time left before each read."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock, self._deadline = sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(_remaining(self._deadline))
        return self._sock.recv_into(buffer)
