"""Params: the fast arity check agrees with inspect's binding; annotation targets."""

from __future__ import annotations

import inspect
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import taskmill as tm
from taskmill._params import Params, _Arity, arg_label


class Strict(msgspec.Struct):
    n: int

    def __post_init__(self) -> None:
        raise LookupError("not this one")


KINDS = [
    inspect.Parameter.POSITIONAL_ONLY,
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    inspect.Parameter.VAR_POSITIONAL,
    inspect.Parameter.KEYWORD_ONLY,
    inspect.Parameter.VAR_KEYWORD,
]
NAMES = ["a", "b", "c", "d", "e"]


@st.composite
def signatures(draw: st.DrawFn) -> inspect.Signature:
    """Valid signatures: kinds in order, at most one *args/**kwargs, defaults only at the end."""
    params: list[inspect.Parameter] = []
    seen_default = False
    for name in NAMES[: draw(st.integers(0, 5))]:
        kind = draw(st.sampled_from(KINDS))
        previous = params[-1].kind if params else KINDS[0]
        if kind < previous or (kind == previous and kind in (KINDS[2], KINDS[4])):
            continue
        positional = kind in (KINDS[0], KINDS[1])
        default: Any = inspect.Parameter.empty
        if kind not in (KINDS[2], KINDS[4]) and (
            draw(st.booleans()) or (positional and seen_default)
        ):
            default = None
            seen_default = seen_default or positional
        params.append(inspect.Parameter(name, kind, default=default))
    return inspect.Signature(params)


def _binds(signature: inspect.Signature, args: list[int], kwargs: dict[str, int]) -> bool:
    try:
        signature.bind(*args, **kwargs)
    except TypeError:
        return False
    return True


class TestArity:
    @settings(max_examples=300, deadline=None)
    @given(
        signature=signatures(),
        args=st.lists(st.integers(), max_size=6),
        kwargs=st.dictionaries(st.sampled_from([*NAMES, "zz"]), st.integers(), max_size=4),
    )
    def test_fast_check_never_accepts_what_bind_refuses(
        self, signature: inspect.Signature, args: list[int], kwargs: dict[str, int]
    ) -> None:
        """`fits` is sound (fits => bind succeeds): check_arity accepts exactly what bind does."""
        if _Arity(signature).fits(args, kwargs):
            assert _binds(signature, args, kwargs)

    @pytest.mark.parametrize(
        ("args", "kwargs"),
        [
            ([1], {}),
            ([1, 2], {}),
            ([], {"to": 1}),
            ([1], {"when": 2, "cc": 3}),
            ([1, 2, 3, 4], {"x": 5}),
        ],
    )
    def test_ordinary_calls_take_the_fast_path(
        self, args: list[Any], kwargs: dict[str, Any]
    ) -> None:
        """Common valid calls are accepted without falling back to inspect's bind."""

        def task(to: Any, when: Any = None, *rest: Any, cc: Any = None, **extra: Any) -> None:
            return None

        assert _Arity(inspect.signature(task)).fits(args, kwargs)

    def test_positional_only_name_by_keyword_is_refused(self) -> None:
        """`def f(a, /, **kw)`: `a=` by keyword only binds when `a` is also given by position."""

        def f(a: int, /, **kw: int) -> None:
            return None

        params = Params("f", f)
        params.check_arity([1], {"a": 2})  # the keyword lands in **kw
        with pytest.raises(tm.PayloadError, match="'a' parameter is positional only"):
            params.check_arity([], {"a": 2})


class TestTargets:
    def test_unconvertible_annotations_pass_values_through(self) -> None:
        """Any, protocols/ABCs, plain classes and strings leave the wire value alone."""

        class Plain:
            pass

        def task(a: Any, b: Plain, c: "Missing", d) -> None:  # type: ignore[no-untyped-def,name-defined]  # noqa: F821, UP037
            return None

        args: list[Any] = ["x", {"k": 1}, [1], 2.5]
        Params("t", task).convert(args, {}, msgspec.convert, keep=True)
        assert ["x", {"k": 1}, [1], 2.5] == args

    def test_a_validating_type_that_raises_anything_is_a_payload_error(self) -> None:
        """A Struct/dataclass whose validation raises any exception yields PayloadError."""

        def task(value: Strict) -> None:
            return None

        with pytest.raises(tm.PayloadError, match="argument 'value' \\(position 0\\) of task 't'"):
            Params("t", task).convert([{"n": 1}], {}, msgspec.convert)

    def test_builtins_without_signature_are_not_checked(self) -> None:
        """A callable inspect cannot read (some builtins) gets no arity or type checks."""
        args: list[Any] = [1, 2, 3]
        Params("t", min).convert(args, {"x": 1}, msgspec.convert)


@pytest.mark.parametrize(
    ("task", "argument", "name", "expected"),
    [
        ("t", "0", None, "positional argument 0 of task 't'"),
        ("t", "1", "when", "argument 'when' (position 1) of task 't'"),
        ("t", "when", None, "argument 'when' of task 't'"),
        (None, "2", None, "positional argument 2"),
    ],
)
def test_arg_label(task: str | None, argument: str, name: str | None, expected: str) -> None:
    """Arguments are named by keyword, or by position and parameter name when known."""
    assert expected == arg_label(task, argument, name=name)
