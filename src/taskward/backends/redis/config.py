"""What a ``redis://`` URL asks for: where to connect, and taskward's own parameters.

taskward's query parameters (``prefix``, ``pool_size``, ``cluster``, ``check_policy``) are
taken out of the URL before connecting; all others (``password``, ``ssl_cert_reqs``…) go to
redis-py. ``rediss://`` connects with TLS and ``unix:///path/redis.sock?db=0`` through a
socket. This module imports no driver.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from taskward.errors import InvalidOptions

__all__ = ["OWN_PARAMS", "PREFIX_RE", "RedisConfig", "parse_redis_url"]

PREFIX_RE: Final = re.compile(r"[A-Za-z0-9_.-]{1,48}")
OWN_PARAMS: Final = frozenset({"prefix", "pool_size", "cluster", "check_policy"})
NO_RETRIES: Final = frozenset({"retry_on_timeout", "retry_on_error"})
SCHEMES: Final = frozenset({"redis", "rediss", "unix"})


def _bool(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise InvalidOptions(f"invalid redis URL parameter {name}={value!r}: use true or false")


def parse_redis_url(url: str) -> tuple[str, dict[str, str]]:
    """Split ``url`` into the URL redis-py connects to and taskward's own parameters."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        raise InvalidOptions(
            f"invalid Redis URL {_without_password(url)!r}: use redis://host:port/db, "
            "rediss:// (TLS) or unix:///path/to/redis.sock"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    refused = sorted({k for k, _ in query if k in NO_RETRIES})
    if refused:
        raise InvalidOptions(
            f"the redis URL parameter {refused[0]} is refused: a script re-sent after a lost "
            "reply would run twice (an enqueue stored twice); taskward retries what is safe"
        )
    if parts.scheme.lower() != "unix" and not re.fullmatch(r"/?|/-?\d+", parts.path):
        raise InvalidOptions(
            f"invalid Redis URL {_without_password(url)!r}: the path is the database number, "
            "e.g. redis://host:6379/0"
        )
    own = {k: v for k, v in query if k in OWN_PARAMS}
    rest = urlencode([(k, v) for k, v in query if k not in OWN_PARAMS])
    # Written out, not urlunsplit: that drops the "//" of unix:///path (no host part).
    client_url = f"{parts.scheme.lower()}://{parts.netloc}{parts.path}"
    return (f"{client_url}?{rest}" if rest else client_url), own


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisConfig:
    """One backend's settings, read from its URL and checked (:meth:`from_url`).

    ``prefix`` names the store: every key is ``{prefix}:…``, so several applications share
    one server, and the braces (a Redis Cluster hash tag) keep one store's keys in one slot,
    which every script needs (see docs/DESIGN.md, "Redis data layout").
    """

    client_url: str
    prefix: str = "taskward"
    pool_size: int = 20
    cluster: bool = False
    check_policy: bool = True

    @classmethod
    def from_url(cls, url: str) -> RedisConfig:
        """Parse and check ``url``; raise :class:`InvalidOptions` on a bad parameter."""
        client_url, own = parse_redis_url(url)
        prefix = own.get("prefix", "taskward")
        if not PREFIX_RE.fullmatch(prefix):
            raise InvalidOptions(
                f"invalid prefix {prefix!r}: use 1-48 characters from [A-Za-z0-9_.-]"
            )
        raw_size = own.get("pool_size", "20")
        try:
            pool_size = int(raw_size)
        except ValueError:
            pool_size = 0
        if pool_size < 2:
            raise InvalidOptions(f"invalid redis URL parameter pool_size={raw_size!r}: an int >= 2")
        cluster = _bool("cluster", own.get("cluster", "false"))
        if cluster and urlsplit(client_url).scheme == "unix":
            raise InvalidOptions("a Redis Cluster is reached over TCP: use redis:// or rediss://")
        return cls(
            client_url=client_url,
            prefix=prefix,
            pool_size=pool_size,
            cluster=cluster,
            check_policy=_bool("check_policy", own.get("check_policy", "true")),
        )

    @property
    def base(self) -> str:
        """The start of every key of this store: the prefix as a hash tag."""
        return "{" + self.prefix + "}"

    @property
    def safe_url(self) -> str:
        """The client URL without its password or query, for messages."""
        parts = urlsplit(self.client_url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
