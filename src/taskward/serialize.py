"""JSON encoding of job args, kwargs and results, with the payload size limit.

This module owns what a job may carry. taskward stores args as a JSON list and kwargs as a JSON
object, so the dashboard, the admin API and SQL can read any job without importing user code.
It never pickles: pickle lets anyone who can write to the backend run code in every worker, and
pickled payloads break when classes move.

Accepted values are exactly what the standard ``json`` module accepts: ``dict`` (with ``str``
keys), ``list``, ``tuple``, ``str``, ``int``, ``float``, ``bool`` and ``None``, nested, plus
their subclasses (an ``IntEnum`` member is stored as its int value). Stricter than ``json``:

* NaN and infinity are rejected (they are not JSON);
* dict keys must be strings at every level (``json`` would silently turn ``{1: "a"}`` into
  ``{"1": "a"}``, and the job would then fail at run time on ``d[1]``);
* strings must be valid Unicode (a lone surrogate cannot be stored as UTF-8).

Values cross the boundary as their JSON round trip: tuples become lists, subclasses their base
type. :func:`encode_payload` returns those normalised copies together with the encoded text, so
the caller sees exactly what the worker will receive and a backend stores the text as is.

The standard library encoder is used, not orjson: orjson serialises datetimes, UUIDs, enums and
dataclasses natively and writes NaN as ``null``, so accepting the same set of values as here
would need a pre-pass that costs more than orjson saves.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from taskward.errors import InvalidOptions, NotSerializable, PayloadTooLarge
from taskward.jobs import EncodedPayload

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "MAX_DEPTH",
    "EncodedPayload",
    "UnreadablePayload",
    "check_args",
    "dumps",
    "encode_payload",
    "encode_result",
    "load_args",
    "load_kwargs",
    "loads",
    "stored_payload_problem",
]

DEFAULT_MAX_PAYLOAD_BYTES = 1_048_576
"""Default limit (1 MiB) on the UTF-8 size of a job's args JSON plus kwargs JSON."""
MAX_DEPTH = 64
"""How deeply containers may nest in any stored value (args, kwargs, result, meta).

Python's JSON decoder recurses once per level and gives up near the interpreter's recursion
limit (about 1,000, less on a deep stack): a value accepted at enqueue but too deep to decode
in the worker or the dashboard would poison every listing that includes it. 64 levels is far
beyond real data and far below that limit.
"""


def _reject_constant(name: str) -> Any:
    """Refuse ``NaN``, ``Infinity`` and ``-Infinity`` when decoding."""
    raise ValueError(f"{name} is not valid JSON")


