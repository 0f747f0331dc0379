"""Untrusted bytes (RELIABILITY T10): every malformed payload is a PayloadError with a reason.

Bad bytes, wrong envelopes, unknown task names, huge or deeply nested values, NaN, a
pickle blob: decode raises only :class:`taskmill.PayloadError`, never runs foreign code
and never imports anything a payload names.
"""

from __future__ import annotations

import copy
import json
import math
import os
import pickle
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import taskmill as tm
from taskmill.payloads import MsgpackSerializer, PayloadCodec, PayloadLimits, Signer

EXPLOITED: list[str] = []


def _exploit(*args: object) -> None:
    EXPLOITED.append(repr(args))


class Evil:
    """Unpickling this calls `_exploit`: the marker that foreign code ran."""

    def __reduce__(self) -> tuple[Callable[..., None], tuple[str]]:
        return _exploit, ("pwned",)


def add(x: int, y: int = 0) -> int:
    return x + y


def _registry() -> tm.TaskRegistry:
    registry = tm.TaskRegistry()
    registry.register(add, name="t")
    return registry


BASE: dict[str, Any] = {
    "version": 1,
    "id": "i",
    "task": "t",
    "args": [1],
    "kwargs": {},
    "options": {
        "priority": 0,
        "queue": "default",
        "timeout": None,
        "retry": None,
        "unique_key": None,
        "scheduled_at": None,
    },
    "trace": {},
    "attempt": {"number": 1, "enqueued_at": 0.0, "attempt_id": None},
}


def _with(path: str, value: object) -> dict[str, Any]:
    """Return BASE with the dotted ``path`` set to ``value`` (``...`` deletes it)."""
    doc = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    target = doc
    for key in parents:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return doc


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def _json(doc: object) -> bytes:
    return json.dumps(doc).encode()


# name -> (raw JSON bytes, expected reason regex)
JSON_CASES: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "malformed envelope: Input data was truncated"),
    "garbage": (b"\xff\xfe\x00garbage", "malformed envelope: JSON is malformed"),
    "not_utf8": (b'{"task": "\xff\xfe"}', "malformed envelope"),
    "array": (b"[1, 2]", "Expected `object`, got `array`"),
    "string": (b'"hello"', "Expected `object`, got `str`"),
    "null": (b"null", "Expected `object`, got `null`"),
    "trailing": (_json(BASE) + b"{}", "malformed envelope"),
    "missing_task": (_json(_with("task", ...)), "missing required field `task`"),
    "task_int": (_json(_with("task", 1)), r"Expected `str`, got `int` - at `\$.task`"),
    "task_spaces": (_json(_with("task", "os system")), r"at `\$.task`"),
    "task_too_long": (_json(_with("task", "x" * 201)), r"at `\$.task`"),
    "args_dict": (_json(_with("args", {})), r"Expected `array`, got `object` - at `\$.args`"),
    "kwargs_list": (_json(_with("kwargs", [])), r"at `\$.kwargs`"),
    "kwargs_empty_key": (_json(_with("kwargs", {"": 1})), r"at `key` in `\$.kwargs`"),
    "unknown_field": (_json(_with("extra", 1)), "unknown field `extra`"),
    "unknown_nested_field": (_json(_with("options.extra", 1)), "unknown field `extra`"),
    "version_2": (_json(_with("version", 2)), "unsupported envelope version 2 "),
    "version_2_other_shape": (b'{"version": 2, "payload": "x"}', "unsupported envelope version 2 "),
    "version_str": (_json(_with("version", "1")), "unsupported envelope version '1'"),
    "version_missing": (_json(_with("version", ...)), "missing required field `version`"),
    "attempt_zero": (_json(_with("attempt.number", 0)), r">= 1 - at `\$.attempt.number`"),
    "priority_huge": (_json(_with("options.priority", 2**63)), r"at `\$.options.priority`"),
    "timeout_zero": (_json(_with("options.timeout", 0)), r"> 0(\.0)? - at `\$.options.timeout`"),
    "timeout_negative": (_json(_with("options.timeout", -1.0)), r"at `\$.options.timeout`"),
    "scheduled_far": (_json(_with("options.scheduled_at", 1e300)), r"at `\$.options.scheduled_at`"),
    "retry_zero_attempts": (_json(_with("options.retry", {"max_attempts": 0})), "max_attempts"),
    "trace_int": (_json(_with("trace", {"k": 1})), r"at `\$.trace\[...\]`"),
    "trace_many": (_json(_with("trace", {str(i): "" for i in range(65)})), r"at `\$.trace`"),
    "id_empty": (_json(_with("id", "")), r"at `\$.id`"),
    "nan_literal": (_json(BASE).replace(b'"args": [1]', b'"args": [NaN]'), "JSON is malformed"),
    "infinity_literal": (_json(BASE).replace(b"[1]", b"[Infinity]"), "JSON is malformed"),
    "float_overflow": (
        _json(BASE).replace(b"[1]", b"[1e999]"),
        r"Number out of range - at `\$.args\[0\]`",
    ),
    "int_huge": (_json(BASE).replace(b"[1]", b"[" + b"9" * 5000 + b"]"), "out of range"),
    "int_over_64_bits": (_json(_with("args", [2**64])), "integer out of range"),
    "deep_100k": (
        _json(BASE).replace(b"[1]", b"[" * 100_000 + b"]" * 100_000),
        "nested too deeply",
    ),
    "deep_over_limit": (_json(_with("args", [_nested(33)])), "nested deeper than 32 levels"),
    "deep_in_kwargs": (
        _json(_with("kwargs", {"y": _nested(40)})),
        "argument 'y' of task 't': nested deeper",
    ),
    "too_large": (
        _json(_with("args", ["x" * (1024 * 1024)])),
        r"payload is \d+ bytes, over the limit of 1048576 bytes",
    ),
    "pickle_blob": (pickle.dumps(Evil()), "malformed envelope"),
    "pickle_blob_proto0": (pickle.dumps(Evil(), protocol=0), "malformed envelope"),
    "signed_without_signer": (
        b"tm1.k." + b"0" * 64 + b"." + _json(BASE),
        "signed but this codec has no signer",
    ),
    "unknown_task": (_json(_with("task", "os.system")), "unknown task 'os.system'"),
    "wrong_arg_type": (
        _json(_with("args", ["one"])),
        r"argument 'x' \(position 0\) of task 't': not a valid int",
    ),
    "wrong_arity": (
        _json(_with("args", [1, 2, 3])),
        "do not match its signature: too many positional",
    ),
    "unexpected_kwarg": (_json(_with("kwargs", {"z": 1})), "unexpected keyword argument 'z'"),
}


