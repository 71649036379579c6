"""Security headers on every admin response: a strict CSP, no framing, no sniffing, no referrer.

The dashboard needs nothing but its own files: htmx, ``dashboard.js`` and ``style.css``, all
served from the package. So the Content-Security-Policy allows scripts and styles from the
app's own origin only, with no inline script, no ``eval`` and no inline style; a payload that
slipped past autoescaping could still not run. Framing is refused twice (``frame-ancestors``
for current browsers, ``X-Frame-Options`` for old ones) so no other site can overlay the
dashboard's buttons (clickjacking).

Two ways in: :class:`SecurityHeadersMiddleware` wraps a whole app (``create_app`` uses it, so
404s for unknown paths and the health and metrics answers carry the headers too), and
:func:`secured` wraps each route of the admin routers (their route class), so the routers keep
their headers, errors included, when mounted into an application without the middleware.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Mapping, MutableMapping
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "DOCS_CONTENT_SECURITY_POLICY",
    "SECURITY_HEADERS",
    "SecurityHeadersMiddleware",
    "add_security_headers",
    "secured",
]

RouteHandler = Callable[[Request], Coroutine[Any, Any, Response]]
"""What ``APIRoute.get_route_handler`` returns: a request in, a response out."""

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        # data: only for the empty favicon the pages declare (no request for /favicon.ico).
        "img-src 'self' data:",
        "connect-src 'self'",  # htmx polls and boosted navigation
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
"""The policy of every admin response: own scripts and styles only, nothing inline."""

DOCS_CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        # FastAPI's Swagger UI and ReDoc pages load their bundles from jsDelivr and start them
        # with an inline script; only these opt-in pages get this looser policy.
        "script-src 'self' https://cdn.jsdelivr.net 'unsafe-inline'",
        "style-src 'self' https://cdn.jsdelivr.net https://fonts.googleapis.com 'unsafe-inline'",
        "font-src https://fonts.gstatic.com",
        "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly",
        "connect-src 'self'",
        "worker-src blob:",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
"""The policy of the opt-in ``/docs`` and ``/redoc`` pages (scripts from a CDN)."""

SECURITY_HEADERS: Mapping[str, str] = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}
"""Every header and its value, as set on admin responses."""


def add_security_headers(headers: MutableHeaders | MutableMapping[str, str]) -> None:
    """Add every security header that ``headers`` does not set already.

    A header already set wins: a route that needs another policy (the opt-in docs) sets it.
    """
    present = {name.lower() for name in headers}
    for name, value in SECURITY_HEADERS.items():
        if name not in present:
            headers[name] = value


class SecurityHeadersMiddleware:
    """ASGI middleware: the security headers on every HTTP response of the wrapped app.

    ``policies`` maps a path (as routed, below any mount prefix) to its own
    Content-Security-Policy; every other path gets :data:`CONTENT_SECURITY_POLICY`.
    Written as plain ASGI, not ``BaseHTTPMiddleware``, so streamed bodies pass untouched.
    """

    def __init__(self, app: ASGIApp, *, policies: Mapping[str, str] | None = None) -> None:
        self.app = app
        self.policies = dict(policies or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app, adding the headers to its response start message."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.policies.get(_routed_path(scope))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if policy is not None:
                    headers["content-security-policy"] = policy
                add_security_headers(headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _routed_path(scope: Scope) -> str:
    """The request path below the app's mount prefix (Starlette keeps the full path)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


def secured(handler: RouteHandler) -> RouteHandler:
    """Wrap a route handler so its answers, errors included, carry the security headers.

    An ``HTTPException`` (401, 403, 404…) gets them in its headers, which the app's handler
    copies into the error response; a validation error (422) is rendered here by the app's
    own handler for it, then given the headers.
    """

    async def with_headers(request: Request) -> Response:
        try:
            response = await handler(request)
        except HTTPException as exc:
            exc.headers = {**(exc.headers or {})}
            add_security_headers(exc.headers)
            raise
        except RequestValidationError as exc:
            response = await _render_validation_error(request, exc)
        add_security_headers(response.headers)
        return response

    return with_headers


async def _render_validation_error(request: Request, exc: RequestValidationError) -> Response:
    """The app's own 422 answer (a host application may have its own handler)."""
    handlers = getattr(request.app, "exception_handlers", {})
    render = handlers.get(RequestValidationError, request_validation_exception_handler)
    answer = render(request, exc)
    response: Response = await answer if inspect.isawaitable(answer) else answer
    return response
