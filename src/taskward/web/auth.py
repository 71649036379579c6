"""Who may read, search and change: bearer token or basic auth, read-only mode, CSRF.

Rules:

- Without :class:`AdminAuth`, everything is read-only: a mutation answers 403. Mutations
  always need credentials the user configured.
- With it, reads need credentials too unless ``public_reads`` (job args may be sensitive).
  Even then a free-text search needs credentials (:meth:`Access.search`): a search reads
  and re-encodes up to thousands of jobs, which an anonymous client must not be able to
  repeat at will. Every search also needs one of a few slots, or is refused with 429
  (``Admin``, :class:`taskward.web.api.SearchSlots`).
- A mutation authenticated by *basic auth* (which browsers resend on their own, even on a
  request another site makes them send) must also carry the CSRF token, in the
  ``X-CSRF-Token`` header or the ``csrf_token`` form field, and the CSRF cookie with the same
  value. The token is an HMAC-SHA256, under a server secret, of the basic-auth identity (the
  user name and a hash of the password): the server computes it, so a cookie planted by a
  sibling host or a plain-HTTP page never makes a token valid, and a changed password or
  another secret voids every token given before. The cookie (``SameSite=Strict``, HttpOnly,
  ``__Host-`` over HTTPS) is the second half: a cross-site request never carries it, so even
  a leaked token cannot be replayed from another site.
- A bearer token is never sent by a browser on its own, so it needs no CSRF token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Literal

from fastapi import HTTPException, Request, Response

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "CSRF_HOST_COOKIE",
    "Access",
    "AdminAuth",
    "Scheme",
    "csrf_cookie_name",
]

CSRF_COOKIE = "taskward_csrf"
"""The CSRF cookie's name over plain HTTP (a ``__Host-`` cookie needs ``Secure``)."""
CSRF_HOST_COOKIE = "__Host-" + CSRF_COOKIE
"""The CSRF cookie's name over HTTPS: the browser refuses it with a Domain, another Path or
without Secure, so no sibling host and no plain-HTTP page can set or shadow it."""
CSRF_HEADER = "X-CSRF-Token"
"""The request header that carries the CSRF token (htmx sends it from ``hx-headers``)."""
CSRF_FIELD = "csrf_token"
"""The form field that carries the CSRF token (the dashboard's plain form POSTs)."""
_CSRF_CONTEXT = b"taskward csrf v1"  # versions the message, so a new format voids old tokens

