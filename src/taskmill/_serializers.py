"""Serializers (msgspec JSON and msgpack, never pickle), payload limits and value checks.

Only plain data crosses the wire. Before encoding, every argument is reduced to
*builtins* (``None``, ``bool``, ``int``, ``float``, ``str``, ``list``, ``dict`` with
``str`` or ``int`` keys, plus ``bytes`` for msgpack) with :func:`msgspec.to_builtins`;
decoding yields exactly those types. The same :func:`check_tree` runs on both
sides, so whatever ``encode`` accepts, ``decode`` accepts too.

This module imports msgspec; :mod:`taskmill` does not import it.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from typing import Any, Final, Protocol, final, runtime_checkable

import msgspec

from ._errors import ConfigurationError

__all__ = [
    "MAX_DEPTH_LIMIT",
    "JsonSerializer",
    "MsgpackSerializer",
    "PayloadLimits",
    "Serializer",
    "check_tree",
]

MAX_DEPTH_LIMIT: Final = 200
"""The largest ``max_depth`` allowed (well under Python's recursion limit)."""

_MIB: Final = 1024 * 1024
_INT_MIN: Final = -(2**63)  # what msgpack can carry; JSON is held to the same range
_INT_MAX: Final = 2**64 - 1


@final
@dataclass(frozen=True, kw_only=True, slots=True)
class PayloadLimits:
    """Bounds on what is encoded, stored and decoded.

    Args:
        max_payload_bytes: Largest encoded envelope (signature header excluded).
        max_result_bytes: Largest encoded result.
        max_error_chars: Longest stored error message and traceback text (each);
            longer text is cut with a ``[... N chars truncated]`` marker.
        max_depth: Deepest nesting of lists and dicts inside one argument or
            result (a scalar is depth 0, ``[1]`` depth 1), at most 200.

    Raises:
        ConfigurationError: A limit is not a positive int (or ``max_depth`` > 200).
    """

    max_payload_bytes: int = _MIB
    max_result_bytes: int = _MIB
    max_error_chars: int = 8 * 1024
    max_depth: int = 32

    def __post_init__(self) -> None:
        for name in ("max_payload_bytes", "max_result_bytes", "max_error_chars", "max_depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be an int >= 1, got {value!r}")
        if self.max_error_chars < 64:
            raise ConfigurationError(
                f"max_error_chars must be >= 64 (room for the truncation marker), "
                f"got {self.max_error_chars!r}"
            )
        if self.max_depth > MAX_DEPTH_LIMIT:
            raise ConfigurationError(
                f"max_depth must be <= {MAX_DEPTH_LIMIT}, got {self.max_depth!r}"
            )


@runtime_checkable
class Serializer(Protocol):
    """Turns builtins into bytes and back (msgspec JSON and msgpack ship).

    Implementations raise :class:`TypeError` or :class:`ValueError` (msgspec's
    errors are ``ValueError`` subclasses) for anything they cannot handle; the codec
    turns those into :class:`~taskmill.PayloadError`.
    """

    @property
    def name(self) -> str:
        """A short name: ``"json"``, ``"msgpack"``."""
        ...

    def encode(self, value: object) -> bytes:
        """Return ``value`` (builtins or msgspec Structs) as bytes."""
        ...

    def decode(self, data: bytes, kind: Any) -> Any:
        """Return ``data`` decoded and validated as ``kind`` (a type or ``Any``)."""
        ...

    def to_builtins(self, value: object) -> object:
        """Return ``value`` reduced to the builtins :meth:`decode` would produce."""
        ...

    def convert(self, value: object, kind: Any) -> Any:
        """Return decoded builtins converted to the annotated type ``kind``."""
        ...


class _MsgspecSerializer:
    __slots__ = ("_decoders",)

    def __init__(self) -> None:
        self._decoders: dict[Any, Any] = {}

    def _decoder(self, kind: Any) -> Any:
        raise NotImplementedError

    def decode(self, data: bytes, kind: Any) -> Any:
        """Return ``data`` decoded and validated as ``kind`` (a type or ``Any``)."""
        decoder = self._decoders.get(kind)
        if decoder is None:
            decoder = self._decoders[kind] = self._decoder(kind)
        return decoder.decode(data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@final
class JsonSerializer(_MsgspecSerializer):
    """msgspec JSON (the default): readable, compact, portable.

    ``bytes`` travel as base64 strings, ``datetime``/``UUID``/``Decimal`` as
    strings; a parameter annotated with such a type gets it back on decode.
    """

    __slots__ = ("_encoder",)

    name: Final = "json"

    def __init__(self) -> None:
        super().__init__()
        self._encoder = msgspec.json.Encoder()

    def _decoder(self, kind: Any) -> Any:
        return msgspec.json.Decoder(kind)

    def encode(self, value: object) -> bytes:
        """Return ``value`` as JSON bytes."""
        return self._encoder.encode(value)

    def to_builtins(self, value: object) -> object:
        """Return ``value`` as JSON-ready builtins (dict keys become strings)."""
        return msgspec.to_builtins(value, str_keys=True)

    def convert(self, value: object, kind: Any) -> Any:
        """Return ``value`` converted to ``kind`` (string keys may become ints...)."""
        return msgspec.convert(value, kind, str_keys=True)


_BINARY: Final = (bytes, bytearray, memoryview)


@final
class MsgpackSerializer(_MsgspecSerializer):
    """msgspec msgpack: smaller and faster than JSON; ``bytes`` travel as-is."""

    __slots__ = ("_encoder",)

    name: Final = "msgpack"

    def __init__(self) -> None:
        super().__init__()
        self._encoder = msgspec.msgpack.Encoder()

    def _decoder(self, kind: Any) -> Any:
        return msgspec.msgpack.Decoder(kind)

    def encode(self, value: object) -> bytes:
        """Return ``value`` as msgpack bytes."""
        return self._encoder.encode(value)

    def to_builtins(self, value: object) -> object:
        """Return ``value`` as msgpack-ready builtins (binary data kept)."""
        return msgspec.to_builtins(value, builtin_types=_BINARY)

    def convert(self, value: object, kind: Any) -> Any:
        """Return ``value`` converted to ``kind``."""
        return msgspec.convert(value, kind)


_PLAIN_TYPES: Final[tuple[type, ...]] = (
    str,
    bool,
    type(None),
    bytes,
    bytearray,
    memoryview,
    _dt.datetime,
)
_PLAIN: Final = frozenset(_PLAIN_TYPES)
_NESTED: Final = (list, tuple, dict)  # to_builtins keeps tuples; they encode as arrays


_STR_ONLY: Final = frozenset({str})


def _scalar_problem(item: object) -> str | None:
    if isinstance(item, float):
        return None if math.isfinite(item) else f"{item!r} is not allowed (non-finite float)"
    if isinstance(item, int):
        return None if _INT_MIN <= item <= _INT_MAX else "integer out of range (-2**63 .. 2**64-1)"
    if isinstance(item, _PLAIN_TYPES):
        return None
    return f"values of type {type(item).__name__} are not allowed"


def _keys_problem(mapping: dict[Any, Any]) -> str | None:
    if _STR_ONLY.issuperset(map(type, mapping)):
        return None
    for key in mapping:
        if type(key) is not str and (not isinstance(key, int) or not _INT_MIN <= key <= _INT_MAX):
            return f"dict keys must be str or int, got {type(key).__name__}"
    return None


def _children(level: list[Any]) -> tuple[list[Any], str | None]:
    """Return the containers one level down, or the first problem found on this level."""
    nested: list[Any] = []
    for item in level:
        if isinstance(item, dict):
            problem = _keys_problem(item)
            if problem is not None:
                return nested, problem
            item = item.values()  # noqa: PLW2901  (the values are what is walked)
        for child in item:
            kind = type(child)
            if kind in _PLAIN:
                continue
            if kind is int:
                if _INT_MIN <= child <= _INT_MAX:
                    continue
            elif kind is float:
                if child - child == 0.0:  # finite (inf - inf and nan are nan)
                    continue
            elif kind is list or kind is dict or kind is tuple or isinstance(child, _NESTED):
                nested.append(child)
                continue
            problem = _scalar_problem(child)
            if problem is not None:
                return nested, problem
    return nested, None


def check_tree(value: object, max_depth: int) -> str | None:
    """Return what is wrong with a builtins tree, or None when it is acceptable.

    Accepted: ``None``, ``bool``, ``int`` in ``[-2**63, 2**64-1]``, finite ``float``,
    ``str``, ``bytes``, ``datetime`` (msgpack timestamps), lists (and tuples), and
    dicts with ``str``/``int`` keys, nested at most ``max_depth`` levels (a scalar
    is depth 0). Walked level by level, so hostile nesting cannot exhaust the stack.
    """
    if type(value) in _PLAIN:
        return None
    if not isinstance(value, _NESTED):
        return _scalar_problem(value)
    level, depth = [value], 1
    while level:
        if depth > max_depth:
            return f"nested deeper than {max_depth} levels"
        level, problem = _children(level)
        if problem is not None:
            return problem
        depth += 1
    return None
