"""What every dashboard page shares: templates, rendering, error pages and redirects.

The template environment, rendering for one viewer, the error pages and the redirect with a
signed message.

Everything is rendered on the server with autoescaping on (job args and error text are
untrusted). Something that does not exist (a job, a workflow, a page) answers a 404 page in
the same style, and a bad filter or form a 400 page, each with a way back: never the API's
JSON.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from fastapi import Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.exceptions import HTTPException as StarletteHTTPException

from taskward.web import formatting
from taskward.web.admin import Admin
from taskward.web.guard import GuardedRoute
from taskward.web.headers import RouteHandler

__all__ = ["NO_PAGE", "Pages", "back", "create_not_found_handler", "environment", "page_route"]

NO_PAGE = "there is no dashboard page at this address"

ERROR_TITLES = {400: "Bad request", 404: "Not found", 503: "Store unavailable"}
"""The statuses a dashboard page answers with its error page, and each page's title."""


def environment() -> Environment:
    """The dashboard's Jinja environment: autoescaping everywhere, strict about names."""
    env = Environment(
        loader=PackageLoader("taskward.web", "templates"),
        autoescape=True,  # every template, whatever its extension: job data is untrusted
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        when=formatting.when,
        seconds=formatting.seconds,
        args_text=formatting.args_text,
        number=formatting.number,
        age=formatting.age,
        relative=formatting.relative,
    )
    return env


class Pages:
    """Renders templates for one request (CSRF token and cookie, URL helper, access flags)."""

    def __init__(self, admin: Admin, env: Environment) -> None:
        self.admin = admin
        self.env = env

    def render(
        self, request: Request, template: str, *, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        """The page ``template`` for this request's viewer (its buttons, token and message)."""
        access = self.admin.access
        # Computed from the credentials, never copied from the request's cookie.
        csrf = access.csrf_token(request)
        signed_in = access.scheme(request) is not None

        def url(route: str, /, **params: Any) -> str:
            return request.url_for(route, **params).path

        html = self.env.get_template(template).render(
            url=url,
            csrf=csrf or "",
            # Buttons only for a signed-in viewer: an anonymous one (public reads) would be
            # refused, so the page offers "sign in" instead.
            can_write=access.can_write and signed_in,
            sign_in=access.can_write and not signed_in,
            flash=access.message(request),
            nav=context.pop("nav", ""),
            **context,
        )
        response = HTMLResponse(
            html, status_code=status_code, headers={"cache-control": "no-store"}
        )
        if csrf is not None:
            access.set_csrf_cookie(request, response, csrf)
        return response

    def error(self, request: Request, status: int, message: str) -> HTMLResponse:
        """The error page: what went wrong, and a link back to where one can look."""
        route = getattr(request.scope.get("route"), "name", None) or ""
        if "dead" in route:
            back_to, back_label = "dashboard_dead", "the dead letters"
        elif "schedule" in route:
            back_to, back_label = "dashboard_schedules", "the schedules"
        elif "job" in route or "workflow" in route:
            back_to, back_label = "dashboard_jobs", "the job list"
        else:
            back_to, back_label = "dashboard", "the overview"
        return self.render(
            request,
            "error.html",
            status_code=status,
            title=ERROR_TITLES.get(status, "Error"),
            message=message,
            back=back_to,
            back_label=back_label,
        )

    def not_found(self, request: Request, message: str) -> HTMLResponse:
        """The 404 page (see :meth:`error`)."""
        return self.error(request, 404, message)

    def pages_for_errors(self, handler: RouteHandler) -> RouteHandler:
        """Wrap a dashboard route so that its 400, 404 and 503 answer a page, not JSON.

        A path id that no store could hold (``/dashboard/jobs/abc``) is a 404 too: on the
        dashboard, path parameters are the only input FastAPI validates (forms and query
        strings are read by the routes), so a validation error means "no such thing".
        """

        async def with_pages(request: Request) -> Response:
            try:
                return await handler(request)
            except StarletteHTTPException as exc:  # FastAPI's too, and a form parse's 400
                if exc.status_code not in ERROR_TITLES:
                    raise
                status = exc.status_code
                message = str(exc.detail)
                if status == 404 and exc.detail == "Not Found":
                    message = NO_PAGE
            except RequestValidationError:
                if request.method not in ("GET", "HEAD"):
                    raise
                status, message = 404, "nothing has that id: ids are whole numbers from 1"
            return self.error(request, status, message)

        return with_pages


def page_route(pages: Pages) -> type[GuardedRoute]:
    """The route class of one dashboard router: guarded, and answering errors with a page."""

    class PageRoute(GuardedRoute):
        def answer_errors(self, handler: RouteHandler) -> RouteHandler:
            return pages.pages_for_errors(handler)

    return PageRoute


def create_not_found_handler(
    admin: Admin,
) -> Callable[[Request, Exception], Awaitable[Response]]:
    """The app's 404 handler: the dashboard's page below ``/dashboard``, JSON elsewhere.

    The dashboard's routes answer their own 404s (an unknown job); this one answers an
    address no route serves (``/dashboard/nope``). ``create_app`` installs it; an application
    mounting the routers itself may too: ``app.add_exception_handler(404, handler)``.
    """
    pages = Pages(admin, environment())

    async def not_found(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, StarletteHTTPException):  # installed for the status 404 only
            raise exc
        dashboard = request.url_for("dashboard").path  # with the prefix the app is mounted at
        path = request.scope.get("path", "")
        if path == dashboard or path.startswith(dashboard + "/"):
            return pages.not_found(request, NO_PAGE)
        return await http_exception_handler(request, exc)

    return not_found


def back(admin: Admin, request: Request, name: str, flash: str, **params: Any) -> RedirectResponse:
    """303 to a dashboard page (a name, never a URL from the request) with a signed message."""
    target = request.url_for(name, **params).path
    query = urlencode({"flash": flash, "flash_sig": admin.access.sign_message(flash)})
    return RedirectResponse(f"{target}?{query}", status_code=303)
