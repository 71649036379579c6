"""Who may read and who may change: bearer token or basic auth, read-only mode, CSRF.

Rules:

- Without :class:`AdminAuth`, everything is read-only: a mutation answers 403. Mutations
  always need credentials the user configured.
- With it, reads need credentials too unless ``public_reads`` (job args may be sensitive).
- A mutation authenticated by *basic auth* (which browsers resend on their own) must also
  carry the CSRF token: the ``X-CSRF-Token`` header or a ``csrf_token`` form field equal to
  the ``taskward_csrf`` cookie (double submit; the cookie is ``SameSite=Strict``). A bearer
  token is never sent by a browser on its own, so it needs no CSRF token.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass

from fastapi import HTTPException, Request, Response

__all__ = ["CSRF_COOKIE", "Access", "AdminAuth", "csrf_token", "set_csrf_cookie"]

CSRF_COOKIE = "taskward_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminAuth:
    """Credentials for the admin API and dashboard: a bearer token, basic auth, or both."""

    token: str | None = None
    username: str | None = None
    password: str | None = None
    public_reads: bool = False

    def __post_init__(self) -> None:
        if self.token is None and self.password is None:
            raise ValueError("AdminAuth needs a token or a password")
        if self.password is not None and not self.username:
            raise ValueError("basic auth needs a username with its password")

    def scheme(self, request: Request) -> str | None:
        """Return "bearer" or "basic" if the request carries valid credentials, else None."""
        header = request.headers.get("authorization", "")
        kind, _, value = header.partition(" ")
        if (
            kind.lower() == "bearer"
            and self.token is not None
            and secrets.compare_digest(value.strip().encode(), self.token.encode())
        ):
            return "bearer"
        if kind.lower() == "basic" and self.password is not None:
            try:
                user, _, password = base64.b64decode(value.strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            ok_user = secrets.compare_digest(user.encode(), (self.username or "").encode())
            ok_pass = secrets.compare_digest(password.encode(), self.password.encode())
            if ok_user and ok_pass:
                return "basic"
        return None

    def challenge(self) -> str:
        """The WWW-Authenticate header for a 401."""
        return 'Basic realm="taskward"' if self.password is not None else "Bearer"


class Access:
    """The access policy of one router: FastAPI dependencies for reading and for changing."""

    def __init__(self, auth: AdminAuth | None, *, read_only: bool) -> None:
        self.auth = auth
        self.read_only = read_only

    @property
    def can_write(self) -> bool:
        """True if mutations are possible at all (auth configured and not read-only)."""
        return self.auth is not None and not self.read_only

    def _unauthorized(self) -> HTTPException:
        assert self.auth is not None
        return HTTPException(
            401, "authentication required", headers={"WWW-Authenticate": self.auth.challenge()}
        )

    async def read(self, request: Request) -> None:
        """Dependency: allow reading, or answer 401."""
        auth = self.auth
        if auth is not None and not auth.public_reads and auth.scheme(request) is None:
            raise self._unauthorized()

    async def write(self, request: Request) -> None:
        """Dependency: allow a mutation, or answer 403 (not allowed here) / 401 (who are you)."""
        if self.read_only:
            raise HTTPException(403, "this admin interface is read-only")
        if self.auth is None:
            raise HTTPException(403, "mutations need credentials: configure AdminAuth")
        scheme = self.auth.scheme(request)
        if scheme is None:
            raise self._unauthorized()
        if scheme == "basic" and not await _csrf_ok(request):
            raise HTTPException(403, "missing or wrong CSRF token")


async def _csrf_ok(request: Request) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie:
        return False
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    return sent is not None and secrets.compare_digest(sent.encode(), cookie.encode())


def csrf_token(request: Request) -> tuple[str, bool]:
    """Return this browser's CSRF token, and True if it is new (its cookie must be set)."""
    token = request.cookies.get(CSRF_COOKIE)
    if token and len(token) <= 100:
        return token, False
    return secrets.token_urlsafe(32), True


def set_csrf_cookie(response: Response, token: str, *, secure: bool) -> None:
    """Set the CSRF cookie: HttpOnly (the page carries the token), SameSite=Strict."""
    response.set_cookie(
        CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/"
    )