def _msgpack(doc: object) -> bytes:
    return msgspec.msgpack.encode(doc)


MSGPACK_CASES: dict[str, tuple[bytes, str]] = {
    "garbage": (b"\xc1\xc1\xc1", "malformed envelope"),
    "truncated": (_msgpack(BASE)[:-3], "truncated"),
    "huge_array_header": (b"\xdd\xff\xff\xff\xff", "malformed envelope"),
    "huge_str_header": (b"\x81\xa4task\xdb\xff\xff\xff\xff", "truncated"),
    "nan_arg": (
        _msgpack(_with("args", [math.nan])),
        "positional argument|argument 'x'.*nan is not allowed",
    ),
    "inf_timeout": (_msgpack(_with("options.timeout", math.inf)), r"at `\$.options.timeout`"),
    "nan_scheduled": (
        _msgpack(_with("options.scheduled_at", math.nan)),
        r"at `\$.options.scheduled_at`",
    ),
    "ext_type": (
        _msgpack(_with("args", [msgspec.msgpack.Ext(1, b"x")])),
        "values of type Ext are not allowed",
    ),
    "tuple_key": (
        _msgpack(BASE).replace(b"\xa4args\x91\x01", b"\xa4args\x91\x81\x92\x01\x02\x03"),
        "dict keys must be str or int",
    ),
    "pickle_blob": (pickle.dumps(Evil()), "malformed envelope"),
    "json_bytes": (_json(BASE), "malformed envelope"),
    "unknown_task": (_msgpack(_with("task", "subprocess.run")), "unknown task 'subprocess.run'"),
}


@pytest.fixture(autouse=True)
def _no_exploit() -> Any:
    EXPLOITED.clear()
    yield
    assert [] == EXPLOITED, "foreign code ran while decoding"


