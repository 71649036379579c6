"""Request bodies: a size limit on every admin route, JSON only (and not too deep) on the API.

FastAPI reads and parses a whole body before any dependency runs, so the auth check cannot
protect the parser: an anonymous client could make the server buffer and decode megabytes.
:class:`GuardedRoute` checks the body first, in the route itself, so that wherever the routers
are mounted the limits hold (an application's middleware is not needed). For the same reason
it adds the security headers (:mod:`taskward.web.headers`) to every answer, refusals included.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from starlette.types import Message

from taskward.errors import NotSerializable
from taskward.serialize import dumps
from taskward.web.headers import RouteHandler, secured

__all__ = ["MAX_BODY_BYTES", "GuardedRoute", "JsonRoute"]

MAX_BODY_BYTES = 65_536
"""The largest request body an admin route reads (the biggest real one is a few hundred bytes)."""
JSON_TYPES = ("application/json",)


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, answering 413 as soon as it exceeds ``limit`` bytes (nothing buffered)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def check_json(body: bytes, content_type: str) -> None:
    """Refuse a body that is not JSON (415), not valid JSON, or nested deeper than MAX_DEPTH."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in JSON_TYPES:
        raise HTTPException(
            415, f"the admin API accepts application/json bodies only, not {media_type or 'none'}"
        )
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise HTTPException(400, "request body is not valid JSON") from None
    try:
        dumps(value, label="request body")  # the depth rule of stored values (MAX_DEPTH)
    except NotSerializable as exc:
        raise HTTPException(400, str(exc)) from None


class GuardedRoute(APIRoute):
    """An APIRoute whose body is read (and refused when too large) before FastAPI parses it.

    Every answer, the refusals included, carries the security headers.
    """

    json_only = False

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler with the body checks, and both with the security headers."""
        handler = super().get_route_handler()
        json_only = self.json_only

        async def guarded(request: Request) -> Response:
            body = await read_body(request, MAX_BODY_BYTES)
            if body and json_only:
                check_json(body, request.headers.get("content-type", ""))
            return await handler(_replay(request, body))

        return secured(self.answer_errors(guarded))

    def answer_errors(self, handler: RouteHandler) -> RouteHandler:
        """Turn some of the handler's errors into answers of the route's own (here: none).

        Inside the security headers, so whatever a subclass answers carries them too. The
        dashboard answers a 404 with an HTML page rather than the API's JSON.
        """
        return handler


class JsonRoute(GuardedRoute):
    """A GuardedRoute that also accepts only JSON bodies (the admin API)."""

    json_only = True


def _replay(request: Request, body: bytes) -> Request:
    """A request that hands FastAPI the body already read (the stream can be read once)."""

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)
