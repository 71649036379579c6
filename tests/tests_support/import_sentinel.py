"""A module that no test imports on purpose: a forged task name points here.

The security tests check ``"tests_support.import_sentinel" not in sys.modules`` after a worker,
the Rescuer and the cron scheduler met a job naming :func:`run`: importing it at all would be
running code a stored name chose.
"""

from __future__ import annotations

from pathlib import Path


def run(marker: str) -> None:
    """Create ``marker`` (the proof that this function ran)."""
    Path(marker).touch()