class TestMalformedJson:
    @pytest.mark.parametrize("case", list(JSON_CASES))
    def test_refused_with_reason(self, case: str) -> None:
        """Each malformed input raises PayloadError whose bounded reason says what is wrong."""
        data, reason = JSON_CASES[case]
        codec = PayloadCodec(_registry())
        with pytest.raises(tm.PayloadError, match=reason) as info:
            codec.decode(data)
        assert 0 < len(info.value.reason) <= 500

    def test_base_document_is_valid(self) -> None:
        """The table's base document itself decodes (so each case fails for its own reason)."""
        assert [1] == PayloadCodec(_registry()).decode(_json(BASE)).args

    @pytest.mark.parametrize("data", ["text", None, 12, ["x"]])
    def test_not_bytes(self, data: Any) -> None:
        """Anything but bytes-like input is a PayloadError."""
        with pytest.raises(tm.PayloadError, match="payload must be bytes"):
            PayloadCodec().decode(data)

    def test_bytearray_and_memoryview_are_accepted(self) -> None:
        """Bytes-like buffers decode like bytes."""
        codec = PayloadCodec(_registry())
        assert [1] == codec.decode(bytearray(_json(BASE))).args
        assert [1] == codec.decode(memoryview(_json(BASE))).args


class TestMalformedMsgpack:
    @pytest.mark.parametrize("case", list(MSGPACK_CASES))
    def test_refused_with_reason(self, case: str) -> None:
        """msgpack-specific hazards (NaN, inf, ext types, non-str keys) are refused too."""
        data, reason = MSGPACK_CASES[case]
        codec = PayloadCodec(_registry(), serializer=MsgpackSerializer())
        with pytest.raises(tm.PayloadError, match=reason):
            codec.decode(data)

    def test_base_document_is_valid(self) -> None:
        """The msgpack base document decodes."""
        codec = PayloadCodec(_registry(), serializer=MsgpackSerializer())
        assert [1] == codec.decode(_msgpack(BASE)).args


class TestNothingIsImported:
    @pytest.mark.parametrize(
        "name", ["os.system", "builtins.eval", "subprocess.run", "pickle.loads", "os:system"]
    )
    def test_importable_names_are_unknown_tasks(
        self, name: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A payload naming a real callable is refused as unknown; the callable never runs."""
        calls: list[object] = []
        monkeypatch.setattr(os, "system", calls.append)
        doc = _with("task", name)
        doc["args"] = ["touch /tmp/pwned"]
        with pytest.raises(tm.PayloadError, match=f"unknown task '{name}'") as info:
            PayloadCodec(_registry()).decode(_json(doc))
        assert isinstance(info.value.__cause__, tm.UnknownTask)
        assert [] == calls

    def test_a_module_named_by_a_payload_is_not_imported(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Naming an importable module's function imports nothing (no side effect runs)."""
        marker = tmp_path / "imported"
        module = tmp_path / "tm_payload_victim.py"
        module.write_text(f"open({str(marker)!r}, 'w').close()\ndef run(*a): pass\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        for codec in (PayloadCodec(_registry()), PayloadCodec(tm.TaskRegistry())):
            with pytest.raises(tm.PayloadError, match="unknown task"):
                codec.decode(_json(_with("task", "tm_payload_victim.run")))
        assert "tm_payload_victim" not in sys.modules
        assert not marker.exists()

    def test_without_registry_unknown_names_decode_but_run_nothing(self) -> None:
        """A registry-less codec (inspection tools) returns the envelope as data only."""
        envelope = PayloadCodec().decode(_json(_with("task", "os.system")))
        assert "os.system" == envelope.task


def _decode_or_refuse(codec: PayloadCodec, data: bytes) -> None:
    """Decode; a PayloadError is fine, any other exception fails the test."""
    try:
        codec.decode(data)
    except tm.PayloadError as exc:
        assert 0 < len(exc.reason) <= 500  # noqa: PT017  (any other exception must propagate)


CODECS = [
    PayloadCodec(_registry()),
    PayloadCodec(_registry(), serializer=MsgpackSerializer()),
    PayloadCodec(),
    PayloadCodec(serializer=MsgpackSerializer()),
    PayloadCodec(_registry(), signer=Signer(keys={"k": b"k" * 32}, current="k")),
]
JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=10)
    | st.binary(max_size=10)
    | st.sampled_from([*BASE, "t", "os.system", "NaN"]),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=8) | st.sampled_from(list(BASE)), inner, max_size=6)
    ),
    max_leaves=30,
)


