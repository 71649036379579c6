"""What happens to a task once created: the :class:`Fate` value and the kind it implies.

A task's fate is the sum of its uses: each use may *keep* it (a reference outlives the
statement), *watch* it (await it or read its exception), or say where it is *lost*. Uses of
one value add up (:meth:`Fate.also`); the callers of a function that returns a task each make
a task of their own, so the worst of them decides (:func:`every_path`). The kind follows:
nothing keeps it → dangling; kept but not watched → unsupervised; kept and watched → fine.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from taskward.audit.model import Kind

__all__ = ["AWAITED", "IN_PROGRESS", "NOTHING", "Fate", "any_use", "every_path", "verdict"]

# Reasons the audit assumed rather than saw: a seen one wins when both apply.
_ASSUMED = ("handed to",)


@dataclass(frozen=True, slots=True)
class Fate:
    """Why a task is kept, why it is watched, and where it is dropped (each None if not)."""

    kept: str | None = None
    watched: str | None = None
    lost: str | None = None

    def also(self, other: Fate) -> Fate:
        """Combine two uses of the same task."""
        return Fate(
            self.kept or other.kept, _stronger(self.watched, other.watched), self.lost or other.lost
        )


NOTHING = Fate()
"""A use that neither keeps nor watches the task (``t.cancel()``, ``if t: ...``)."""
AWAITED = Fate(kept="awaited", watched="awaited")
"""The fate of an awaited task."""
IN_PROGRESS = Fate(kept="returned", watched="returned")
"""What a function returns while its callers are being followed (a recursive call)."""


def _stronger(first: str | None, second: str | None) -> str | None:
    """Prefer a reason the audit saw (awaited, a callback) to one it assumed (handed over)."""
    if first is None or (second is not None and first.startswith(_ASSUMED)):
        return second or first
    return first


def any_use(fates: Iterable[Fate]) -> Fate:
    """Combine several uses of the same task."""
    total = NOTHING
    for fate in fates:
        total = total.also(fate)
    return total


def every_path(fates: Sequence[Fate]) -> Fate:
    """Combine alternatives (each caller makes its own task): the worst one decides."""
    kept = fates[0].kept if all(f.kept for f in fates) else None
    watched = fates[0].watched if all(f.watched for f in fates) else None
    lost = next((f.lost for f in fates if f.kept is None and f.lost), None)
    return Fate(kept, watched, lost)


def verdict(fate: Fate) -> tuple[Kind, str]:
    """Return the kind of a task with this fate, and the reason shown for it."""
    if fate.kept is None:
        return Kind.DANGLING, fate.lost or "nothing keeps a reference to it"
    if fate.watched is None:
        return Kind.UNSUPERVISED, f"{fate.kept}; nothing awaits it or reads its exception"
    return Kind.FINE, fate.watched
