"""The check of a job's arguments against its task's parameters: the same answers as Python.

``Parameters.accepts`` decides without calling ``inspect.Signature.bind`` (enqueue is a hot
path), so a property test holds it to what a real function of each shape of signature takes.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskward import InvalidJob, JobContext, TaskManager
from taskward.parameters import Parameters

P = inspect.Parameter
NAMES = ["a", "b", "c", "d", "e", "f"]


@st.composite
def signatures(draw: st.DrawFn) -> inspect.Signature:
    """Any valid signature over a few names: positional-only, either, *args, keyword-only, **kw."""
    names = draw(st.permutations(NAMES))
    sizes = draw(st.tuples(*[st.integers(0, 2)] * 3))
    posonly, either, kwonly = names[: sizes[0]], names[2:][: sizes[1]], names[4:][: sizes[2]]
    positional = [(n, P.POSITIONAL_ONLY) for n in posonly] + [
        (n, P.POSITIONAL_OR_KEYWORD) for n in either
    ]
    # Defaults of positional parameters are trailing; keyword-only ones take any.
    first_default = draw(st.integers(0, len(positional)))
    params = [
        P(name, kind, default=0 if i >= first_default else P.empty)
        for i, (name, kind) in enumerate(positional)
    ]
    if draw(st.booleans()):
        params.append(P("args", P.VAR_POSITIONAL))
    params += [P(n, P.KEYWORD_ONLY, default=draw(st.sampled_from([0, P.empty]))) for n in kwonly]
    if draw(st.booleans()):
        params.append(P("kw", P.VAR_KEYWORD))
    return inspect.Signature(params)


def calls(signature: inspect.Signature, count: int, kwargs: dict[str, Any]) -> bool:
    """Whether a real function of ``signature`` takes the call (``Signature.bind`` differs:
    it refuses ``f(a=1)`` for ``def f(a=0, /, **kw)``, which Python runs with ``kw={"a": 1}``).
    """
    namespace: dict[str, Any] = {}
    exec(f"def function{signature}: pass", namespace)  # the test's own text, no input
    try:
        namespace["function"](*range(count), **kwargs)
    except TypeError:
        return False
    return True


@given(
    signature=signatures(),
    count=st.integers(0, 5),
    keys=st.sets(st.sampled_from([*NAMES, "args", "kw", "other"])),
)
def test_accepts_exactly_what_python_calls(
    signature: inspect.Signature, count: int, keys: set[str]
) -> None:
    kwargs = dict.fromkeys(keys, 1)
    parameters = Parameters.of(signature, takes_context=False)
    expected = calls(signature, count, kwargs)
    if parameters is None:  # (*args, **kw): nothing is checked, since everything binds
        assert expected
    else:
        assert parameters.accepts(count, kwargs) is expected


@given(
    signature=signatures(),
    count=st.integers(0, 5),
    keys=st.sets(st.sampled_from([*NAMES, "args", "kw", "other"])),
)
def test_a_partial_refusal_is_never_wrong(
    signature: inspect.Signature, count: int, keys: set[str]
) -> None:
    """``.s()`` refuses early only what no result passed first could make right."""
    kwargs = dict.fromkeys(keys, 1)
    parameters = Parameters.of(signature, takes_context=False)
    if parameters is not None and not parameters.accepts(count, kwargs, partial=True):
        assert not calls(signature, count, kwargs)
        assert not calls(signature, count + 1, kwargs)


def test_a_refusal_says_what_the_function_takes_and_never_a_value() -> None:
    tw = TaskManager("memory://")

    @tw.task(name="login", sensitive=("password",))
    def login(user: str, password: str, *, remember: bool = False) -> None: ...

    assert login.parameters is not None
    with pytest.raises(InvalidJob) as refused:
        login.parameters.check("login", ["ada", "hunter2", True], {"remember": True})
    message = str(refused.value)
    assert message == (
        "task 'login' takes (user, password, *, remember=…), which cannot be called with "
        "3 positional arguments and the keyword argument(s) remember: too many positional "
        "arguments. Nothing was stored."
    )
    assert "hunter2" not in message


def test_the_context_parameter_is_never_the_callers() -> None:
    tw = TaskManager("memory://")

    @tw.task(name="ctx")
    def with_context(ctx: JobContext, item: int) -> None: ...

    assert with_context.takes_context
    assert with_context.parameters is not None
    assert with_context.parameters.positional == ("item",)
    with_context.parameters.check("ctx", [1], {})
    with pytest.raises(InvalidJob, match=r"takes \(item\)"):
        with_context.parameters.check("ctx", [], {})


def test_functions_taking_anything_and_builtins_are_not_checked() -> None:
    tw = TaskManager("memory://")

    @tw.task(name="anything")
    def anything(*args: Any, **kwargs: Any) -> None: ...

    assert anything.parameters is None
    assert tw.task(name="builtin")(max).parameters is None  # no signature Python can read


def test_a_dependency_result_counts_as_the_first_argument() -> None:
    tw = TaskManager("memory://")

    @tw.task(name="parse")
    def parse(page: str, strict: bool) -> None: ...

    assert parse.parameters is not None
    parse.parameters.check("parse", [True], {}, received=1)
    with pytest.raises(InvalidJob, match="the dependency result it receives, then 2"):
        parse.parameters.check("parse", ["x", True], {}, received=1)