# Built once: json.dumps/json.loads with options construct a new coder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _flat_encoder() -> Callable[[Any], str]:
    """Return ``_ENCODER.encode`` for a flat list of exact scalars, about 3x cheaper.

    ``JSONEncoder.encode`` builds a new C encoder (and a dict for the cycle check) on every
    call; a flat list of scalars cannot hold a cycle nor need ``default``, so one C encoder
    with the same options serves every call. Without the C accelerator: the plain encoder.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _ENCODER.encode
    # markers, default, encoder, indent, key and item separators, sort_keys, skipkeys, allow_nan
    encode = make(None, None, json.encoder.encode_basestring, None, ":", ",", False, False, False)
    return lambda value: "".join(encode(value, 0))


_FLAT_ENCODE: Final = _flat_encoder()
_LEAF_TYPES = frozenset({str, int, float, bool, type(None)})
_NEVER_PICKLES = "taskward stores JSON and never pickles"
_PLAIN = "ids or plain data (dict, list, str, int, float, bool, None)"
# Advice for the types people most often try to pass, checked in order.
_HINTS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    ((dt.date, dt.time), "an ISO 8601 string (value.isoformat())"),
    (dt.timedelta, "a number of seconds (value.total_seconds())"),
    ((bytes, bytearray, memoryview), "a str (decode text, base64-encode binary data)"),
    ((set, frozenset), "a list"),
    ((decimal.Decimal, uuid.UUID), "a str (str(value))"),
)


def dumps(value: Any, *, label: str = "value") -> str:
    """Encode ``value`` as compact JSON text (non-ASCII characters kept as they are).

    ``label`` names the value in error messages, e.g. ``"result"``.

    Raises:
        NotSerializable: ``value`` holds something JSON cannot represent; the message names
            its path and type, e.g. ``args[1] of type datetime``.
    """
    text = _encode(value, label)
    _utf8_size(text, value, label)
    _check_depth(value, text, label)
    return text


def loads(text: str | bytes | bytearray) -> Any:
    """Decode JSON text produced by :func:`dumps`.

    Raises:
        ValueError: ``text`` is not valid JSON, or contains ``NaN``/``Infinity``.
    """
    if not isinstance(text, str):
        text = text.decode("utf-8")
    return _DECODER.decode(text)


def encode_payload(
    args: Sequence[Any], kwargs: Mapping[str, Any], *, max_bytes: int
) -> EncodedPayload:
    """Validate and encode a job's arguments, enforcing the size limit.

    Each of ``args`` and ``kwargs`` is encoded exactly once; the limit applies to the UTF-8
    size of the two JSON texts together, so ``max_bytes`` is accepted and one byte more is not.

    Raises:
        NotSerializable: ``args`` is not a list or tuple, ``kwargs`` not a mapping, or either
            holds a value JSON cannot represent (including non-string keys), or nests deeper
            than :data:`MAX_DEPTH`.
        PayloadTooLarge: the encoded size exceeds ``max_bytes``.
        InvalidOptions: ``max_bytes`` is not a positive integer.
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise InvalidOptions(f"max_bytes must be a positive integer, got {max_bytes!r}")
    if type(kwargs) is dict and not kwargs and type(args) in _SEQUENCE_TYPES:
        flat = _flat_payload(args, max_bytes)
        if flat is not None:
            return flat
    arg_list = _as_list(args)
    kwarg_dict = _as_dict(kwargs)
    args_json = _encode(arg_list, "args")
    kwargs_json = _encode(kwarg_dict, "kwargs") if kwarg_dict else "{}"
    _check_depth(arg_list, args_json, "args")
    _check_depth(kwarg_dict, kwargs_json, "kwargs")
    args_size = _utf8_size(args_json, arg_list, "args")
    size = args_size + _utf8_size(kwargs_json, kwarg_dict, "kwargs")
    if size > max_bytes:
        raise PayloadTooLarge(
            f"job arguments are {size} bytes of JSON (args {args_size}, kwargs "
            f"{size - args_size}), over the limit of {max_bytes} bytes; pass ids instead of "
            "large data, or raise the limit with the max_payload_bytes setting "
            "(environment variable TASKWARD_MAX_PAYLOAD_BYTES)"
        )
    return EncodedPayload(
        args=_decoded(arg_list, args_json),
        kwargs=_decoded(kwarg_dict, kwargs_json) if kwarg_dict else {},
        args_json=args_json,
        kwargs_json=kwargs_json,
        size=size,
    )


_SEQUENCE_TYPES: Final = frozenset({list, tuple})


def _flat_payload(args: Sequence[Any], max_bytes: int) -> EncodedPayload | None:
    """The common case, ids and short ASCII strings: args of exact scalars, no kwargs.

    Nothing to walk: no dict keys to check, one level deep, the ASCII text's length is its
    size, and the decoded copy is a shallow one. None sends the call down the full path,
    which also words every error (NaN, a lone surrogate, the size limit).
    """
    for item in args:
        if type(item) not in _LEAF_TYPES:
            return None
    try:
        text = _FLAT_ENCODE(args)
    except ValueError:  # NaN or infinity
        return None
    size = len(text) + 2  # plus "{}", the kwargs
    if size > max_bytes or not text.isascii():
        return None
    return EncodedPayload(args=list(args), kwargs={}, args_json=text, kwargs_json="{}", size=size)


def _decoded(value: list[Any] | tuple[Any, ...] | dict[str, Any], text: str) -> Any:
    """Return what decoding ``text`` gives, skipping the decode for flat exact scalars.

    A list or dict of plain str/int/float/bool/None decodes to an equal copy of itself, so a
    shallow copy is the same answer at a fraction of the cost (the common case: ids).
    """
    items = value.values() if isinstance(value, dict) else value
    if all(type(item) in _LEAF_TYPES for item in items):
        return dict(value) if isinstance(value, dict) else list(value)
    return loads(text)


