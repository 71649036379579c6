"""A fresh, empty store for one round of the small benchmark scripts (limits, partitions,
workflows): a new SQLite file, or a new Redis key prefix or PostgreSQL schema on a server."""

from __future__ import annotations

import uuid
from pathlib import Path


def fresh(url: str, folder: Path) -> str:
    """``sqlite`` → a new file in ``folder``; a Redis or PostgreSQL URL → a new namespace on it."""
    if url == "sqlite":
        return f"sqlite:///{folder}/{uuid.uuid4().hex}.db"
    sep = "&" if "?" in url else "?"
    key = "prefix" if url.startswith(("redis", "rediss", "unix")) else "schema"
    return f"{url}{sep}{key}=b_{uuid.uuid4().hex[:12]}"