Scheme = Literal["bearer", "basic"]
"""How a request authenticated."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminAuth:
    """Credentials for the admin API and dashboard: a bearer token, basic auth, or both.

    ``csrf_secret`` keys the CSRF tokens (see :mod:`taskward.web.auth`). Left out, each
    router's access policy draws a random one, so tokens die with the process: give the same
    secret (32 random bytes) to every process when several serve the dashboard behind one
    load balancer, or a form rendered by one is refused by another.
    """

    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    public_reads: bool = False
    csrf_secret: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.token is None and self.password is None:
            raise ValueError("AdminAuth needs a token or a password")
        if self.password is not None and not self.username:
            raise ValueError("basic auth needs a username with its password")
        if self.csrf_secret is not None and len(self.csrf_secret) < 16:
            raise ValueError("csrf_secret needs at least 16 bytes (use secrets.token_bytes(32))")

    def scheme(self, request: Request) -> Scheme | None:
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

    def basic_identity(self) -> bytes | None:
        """What a CSRF token is bound to: the user name and a hash of the password.

        Only a hash of the password enters the message, so the token's input never holds the
        password itself; changing the password changes the identity and voids old tokens.
        """
        if self.password is None or self.username is None:
            return None
        digest = hashlib.sha256(self.password.encode()).digest()
        return self.username.encode() + b"\x00" + digest


def csrf_cookie_name(request: Request) -> str:
    """The CSRF cookie's name for this request: ``__Host-`` prefixed over HTTPS.

    Behind a proxy that ends TLS, the app sees HTTPS only if the server trusts the proxy's
    headers (uvicorn ``--proxy-headers``); otherwise the plain name is used, still bound to
    the credentials, only without the ``__Host-`` guarantees.
    """
    return CSRF_HOST_COOKIE if request.url.scheme == "https" else CSRF_COOKIE


class Access:
    """The access policy of one router: FastAPI dependencies for reading and for changing."""

    def __init__(self, auth: AdminAuth | None, *, read_only: bool) -> None:
        self.auth = auth
        self.read_only = read_only
        secret = auth.csrf_secret if auth is not None else None
        # Random per policy unless given: never derived from the credentials alone, or anyone
        # who knows the (possibly default) password could compute tokens.
        self._csrf_key = secret if secret is not None else secrets.token_bytes(32)

    def sign_message(self, text: str) -> str:
        """A tag proving that this server wrote ``text`` (a flash message in a redirect)."""
        return hmac.new(self._csrf_key, b"flash\0" + text.encode(), "sha256").hexdigest()[:32]

    def message(self, request: Request) -> str | None:
        """The flash message of this request if this server signed it, else None.

        Unsigned, ``?flash=`` would show any text on the admin origin ("session expired, sign
        in at evil.example").
        """
        text, tag = request.query_params.get("flash"), request.query_params.get("flash_sig")
        if text is None or tag is None:
            return None
        return text if hmac.compare_digest(tag, self.sign_message(text)) else None

    @property
    def can_write(self) -> bool:
        """True if mutations are possible at all (auth configured and not read-only)."""
        return self.auth is not None and not self.read_only

    def scheme(self, request: Request) -> Scheme | None:
        """How this request authenticated ("bearer" or "basic"), or None."""
        return self.auth.scheme(request) if self.auth is not None else None

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

    def search(self, request: Request) -> None:
        """Allow a free-text search, or answer 401: with ``public_reads`` it needs credentials.

        A search costs thousands of jobs read and re-encoded; anonymous readers may list and
        filter (one indexed page) but not search. Without AdminAuth there is nobody to sign
        in, so searches stay open there and only the concurrency limit holds.
        """
        self._require_credentials(request)

    def sign_in(self, request: Request) -> None:
        """Answer 401 (a browser then asks for the password) unless the request has credentials.

        With ``public_reads`` a browser is never challenged, so it never sends the basic-auth
        password; the dashboard's "sign in" link calls this to make it.
        """
        self._require_credentials(request)

    def _require_credentials(self, request: Request) -> None:
        if self.auth is not None and self.auth.scheme(request) is None:
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
        if scheme == "basic" and not await self._csrf_ok(request):
            raise HTTPException(403, "missing or wrong CSRF token")

    def csrf_token(self, request: Request) -> str | None:
        """The CSRF token for the basic-auth credentials this request carries, else None.

        Computed from the server secret and the identity, never taken from the request: a
        page shows this value, not the cookie it was sent. Bearer and anonymous requests get
        None (a bearer change needs no token; an anonymous one is refused anyway).
        """
        if self.auth is None or self.auth.scheme(request) != "basic":
            return None
        return self._token_for_basic()

    def _token_for_basic(self) -> str | None:
        identity = self.auth.basic_identity() if self.auth is not None else None
        if identity is None:
            return None
        message = _CSRF_CONTEXT + b"\x00" + identity
        return hmac.new(self._csrf_key, message, hashlib.sha256).hexdigest()

    def set_csrf_cookie(self, request: Request, response: Response, token: str) -> None:
        """Give the browser the cookie half of the pair, unless it already holds this token.

        HttpOnly (scripts read the token from the page, never the cookie), SameSite=Strict
        (no cross-site request carries it), Path=/ with no Domain, and ``__Host-`` plus
        Secure over HTTPS.
        """
        name = csrf_cookie_name(request)
        held = request.cookies.get(name, "")
        if hmac.compare_digest(held.encode(), token.encode()):
            return
        secure = name == CSRF_HOST_COOKIE
        response.set_cookie(name, token, httponly=True, samesite="strict", secure=secure, path="/")

    async def _csrf_ok(self, request: Request) -> bool:
        """True if the request carries the token for its identity, both sent and as cookie."""
        expected = self._token_for_basic()
        cookie = request.cookies.get(csrf_cookie_name(request))
        sent = await _sent_token(request)
        if expected is None or cookie is None or sent is None:
            return False
        # Both compared to the computed token (never to each other), in constant time.
        sent_ok = hmac.compare_digest(sent.encode(), expected.encode())
        cookie_ok = hmac.compare_digest(cookie.encode(), expected.encode())
        return sent_ok and cookie_ok


async def _sent_token(request: Request) -> str | None:
    """The token from the header, or from the form field of a form POST."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    return sent