def check_args(
    args: Sequence[Any], kwargs: Mapping[str, Any], *, max_bytes: int
) -> tuple[list[Any], dict[str, Any], int]:
    """Validate a job's arguments and return ``(args, kwargs, size)`` as the worker sees them.

    A shorthand for :func:`encode_payload` when the JSON text itself is not needed; it raises
    the same errors.
    """
    payload = encode_payload(args, kwargs, max_bytes=max_bytes)
    return payload.args, payload.kwargs, payload.size


def encode_result(value: Any) -> Any:
    """Return a job function's return value as it will be stored (its JSON round trip).

    Raises:
        NotSerializable: the value holds something JSON cannot represent.
    """
    kind = type(value)
    if value is None or kind is bool or kind is int:
        return value  # its own round trip, and most jobs return None: skip encoding
    if kind is float and math.isfinite(value):
        return value
    return loads(dumps(value, label="result"))


def _as_list(args: Sequence[Any]) -> list[Any] | tuple[Any, ...]:
    """Return ``args`` as a list or tuple, rejecting a str or a non-sequence."""
    if isinstance(args, list | tuple):
        return args
    if isinstance(args, str | bytes | bytearray) or not isinstance(args, Sequence):
        raise NotSerializable(
            f"args must be a list or tuple of positional arguments, got {type(args).__name__}"
        )
    return list(args)


