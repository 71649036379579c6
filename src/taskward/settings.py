"""Settings: one frozen value built from keyword arguments, then ``TASKWARD_*`` env vars.

Precedence: an explicit argument beats the environment, which beats the default. Every field
has an env twin named ``TASKWARD_<FIELD>`` (``TASKWARD_URL``, ``TASKWARD_DEFAULT_QUEUE``…).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from taskward.errors import InvalidOptions
from taskward.jobs import (
    validate_max_attempts,
    validate_priority,
    validate_queue_name,
    validate_seconds,
)

DEFAULT_URL = "sqlite:///./taskward.db"
ENV_PREFIX = "TASKWARD_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Configuration of a :class:`~taskward.TaskManager` (the spec's section 7)."""

    url: str = DEFAULT_URL
    """Backend URL: ``sqlite:///path``, ``memory://``, ``noop://``, ``postgresql://…``."""
    enabled: bool = True
    """False swaps the backend for ``noop://``: enqueues are accepted and dropped (logged)."""
    default_queue: str = "default"
    default_priority: int = 5
    default_max_attempts: int = 5
    default_retry_delay: float | None = None
    """Base seconds of the exponential backoff; None keeps the built-in curve."""
    default_timeout: float | None = None
    max_payload_bytes: int = 1_048_576
    retention_completed_days: float = 7
    retention_failed_days: float = 30
    lease_seconds: float = 30.0
    """How long a fetched job stays leased without a heartbeat before it is rescued."""
    poll_interval: float = 1.0
    """How often an idle worker looks for due jobs when nothing wakes it up."""
    shutdown_timeout: float = 30.0
    sqlite_synchronous: str = "FULL"
    migrate_on_start: bool = True
    node_name: str = ""
    task_modules: tuple[str, ...] = ()
    """Modules whose top-level functions workers may run by ``module:function`` name, besides
    the ``@task`` functions of the app (env: comma-separated)."""
    import_by_path: bool = False
    """Let workers import any ``module:function`` a job names. Off: only registered code runs
    (anyone who can write to the store would otherwise choose what every worker calls)."""
    encryption_keys: tuple[str, ...] = field(default=(), repr=False)
    """Keys (base64 of 32 bytes) for encryption at rest: the first seals, every one opens
    (rotation). Env: comma-separated. Never shown in a repr (``taskward.encryption``)."""
    encrypt_all: bool = False
    """Seal every job's payload, not only those of tasks marked ``encrypted=True``."""

    def __post_init__(self) -> None:
        validate_queue_name(self.default_queue)
        validate_priority(self.default_priority)
        validate_max_attempts(self.default_max_attempts)
        validate_seconds("default_retry_delay", self.default_retry_delay)
        validate_seconds("default_timeout", self.default_timeout, allow_zero=False)
        for name in ("lease_seconds", "poll_interval", "shutdown_timeout"):
            if getattr(self, name) is None:  # only "… | None" fields may be unset
                raise InvalidOptions(f"{name} must be a number of seconds, not None")
        validate_seconds("lease_seconds", self.lease_seconds, allow_zero=False)
        validate_seconds("poll_interval", self.poll_interval, allow_zero=False)
        validate_seconds("shutdown_timeout", self.shutdown_timeout)
        if self.max_payload_bytes < 1:
            raise InvalidOptions(f"max_payload_bytes must be >= 1, got {self.max_payload_bytes}")
        if self.sqlite_synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise InvalidOptions("sqlite_synchronous must be OFF, NORMAL, FULL or EXTRA")
        object.__setattr__(self, "task_modules", _module_names(self.task_modules))
        keys: Any = self.encryption_keys
        if isinstance(keys, str | bytes):
            keys = (keys,)
        try:
            keys = tuple(keys)
        except TypeError:
            # Never echo the value: it may hold keys.
            raise InvalidOptions("encryption_keys must be a list of keys") from None
        object.__setattr__(self, "encryption_keys", keys)
        if self.encrypt_all and not keys:
            raise InvalidOptions("encrypt_all needs encryption_keys")
        if not self.node_name:
            object.__setattr__(self, "node_name", f"{socket.gethostname()}-{os.getpid()}")

    @property
    def effective_url(self) -> str:
        """The URL actually opened: ``noop://`` when disabled."""
        return self.url if self.enabled else "noop://"

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``overrides`` (None values ignored), then env, then defaults."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            if overrides.get(f.name) is not None:
                values[f.name] = overrides.pop(f.name)
            elif (raw := env.get(ENV_PREFIX + f.name.upper())) is not None:
                values[f.name] = _parse(f.name, raw, f.type)
        unknown = sorted(k for k, v in overrides.items() if v is not None)
        if unknown:
            raise InvalidOptions(f"unknown settings: {', '.join(unknown)}")
        return cls(**values)


def _module_names(modules: Any) -> tuple[str, ...]:
    """``task_modules`` as a tuple of validated module names (one name may be given alone)."""
    if isinstance(modules, str):
        modules = (modules,)
    try:
        modules = tuple(modules)
    except TypeError:
        raise InvalidOptions(f"task_modules must be module names, got {modules!r}") from None
    for module in modules:
        if not isinstance(module, str) or not _MODULE.fullmatch(module):
            raise InvalidOptions(f"task_modules: {module!r} is not a module name")
    return tuple(modules)


def _parse(name: str, raw: str, kind: object) -> Any:
    text = str(kind)
    try:
        if text == "bool":
            lowered = raw.strip().lower()
            if lowered not in _TRUE | _FALSE:
                raise ValueError(raw)
            return lowered in _TRUE
        if text == "int":
            return int(raw)
        if text.startswith("float"):
            # "none" unsets only an optional field; float("none") rejects it for the others.
            unset = "None" in text and raw.strip().lower() in {"", "none"}
            return None if unset else float(raw)
        if text.startswith("tuple"):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError:
        raise InvalidOptions(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {text}") from None
    return raw