def _encode_any(doc: object, fmt: str) -> bytes:
    if fmt == "json":
        return msgspec.json.encode(doc, enc_hook=repr)
    return msgspec.msgpack.encode(doc)


class TestFuzz:
    @settings(max_examples=300, deadline=None)
    @given(data=st.binary(max_size=200), codec=st.sampled_from(CODECS))
    def test_random_bytes(self, data: bytes, codec: PayloadCodec) -> None:
        """Random bytes never raise anything but PayloadError."""
        _decode_or_refuse(codec, data)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(doc=JSONISH, fmt=st.sampled_from(["json", "msgpack"]), codec=st.sampled_from(CODECS))
    def test_random_structures(self, doc: object, fmt: str, codec: PayloadCodec) -> None:
        """Random JSON-ish documents never raise anything but PayloadError."""
        try:
            data = _encode_any(doc, fmt)
        except (TypeError, ValueError, OverflowError):
            return
        _decode_or_refuse(codec, data)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        path=st.sampled_from(
            [
                "version",
                "id",
                "task",
                "args",
                "kwargs",
                "options",
                "options.priority",
                "options.queue",
                "options.timeout",
                "options.retry",
                "options.unique_key",
                "options.scheduled_at",
                "trace",
                "attempt",
                "attempt.number",
                "attempt.enqueued_at",
                "attempt.attempt_id",
            ]
        ),
        junk=JSONISH,
        fmt=st.sampled_from(["json", "msgpack"]),
        codec=st.sampled_from(CODECS),
    )
    def test_mutated_envelopes(
        self, path: str, junk: object, fmt: str, codec: PayloadCodec
    ) -> None:
        """A valid envelope with any one field replaced by junk is decoded or refused cleanly."""
        try:
            data = _encode_any(_with(path, junk), fmt)
        except (TypeError, ValueError, OverflowError):
            return
        _decode_or_refuse(codec, data)

    @settings(max_examples=200, deadline=None)
    @given(position=st.integers(min_value=0), byte=st.integers(0, 255))
    def test_single_byte_corruption(self, position: int, byte: int) -> None:
        """Corrupting any byte of a valid payload is decoded or refused cleanly."""
        codec = PayloadCodec(_registry(), serializer=MsgpackSerializer())
        data = bytearray(codec.encode(codec.build("t", [1], {"y": 2})))
        data[position % len(data)] = byte
        _decode_or_refuse(codec, bytes(data))


def test_ten_thousand_malformed_payloads_all_refused_with_reasons() -> None:
    """T10: 10,000 malformed payloads -> 10,000 PayloadErrors with reasons, 0 crashes."""
    rng = random.Random(10_000)
    json_codec = PayloadCodec(_registry(), limits=PayloadLimits(max_payload_bytes=64 * 1024))
    msgpack_codec = PayloadCodec(
        _registry(),
        serializer=MsgpackSerializer(),
        limits=PayloadLimits(max_payload_bytes=64 * 1024),
    )
    fixed = [(json_codec, data) for data, _ in JSON_CASES.values()]
    fixed += [(msgpack_codec, data) for data, _ in MSGPACK_CASES.values()]
    invalid: dict[str, list[object]] = {
        "version": [None, -1, "x y", [[]], 2],
        "task": [None, -1, "x y", [[]], "os.system"],
        "args": [None, -1, "x y", {"a": 1}, [[]]],
        "kwargs": [None, -1, "x y", {"a": 1}, [[]]],
        "options.timeout": [-1, "x y", [[]], {"a": 1}, 0],
        "attempt.number": [None, -1, "x y", 1.5, 0],
        "trace": [None, -1, "x y", {"a": 1}, [[]]],
    }
    reasons: list[str] = []
    for index in range(10_000):
        kind = index % 3
        if kind == 0:
            codec, data = fixed[rng.randrange(len(fixed))]
        elif kind == 1:
            codec, data = json_codec, rng.randbytes(rng.randrange(1, 64))
        else:
            path = rng.choice(list(invalid))
            codec, data = msgpack_codec, _msgpack(_with(path, rng.choice(invalid[path])))
        try:
            codec.decode(data)
        except tm.PayloadError as exc:
            reasons.append(exc.reason)
    assert 10_000 == len(reasons)
    assert all(0 < len(reason) <= 500 for reason in reasons)
    assert (
        10_000 == json_codec.statistics().decode_errors + msgpack_codec.statistics().decode_errors
    )
