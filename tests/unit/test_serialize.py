"""Unit tests for taskward.serialize: JSON-only payloads, normalisation and the size limit."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import math
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from enum import IntEnum, StrEnum
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskward.errors import InvalidOptions, NotSerializable, PayloadTooLarge
from taskward.serialize import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    EncodedPayload,
    check_args,
    dumps,
    encode_payload,
    encode_result,
    loads,
)

LIMIT = DEFAULT_MAX_PAYLOAD_BYTES


# -- dumps / loads ----------------------------------------------------------------------------


def test_dumps_is_compact_and_keeps_non_ascii() -> None:
    assert dumps({"name": "Zoë", "ids": [1, 2], "ok": True, "x": None}) == (
        '{"name":"Zoë","ids":[1,2],"ok":true,"x":null}'
    )


def test_round_trip() -> None:
    value = {"a": [1, 2.5, "три", None, False], "b": {"c": []}, "d": -0.0}
    assert loads(dumps(value)) == value
    assert loads(dumps(value).encode()) == value


def test_loads_rejects_nan_and_infinity() -> None:
    for text in ("NaN", "[Infinity]", '{"a": -Infinity}'):
        with pytest.raises(ValueError, match="not valid JSON"):
            loads(text)


def test_loads_rejects_invalid_json() -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - json.JSONDecodeError is a ValueError
        loads("{not json")


# -- rejection of non-JSON values -------------------------------------------------------------


class _Thing:
    pass


@pytest.mark.parametrize(
    ("value", "type_name", "hint"),
    [
        (dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "datetime", "ISO 8601"),
        (dt.date(2026, 1, 1), "date", "ISO 8601"),
        (dt.timedelta(seconds=5), "timedelta", "seconds"),
        ({1, 2}, "set", "a list"),
        (frozenset(), "frozenset", "a list"),
        (b"bytes", "bytes", "base64"),
        (decimal.Decimal("1.5"), "Decimal", "str(value)"),
        (uuid.UUID(int=1), "UUID", "str(value)"),
        (_Thing(), "_Thing", "ids or plain data"),
        (1 + 2j, "complex", "ids or plain data"),
    ],
)
def test_non_json_types_are_rejected_with_path_type_and_hint(
    value: Any, type_name: str, hint: str
) -> None:
    with pytest.raises(NotSerializable) as info:
        encode_payload(["ok", value], {}, max_bytes=LIMIT)
    message = str(info.value)
    assert f"args[1] of type {type_name} is not JSON-serializable" in message
    assert hint in message
    assert "never pickles" in message


def test_nested_paths_are_named() -> None:
    with pytest.raises(NotSerializable, match=r"kwargs\['user'\]\['tags'\]\[2\] of type set"):
        encode_payload([], {"user": {"tags": ["a", "b", set()]}}, max_bytes=LIMIT)


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_rejected(number: float) -> None:
    with pytest.raises(NotSerializable, match=r"args\[0\]\[0\] is .*JSON cannot represent"):
        encode_payload([[number]], {}, max_bytes=LIMIT)
    with pytest.raises(NotSerializable, match="result"):
        encode_result({"score": number})


@pytest.mark.parametrize("key", [1, 1.5, None, True, ("a", "b")])
def test_non_string_keys_are_rejected(key: Any) -> None:
    with pytest.raises(NotSerializable, match="keys must be strings"):
        encode_payload([], {key: 1}, max_bytes=LIMIT)  # top-level kwargs key
    with pytest.raises(NotSerializable, match=r"args\[0\]\['a'\] has the key"):
        encode_payload([{"a": {key: 1}}], {}, max_bytes=LIMIT)  # nested: json would coerce
    with pytest.raises(NotSerializable, match="keys must be strings"):
        dumps([[{"x": [{key: 1}]}]])


def test_lone_surrogates_are_rejected() -> None:
    with pytest.raises(NotSerializable, match=r"args\[0\] contains a lone surrogate"):
        encode_payload(["\ud800"], {}, max_bytes=LIMIT)
    with pytest.raises(NotSerializable, match="lone surrogate"):
        dumps({"\udfff": 1})


def test_circular_and_too_deep_values_are_rejected() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(NotSerializable, match="circular"):
        dumps(loop)
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(NotSerializable, match="nested too deeply"):
        dumps(deep)


def test_huge_integers_are_rejected() -> None:
    with pytest.raises(NotSerializable, match="integer too large"):
        dumps([10**5000])


def test_not_serializable_is_a_type_error_and_invalid_job() -> None:
    with pytest.raises(TypeError):
        dumps(object())


@pytest.mark.parametrize("args", ["abc", b"abc", 5, None, {"a": 1}])
def test_args_must_be_a_list_or_tuple(args: Any) -> None:
    with pytest.raises(NotSerializable, match="args must be a list or tuple"):
        encode_payload(args, {}, max_bytes=LIMIT)


@pytest.mark.parametrize("kwargs", [[("a", 1)], "a=1", None])
def test_kwargs_must_be_a_mapping(kwargs: Any) -> None:
    with pytest.raises(NotSerializable, match="kwargs must be a mapping"):
        encode_payload([], kwargs, max_bytes=LIMIT)


# -- normalisation ----------------------------------------------------------------------------


def test_encode_payload_normalises_and_returns_the_stored_text() -> None:
    args = (1, ("a", ("b",)), {"t": (1, 2)})
    payload = encode_payload(args, {"k": (3,)}, max_bytes=LIMIT)
    assert payload.args == [1, ["a", ["b"]], {"t": [1, 2]}]
    assert payload.kwargs == {"k": [3]}
    assert payload.args_json == '[1,["a",["b"]],{"t":[1,2]}]'
    assert payload.kwargs_json == '{"k":[3]}'
    assert payload.size == len(payload.args_json) + len(payload.kwargs_json)
    assert loads(payload.args_json) == payload.args
    with pytest.raises(dataclasses.FrozenInstanceError):
        payload.size = 0  # type: ignore[misc]


def test_returned_values_are_copies() -> None:
    inner = {"a": [1]}
    kwargs = {"inner": inner}
    payload = encode_payload([inner], kwargs, max_bytes=LIMIT)
    payload.args[0]["a"].append(2)
    payload.kwargs["inner"]["a"].append(3)
    assert inner == {"a": [1]}


def test_subclasses_become_their_base_type() -> None:
    class Color(StrEnum):
        RED = "red"

    class Level(IntEnum):
        HIGH = 3

    payload = encode_payload([Color.RED, Level.HIGH], OrderedDict(b=1, a=2), max_bytes=LIMIT)
    assert payload.args == ["red", 3]
    assert type(payload.args[0]) is str
    assert type(payload.args[1]) is int
    assert payload.kwargs == {"b": 1, "a": 2}
    assert list(payload.kwargs) == ["b", "a"]  # order kept


def test_any_sequence_and_mapping_are_accepted() -> None:
    kwargs: Mapping[str, Any] = MappingProxyType({"a": 1})
    payload = encode_payload(range(3), kwargs, max_bytes=LIMIT)
    assert payload.args == [0, 1, 2]
    assert payload.kwargs == {"a": 1}


def test_check_args_returns_args_kwargs_and_size() -> None:
    args, kwargs, size = check_args((1, "é"), {"x": (2,)}, max_bytes=LIMIT)
    assert args == [1, "é"]
    assert kwargs == {"x": [2]}
    assert size == len('[1,"é"]'.encode()) + len('{"x":[2]}')


def test_encode_result_returns_the_stored_round_trip() -> None:
    assert encode_result(None) is None
    assert encode_result((1, {"a": (2,)})) == [1, {"a": [2]}]
    with pytest.raises(NotSerializable, match="result of type datetime"):
        encode_result(dt.datetime(2026, 1, 1))


# -- size limit -------------------------------------------------------------------------------


def _payload_size(args: list[Any], kwargs: dict[str, Any]) -> int:
    return len(json.dumps(args, ensure_ascii=False, separators=(",", ":")).encode()) + len(
        json.dumps(kwargs, ensure_ascii=False, separators=(",", ":")).encode()
    )


def test_size_limit_exact_boundary_with_multibyte_characters() -> None:
    # "€" is 1 character but 3 bytes in UTF-8; the limit counts bytes.
    args = ["€" * 100]
    kwargs = {"note": "ü"}  # 2 bytes
    size = _payload_size(args, kwargs)
    assert size == (2 + 2 + 300) + (len('{"note":""}') + 2)

    payload = encode_payload(args, kwargs, max_bytes=size)
    assert payload.size == size

    with pytest.raises(PayloadTooLarge) as info:
        encode_payload(args, kwargs, max_bytes=size - 1)
    message = str(info.value)
    assert f"{size} bytes" in message
    assert f"limit of {size - 1} bytes" in message
    assert "max_payload_bytes" in message
    assert "TASKWARD_MAX_PAYLOAD_BYTES" in message


def test_one_extra_multibyte_character_crosses_the_limit() -> None:
    args = ["€" * 100]
    limit = _payload_size(args, {})
    encode_payload(args, {}, max_bytes=limit)
    with pytest.raises(PayloadTooLarge):
        encode_payload(["€" * 100 + "a"], {}, max_bytes=limit)  # one byte more


def test_default_limit_is_one_mebibyte() -> None:
    assert DEFAULT_MAX_PAYLOAD_BYTES == 1_048_576
    filler = "x" * (LIMIT - len('[""]') - len("{}"))
    assert encode_payload([filler], {}, max_bytes=LIMIT).size == LIMIT
    with pytest.raises(PayloadTooLarge):
        encode_payload([filler + "x"], {}, max_bytes=LIMIT)


def test_payload_too_large_is_checked_by_check_args_too() -> None:
    with pytest.raises(PayloadTooLarge):
        check_args(["abcdef"], {}, max_bytes=8)


@pytest.mark.parametrize("max_bytes", [0, -1, 1.5, True, None])
def test_max_bytes_must_be_a_positive_integer(max_bytes: Any) -> None:
    with pytest.raises(InvalidOptions, match="max_bytes"):
        encode_payload([], {}, max_bytes=max_bytes)


# -- properties -------------------------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)
TUPLED_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children) | st.lists(children).map(tuple),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_json_values_round_trip_unchanged(value: Any) -> None:
    assert loads(dumps(value)) == value
    assert encode_result(value) == value


@given(st.lists(JSON_VALUES, max_size=5), st.dictionaries(st.text(), JSON_VALUES, max_size=5))
def test_encode_payload_round_trip(args: list[Any], kwargs: dict[str, Any]) -> None:
    payload = encode_payload(args, kwargs, max_bytes=10**9)
    assert payload == EncodedPayload(
        args=args,
        kwargs=kwargs,
        args_json=dumps(args),
        kwargs_json=dumps(kwargs),
        size=_payload_size(args, kwargs),
    )


@given(TUPLED_VALUES)
def test_tuples_become_lists(value: Any) -> None:
    def untuple(v: Any) -> Any:
        return [untuple(item) for item in v] if isinstance(v, list | tuple) else v

    decoded = encode_result(value)
    assert decoded == untuple(value)
    assert "tuple" not in repr(type(decoded))


# -- the flat fast path (args of exact scalars, no kwargs) -------------------------------------


@pytest.mark.parametrize(
    "args",
    [[], [1, 2.5, True, None, "id-42"], (7, "x"), [2**70, -0.0, ""], ["é", 1], ['q"\\']],
)
def test_flat_args_encode_as_the_full_path_would(args: Any) -> None:
    payload = encode_payload(args, {}, max_bytes=LIMIT)
    text = json.dumps(list(args), ensure_ascii=False, separators=(",", ":"))
    assert payload.args_json == text
    assert payload.kwargs_json == "{}"
    assert payload.args == list(args)
    assert payload.args is not args  # the worker's copy, never the caller's list
    assert payload.kwargs == {}
    assert payload.size == len(text.encode()) + 2


_SCALARS = (
    st.text()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.booleans()
    | st.none()
)


@given(st.lists(_SCALARS, max_size=8) | st.lists(_SCALARS, max_size=8).map(tuple))
def test_any_flat_args_encode_as_json_dumps_would(args: Any) -> None:
    # The flat path keeps one C encoder for every call: its text must be json.dumps' own.
    text = json.dumps(list(args), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate: not storable, refused
        with pytest.raises(NotSerializable):
            encode_payload(args, {}, max_bytes=LIMIT)
        return
    assert encode_payload(args, {}, max_bytes=LIMIT).args_json == text


def test_flat_args_at_the_size_limit() -> None:
    args = ["x" * 10]  # '["xxxxxxxxxx"]' is 14 bytes, plus 2 for "{}"
    assert encode_payload(args, {}, max_bytes=16).size == 16
    with pytest.raises(PayloadTooLarge):
        encode_payload(args, {}, max_bytes=15)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "\ud800"])
def test_flat_args_that_json_cannot_store_are_refused(bad: Any) -> None:
    with pytest.raises(NotSerializable):
        encode_payload([1, bad], {}, max_bytes=LIMIT)