def _as_dict(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``kwargs`` as a dict, rejecting a non-mapping."""
    if isinstance(kwargs, dict):
        return kwargs
    if not isinstance(kwargs, Mapping):
        raise NotSerializable(
            f"kwargs must be a mapping of keyword arguments, got {type(kwargs).__name__}"
        )
    return dict(kwargs)


def _encode(value: Any, label: str) -> str:
    """Encode with the C encoder, then check what it would silently coerce (dict keys)."""
    try:
        text = _ENCODER.encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise _not_serializable(value, label, exc) from exc
    if not _keys_are_strings(value, text):
        raise _not_serializable(value, label, None)
    return text


def _utf8_size(text: str, value: Any, label: str) -> int:
    """Return the UTF-8 size of ``text``; a lone surrogate makes it unstorable."""
    if text.isascii():
        return len(text)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise _not_serializable(value, label, exc) from exc


def _keys_are_strings(value: Any, text: str) -> bool:
    """Return True if every dict in ``value`` has only str keys (``value`` encoded to ``text``)."""
    if isinstance(value, dict) and not all(isinstance(key, str) for key in value):
        return False
    # A nested dict always encodes to a "{" after the first character; most payloads (ids,
    # strings, lists of them) have none, and this C-speed search spares them the walk.
    if text.find("{", 1) == -1:
        return True
    # The encoder succeeded, so `value` is acyclic and the walk ends. Exact leaf types are
    # skipped before any isinstance call: this loop runs once per value in the payload.
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            for key in item:
                if not isinstance(key, str):
                    return False
            children = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        for child in children:
            if type(child) not in _LEAF_TYPES:
                stack.append(child)
    return True


def _check_depth(value: Any, text: str, label: str) -> None:
    """Refuse ``value`` (encoded as ``text``) if containers nest deeper than MAX_DEPTH."""
    # Every level opens one bracket, so few brackets (counted at C speed; brackets inside
    # strings only overestimate) prove a shallow value without walking it: the common case.
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    depth = _depth(value)
    if depth > MAX_DEPTH:
        raise NotSerializable(
            f"{label} nests {depth} levels of lists and dicts, over the limit of {MAX_DEPTH}; "
            "flatten the data or pass an id to look it up"
        )


def _depth(value: Any) -> int:
    """How many containers deep ``value`` nests (0 for a scalar); iterative, so never deep."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


# -- stored payloads: what a backend hands back, read without trusting it ----------------------


@dataclass(frozen=True, slots=True)
class UnreadablePayload:
    """Stands for stored args or kwargs that are not the JSON taskward wrote.

    A backend returns it instead of raising, so that one bad row (bytes planted in the store,
    a pickle, truncated text) neither breaks a listing nor blocks a queue: the worker refuses
    the job with :func:`stored_payload_problem` and the admin pages show the problem.
    """

    problem: str
    """What was found instead of JSON, e.g. ``"bytes, not JSON text"``."""


def load_args(text: str | bytes | None) -> list[Any] | UnreadablePayload:
    """Decode a stored args column: a list, or :class:`UnreadablePayload`; never raises.

    Never unpickles: bytes (a pickle among them) are refused without being looked into.
    """
    value = _load_stored(text)
    if isinstance(value, list):
        return value
    return value if isinstance(value, UnreadablePayload) else _not_a("list", value)


def load_kwargs(text: str | bytes | None) -> dict[str, Any] | UnreadablePayload:
    """Decode a stored kwargs column: a dict, or :class:`UnreadablePayload`; never raises."""
    value = _load_stored(text)
    if isinstance(value, dict):
        return value
    return value if isinstance(value, UnreadablePayload) else _not_a("object", value)


def _load_stored(text: str | bytes | None) -> Any:
    if not isinstance(text, str):
        kind = "bytes" if isinstance(text, bytes | bytearray | memoryview) else type(text).__name__
        return UnreadablePayload(f"{kind}, not JSON text")
    try:
        return loads(text)
    except (ValueError, RecursionError):
        return UnreadablePayload(f"text that is not valid JSON ({len(text)} characters)")


def _not_a(expected: str, value: Any) -> UnreadablePayload:
    return UnreadablePayload(f"a JSON {type(value).__name__}, not a JSON {expected}")


def stored_payload_problem(args: Any, kwargs: Any) -> str | None:
    """Say why a stored job's args/kwargs cannot be run, or None if they can.

    Args must be a list and kwargs a dict with string keys, as :func:`encode_payload` writes
    them; anything else was put in the store by something other than taskward.
    """
    problems = []
    if not isinstance(args, list):
        problems.append(f"args are {_describe(args, 'list')}")
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        problems.append(f"kwargs are {_describe(kwargs, 'object')}")
    if not problems:
        return None
    return (
        f"the stored {' and '.join(problems)}; {_NEVER_PICKLES} and runs only what it wrote: "
        "enqueue the job again with JSON arguments"
    )


def _describe(value: Any, expected: str) -> str:
    if isinstance(value, UnreadablePayload):
        return value.problem
    return _not_a(expected, value).problem


# -- diagnosis: only on the error path, to say where the problem is ----------------------------


def _not_serializable(value: Any, label: str, exc: BaseException | None) -> NotSerializable:
    """Build the error for ``value``, naming the path and type of the first bad part."""
    try:
        problem = _locate(value, label, set())
    except RecursionError:
        problem = f"{label} is nested too deeply to encode"
    if problem is None:  # pragma: no cover - the walk mirrors the encoder; kept as a safety net
        problem = f"{label} is not JSON-serializable ({exc})"
    return NotSerializable(f"{problem}; {_NEVER_PICKLES}")


def _locate(value: Any, path: str, ancestors: set[int]) -> str | None:
    """Return a description of the first part of ``value`` that cannot be stored, or None."""
    if isinstance(value, dict | list | tuple):
        if id(value) in ancestors:
            return f"{path} refers back to a container that holds it (a circular reference)"
        ancestors.add(id(value))
        found = _locate_in(value, path, ancestors)
        ancestors.discard(id(value))
        return found
    return _scalar_problem(value, path)


def _locate_in(
    value: dict[Any, Any] | list[Any] | tuple[Any, ...], path: str, ancestors: set[int]
) -> str | None:
    """Search the items (and keys) of a container."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return (
                    f"{path} has the key {key!r} of type {type(key).__name__}; "
                    "JSON object keys must be strings"
                )
            found = _scalar_problem(key, f"{path} key {key!r}") or _locate(
                item, f"{path}[{key!r}]", ancestors
            )
            if found:
                return found
        return None
    for index, item in enumerate(value):
        found = _locate(item, f"{path}[{index}]", ancestors)
        if found:
            return found
    return None


def _scalar_problem(value: Any, path: str) -> str | None:
    """Return what is wrong with a non-container value, or None if JSON can store it."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return f"{path} is {value!r}, which JSON cannot represent (NaN and infinity)"
        return None
    if isinstance(value, int):
        try:
            int.__repr__(value)
        except ValueError:
            return f"{path} is an integer too large to encode; pass it as a str"
        return None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{path} contains a lone surrogate character, which is not valid Unicode"
        return None
    hint = next((text for types, text in _HINTS if isinstance(value, types)), _PLAIN)
    return f"{path} of type {type(value).__name__} is not JSON-serializable; pass {hint}"
