"""A task function's parameters, and the check of a job's arguments against them.

A job whose arguments its function cannot take (``add.enqueue(1)`` for ``def add(x, y)``) would
be stored and then fail at every attempt on a worker; the producer that has the function
refuses it instead, before anything is written. Only the producer's view can be checked: a
task enqueued by name without its code here is left to the worker.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taskward.errors import InvalidJob

__all__ = ["Parameters"]

_EMPTY = inspect.Parameter.empty


@dataclass(frozen=True, slots=True, kw_only=True)
class Parameters:
    """A task function's parameters: what a job's arguments are checked against at enqueue.

    Read once per task from its signature, without a leading ``JobContext`` (the worker passes
    it). Enqueue is a hot path, so :meth:`check` decides with a few comparisons and asks
    :meth:`inspect.Signature.bind` (about 2 µs a call) only to word a refusal.
    """

    signature: inspect.Signature
    """The signature a caller fills (the context parameter removed)."""
    positional: tuple[str, ...]
    """Names of the parameters that take a positional argument, in order."""
    required: int
    """How many of those have no default (always the first ones)."""
    by_keyword: Mapping[str, int]
    """Positional parameters that a keyword may also fill: name -> position."""
    positional_only: frozenset[str]
    keyword_only: frozenset[str]
    required_keywords: frozenset[str]
    """Keyword-only parameters without a default."""
    var_positional: bool
    var_keyword: bool

    @classmethod
    def of(cls, signature: inspect.Signature | None, *, takes_context: bool) -> Parameters | None:
        """The call shape of ``signature``; None when any call fits (or nothing is known)."""
        if signature is None:
            return None
        params = list(signature.parameters.values())[1 if takes_context else 0 :]
        kinds = {p.kind for p in params}
        if kinds == {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}:
            return None  # (*args, **kwargs): nothing to check, and nothing to spend on it
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        keyword_only = [p for p in params if p.kind is p.KEYWORD_ONLY]
        return cls(
            signature=signature.replace(parameters=params),
            positional=tuple(p.name for p in positional),
            required=sum(p.default is _EMPTY for p in positional),
            by_keyword={
                p.name: index
                for index, p in enumerate(positional)
                if p.kind is p.POSITIONAL_OR_KEYWORD
            },
            positional_only=frozenset(p.name for p in positional if p.kind is p.POSITIONAL_ONLY),
            keyword_only=frozenset(p.name for p in keyword_only),
            required_keywords=frozenset(p.name for p in keyword_only if p.default is _EMPTY),
            var_positional=inspect.Parameter.VAR_POSITIONAL in kinds,
            var_keyword=inspect.Parameter.VAR_KEYWORD in kinds,
        )

    def check(
        self,
        task: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        received: int = 0,
        partial: bool = False,
    ) -> None:
        """Raise ``InvalidJob`` unless the function takes ``args`` and ``kwargs``.

        ``received`` values come first, before ``args`` (what a workflow step receives);
        ``partial`` accepts missing arguments (a step whose first one may come later).
        """
        if not self.accepts(received + len(args), kwargs, partial=partial):
            self._refuse(task, args, kwargs, received=received, partial=partial)

    def accepts(self, count: int, kwargs: Mapping[str, Any], *, partial: bool = False) -> bool:
        """True when ``count`` positional arguments and these keywords bind to the signature."""
        if count > len(self.positional) and not self.var_positional:
            return False  # too many positional arguments
        for key in kwargs:
            index = self.by_keyword.get(key)
            if index is not None:
                if index < count:
                    return False  # given by position already
            elif key not in self.keyword_only and not self.var_keyword:
                return False  # no parameter takes it
        if partial:
            return True
        # Required positional parameters left unfilled by position must come by keyword.
        for name in self.positional[count : self.required]:
            if name not in kwargs or name in self.positional_only:
                return False
        return not self.required_keywords or self.required_keywords.issubset(kwargs)

    def _refuse(
        self,
        task: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        received: int,
        partial: bool,
    ) -> None:
        """Raise with Python's own reason; return if Python binds the call after all."""
        bind = self.signature.bind_partial if partial else self.signature.bind
        try:
            bind(*([None] * received), *args, **kwargs)
        except TypeError as exc:
            reason = str(exc)
        else:
            return  # the quick check is never the one to refuse a call Python takes
        # Names and counts only: the values may be secrets (``sensitive=``).
        shown = self.signature.replace(
            parameters=[
                p.replace(annotation=_EMPTY, default=_EMPTY if p.default is _EMPTY else _HIDDEN)
                for p in self.signature.parameters.values()
            ],
            return_annotation=_EMPTY,
        )
        raise InvalidJob(
            f"task {task!r} takes {shown}, which cannot be called with "
            f"{_described(args, kwargs, received)}: {reason}. Nothing was stored."
        )


class _Hidden:
    """A default value as the refusal shows it: never the value (it may be a secret)."""

    def __repr__(self) -> str:
        return "…"


_HIDDEN = _Hidden()


def _described(args: Sequence[Any], kwargs: Mapping[str, Any], received: int) -> str:
    """``2 positional arguments and the keyword argument(s) a, b``, without any value."""
    count = len(args)
    text = f"{count} positional argument{'' if count == 1 else 's'}"
    if received:
        text = f"the dependency result it receives, then {text}"
    if not kwargs:
        return f"{text} and no keyword argument"
    return f"{text} and the keyword argument(s) {', '.join(map(str, kwargs))}"
