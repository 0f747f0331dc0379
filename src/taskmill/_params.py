"""A registered task's signature: arity checks and argument conversion by annotation.

The rule (docs/payloads.md): on the wire, arguments are builtins. When the codec
knows the task (it has a registry), each argument is checked at encode and
converted at decode to its parameter's annotation with msgspec's ``convert``
(``datetime``, ``UUID``, ``Decimal``, dataclasses, Structs, enums, tuples, sets...).
Parameters without an annotation, annotated with ``Any``, with a string that
cannot be resolved, or with a type msgspec cannot build (protocols, ABCs,
``Callable``, plain classes) get the wire value unchanged.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, final

import msgspec

from ._errors import PayloadError

__all__ = ["Convert", "Params", "arg_label", "bounded"]

logger = logging.getLogger(__name__)

Convert = Callable[[object, Any], Any]
"""``convert(value, type) -> value`` (a serializer's ``convert``)."""

_MAX_REASON: Final = 500
_KINDS: Final = inspect.Parameter


def bounded(reason: str) -> str:
    """Return ``reason`` cut to 500 characters (dead-letter reasons stay small)."""
    return reason if len(reason) <= _MAX_REASON else reason[: _MAX_REASON - 3] + "..."


def arg_label(task: str | None, argument: str, *, name: str | None = None) -> str:
    """Name an argument in messages: ``argument 'when' of task 'mail.send'``.

    Args:
        task: The task name (None when unknown).
        argument: The positional index as digits, or the keyword.
        name: The parameter a positional argument binds to, when known.
    """
    if not argument.isdigit():
        what = f"argument {argument!r}"
    elif name is None:
        what = f"positional argument {argument}"
    else:
        what = f"argument {name!r} (position {argument})"
    return what if task is None else f"{what} of task {task!r}"


def _signature(fn: Callable[..., Any], name: str) -> inspect.Signature | None:
    try:
        return inspect.signature(fn, eval_str=True)
    except ValueError:  # no signature (some builtins): nothing to check
        return None
    except Exception as exc:  # noqa: BLE001  (evaluating annotation strings can raise anything)
        logger.warning(
            "task %r: annotations cannot be resolved (%r); its arguments are passed "
            "in their wire form, unconverted",
            name,
            exc,
        )
    try:
        return inspect.signature(fn)
    except ValueError:
        return None


def _target(annotation: object) -> Any:
    """Return the type to convert to, or None to pass the wire value unchanged."""
    if annotation is inspect.Parameter.empty or isinstance(annotation, str):
        return None
    try:
        info = msgspec.inspect.type_info(annotation)
    except Exception:  # noqa: BLE001  (any annotation msgspec cannot read is "no conversion")
        return None
    if isinstance(info, msgspec.inspect.AnyType | msgspec.inspect.CustomType):
        return None
    return annotation


def _type_name(target: Any) -> str:
    return target.__qualname__ if isinstance(target, type) else repr(target)


@final
class _Arity:
    """A fast, conservative arity check: ``fits`` never accepts what ``bind`` refuses."""

    __slots__ = ("_by_keyword", "_positional", "_positional_only", "_required", "_var")

    def __init__(self, signature: inspect.Signature) -> None:
        params = list(signature.parameters.values())
        positional = [
            p for p in params if p.kind in (_KINDS.POSITIONAL_ONLY, _KINDS.POSITIONAL_OR_KEYWORD)
        ]
        self._positional: dict[str, int] = {p.name: i for i, p in enumerate(positional)}
        self._positional_only = {p.name for p in params if p.kind is _KINDS.POSITIONAL_ONLY}
        self._by_keyword = {
            p.name for p in params if p.kind in (_KINDS.POSITIONAL_OR_KEYWORD, _KINDS.KEYWORD_ONLY)
        }
        self._required = [
            (self._positional.get(p.name, -1), p.name)
            for p in params
            if p.default is _KINDS.empty
            and p.kind not in (_KINDS.VAR_POSITIONAL, _KINDS.VAR_KEYWORD)
        ]
        kinds = {p.kind for p in params}
        self._var = (_KINDS.VAR_POSITIONAL in kinds, _KINDS.VAR_KEYWORD in kinds)

    def fits(self, args: Sequence[object], kwargs: Mapping[str, object]) -> bool:
        count = len(args)
        if count > len(self._positional) and not self._var[0]:
            return False
        for key in kwargs:
            if key in self._positional_only:
                return False  # inspect's bind refuses this even with **kwargs: let it say so
            if key in self._by_keyword:
                if self._positional.get(key, count) < count:
                    return False  # given twice
            elif not self._var[1]:
                return False
        return all(0 <= index < count or name in kwargs for index, name in self._required)


@final
class Params:
    """A registered task's signature: arity checks and each argument's target type."""

    __slots__ = (
        "_arity",
        "_keywords",
        "_names",
        "_positional",
        "_result",
        "_signature",
        "_task",
        "_var_kw",
        "_var_pos",
    )

    def __init__(self, task: str, fn: Callable[..., Any]) -> None:
        self._task = task
        self._signature = _signature(fn, task)
        self._arity = None if self._signature is None else _Arity(self._signature)
        self._names: list[str] = []
        self._positional: list[Any] = []
        self._keywords: dict[str, Any] = {}
        self._var_pos: Any = None
        self._var_kw: Any = None
        self._result: Any = None
        if self._signature is not None:
            self._read(self._signature)

    def _read(self, signature: inspect.Signature) -> None:
        for param in signature.parameters.values():
            target = _target(param.annotation)
            if param.kind in (_KINDS.POSITIONAL_ONLY, _KINDS.POSITIONAL_OR_KEYWORD):
                self._names.append(param.name)
                self._positional.append(target)
            if param.kind in (_KINDS.POSITIONAL_OR_KEYWORD, _KINDS.KEYWORD_ONLY):
                self._keywords[param.name] = target
            if param.kind is _KINDS.VAR_POSITIONAL:
                self._var_pos = target
            if param.kind is _KINDS.VAR_KEYWORD:
                self._var_kw = target
        self._result = _target(signature.return_annotation)

    def label(self, argument: str) -> str:
        """Name an argument (an index as digits, or a keyword) in messages."""
        index = int(argument) if argument.isdigit() else len(self._names)
        name = self._names[index] if index < len(self._names) else None
        return arg_label(self._task, argument, name=name)

    def check_arity(self, args: Sequence[object], kwargs: Mapping[str, object]) -> None:
        """Raise :class:`PayloadError` if the arguments do not bind to the signature."""
        if self._signature is None or self._arity is None or self._arity.fits(args, kwargs):
            return
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise PayloadError(
                bounded(f"arguments of task {self._task!r} do not match its signature: {exc}"),
                task=self._task,
            ) from None

    def convert(
        self, args: list[Any], kwargs: dict[str, Any], convert: Convert, *, keep: bool = False
    ) -> None:
        """Check arity and convert each argument; with ``keep``, store the results.

        Raises:
            PayloadError: The arguments do not bind, or one does not convert (named).
        """
        self.check_arity(args, kwargs)
        for index, value in enumerate(args):
            target = self._positional[index] if index < len(self._positional) else self._var_pos
            if target is not None:
                converted = self._one(convert, value, target, str(index))
                if keep:
                    args[index] = converted
        for key, value in kwargs.items():
            target = self._keywords.get(key, self._var_kw)
            if target is not None:
                converted = self._one(convert, value, target, key)
                if keep:
                    kwargs[key] = converted

    def convert_result(self, value: object, convert: Convert) -> Any:
        """Return ``value`` converted to the return annotation (as-is without one)."""
        if self._result is None:
            return value
        return self._one(convert, value, self._result, None)

    def _one(self, convert: Convert, value: object, target: Any, argument: str | None) -> Any:
        try:
            return convert(value, target)
        except Exception as exc:  # noqa: BLE001  (user types validate too; every failure is a reason)
            label = f"result of task {self._task!r}" if argument is None else self.label(argument)
            reason = f"{label}: not a valid {_type_name(target)} ({exc})"
            raise PayloadError(bounded(reason), task=self._task, argument=argument) from None
