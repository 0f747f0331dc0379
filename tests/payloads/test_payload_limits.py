"""PayloadLimits: sizes and nesting enforced at the boundary, on encode and on decode."""

from __future__ import annotations

from typing import Any

import pytest

import taskmill as tm
from taskmill.payloads import MsgpackSerializer, PayloadCodec, PayloadLimits, Signer

SERIALIZERS = [pytest.param(None, id="json"), pytest.param(MsgpackSerializer(), id="msgpack")]


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


class TestConfiguration:
    def test_defaults(self) -> None:
        """1 MiB payloads and results, 8 KiB error text, depth 32."""
        assert (1024 * 1024, 1024 * 1024, 8192, 32) == (
            PayloadLimits().max_payload_bytes,
            PayloadLimits().max_result_bytes,
            PayloadLimits().max_error_chars,
            PayloadLimits().max_depth,
        )

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("max_payload_bytes", 0),
            ("max_payload_bytes", 1.5),
            ("max_payload_bytes", True),
            ("max_result_bytes", -1),
            ("max_error_chars", 63),
            ("max_depth", 0),
            ("max_depth", 201),
            ("max_depth", "32"),
        ],
    )
    def test_invalid_limits(self, field: str, value: object) -> None:
        """Limits are positive ints; depth at most 200; error text at least 64 chars."""
        options: dict[str, Any] = {field: value}
        with pytest.raises(tm.ConfigurationError, match=field):
            PayloadLimits(**options)


class TestPayloadSize:
    @pytest.mark.parametrize("serializer", SERIALIZERS)
    @pytest.mark.parametrize("signed", [False, True])
    def test_exactly_the_limit_passes_one_byte_more_fails(
        self, serializer: Any, signed: bool
    ) -> None:
        """An envelope of exactly the limit encodes and decodes; with a limit one less it fails."""
        signer = Signer(keys={"k": b"k" * 32}, current="k") if signed else None
        envelope = PayloadCodec(serializer=serializer).build("t", ["x" * 1000], task_id="fixed")
        size = len(PayloadCodec(serializer=serializer).encode(envelope))
        exact = PayloadCodec(
            serializer=serializer, signer=signer, limits=PayloadLimits(max_payload_bytes=size)
        )
        assert envelope == exact.decode(exact.encode(envelope))
        tight = PayloadCodec(
            serializer=serializer, signer=signer, limits=PayloadLimits(max_payload_bytes=size - 1)
        )
        with pytest.raises(tm.PayloadTooLarge) as info:
            tight.encode(envelope)
        assert (size, size - 1) == (info.value.size, info.value.limit)
        assert f"payload is {size} bytes, over the limit of {size - 1} bytes" == info.value.reason
        assert "t" == info.value.task
        with pytest.raises(tm.PayloadTooLarge):
            tight.decode(exact.encode(envelope))

    def test_oversized_input_is_refused_before_any_parsing(self) -> None:
        """Junk over the limit is refused by size (PayloadTooLarge), not parsed."""
        codec = PayloadCodec(limits=PayloadLimits(max_payload_bytes=100))
        with pytest.raises(tm.PayloadTooLarge, match="payload is 101 bytes"):
            codec.decode(b"\xff" * 101)

    def test_signed_oversized_input_is_refused_before_hashing(self) -> None:
        """With a signer, input longer than limit + header is refused up front."""
        codec = PayloadCodec(
            limits=PayloadLimits(max_payload_bytes=100),
            signer=Signer(keys={"k": b"k" * 32}, current="k"),
        )
        with pytest.raises(tm.PayloadTooLarge):
            codec.decode(b"tm1." + b"x" * 500)


class TestResultSize:
    @pytest.mark.parametrize("serializer", SERIALIZERS)
    def test_exactly_the_limit_passes_one_byte_more_fails(self, serializer: Any) -> None:
        """Results are bounded by max_result_bytes, at encode and decode."""
        value = {"data": "y" * 500}
        size = len(PayloadCodec(serializer=serializer).encode_result(value))
        exact = PayloadCodec(serializer=serializer, limits=PayloadLimits(max_result_bytes=size))
        assert value == exact.decode_result(exact.encode_result(value))
        tight = PayloadCodec(serializer=serializer, limits=PayloadLimits(max_result_bytes=size - 1))
        with pytest.raises(
            tm.PayloadTooLarge, match=f"result is {size} bytes, over the limit of {size - 1}"
        ):
            tight.encode_result(value, task="t")
        with pytest.raises(tm.PayloadTooLarge):
            tight.decode_result(exact.encode_result(value))

    def test_result_limit_is_separate_from_payload_limit(self) -> None:
        """A small payload limit does not restrict results."""
        codec = PayloadCodec(limits=PayloadLimits(max_payload_bytes=300, max_result_bytes=10_000))
        assert "z" * 5000 == codec.decode_result(codec.encode_result("z" * 5000))


class TestDepth:
    @pytest.mark.parametrize("serializer", SERIALIZERS)
    @pytest.mark.parametrize("depth", [1, 5, 32])
    def test_exactly_max_depth_passes_one_more_fails(self, serializer: Any, depth: int) -> None:
        """Nesting of max_depth levels round-trips; max_depth + 1 fails at encode and decode."""
        codec = PayloadCodec(serializer=serializer, limits=PayloadLimits(max_depth=depth))
        assert [_nested(depth)] == codec.decode(
            codec.encode(codec.build("t", [_nested(depth)]))
        ).args
        with pytest.raises(
            tm.PayloadError,
            match=f"positional argument 0 of task 't': nested deeper than {depth} levels",
        ):
            codec.encode(codec.build("t", [_nested(depth + 1)]))
        deeper = PayloadCodec(serializer=serializer, limits=PayloadLimits(max_depth=depth + 1))
        with pytest.raises(tm.PayloadError, match="nested deeper"):
            codec.decode(deeper.encode(deeper.build("t", [_nested(depth + 1)])))

    def test_dicts_count_as_levels(self) -> None:
        """Dict nesting counts like list nesting."""
        codec = PayloadCodec(limits=PayloadLimits(max_depth=2))
        codec.encode(codec.build("t", [{"a": {"b": 1}}]))
        with pytest.raises(tm.PayloadError, match="argument 'k' of task 't': nested deeper than 2"):
            codec.encode(codec.build("t", [], {"k": {"a": {"b": [1]}}}))

    def test_max_allowed_depth_works(self) -> None:
        """The largest configurable depth (200) encodes and decodes without recursion trouble."""
        codec = PayloadCodec(limits=PayloadLimits(max_depth=200))
        assert [_nested(200)] == codec.decode(codec.encode(codec.build("t", [_nested(200)]))).args

    def test_result_depth(self) -> None:
        """Results obey max_depth too."""
        codec = PayloadCodec(limits=PayloadLimits(max_depth=3))
        with pytest.raises(tm.PayloadError, match="result of task 't': nested deeper than 3"):
            codec.encode_result(_nested(4), task="t")


class TestErrorText:
    def test_error_text_is_cut_to_max_error_chars(self) -> None:
        """Stored message and traceback are each at most max_error_chars, with a marker."""
        codec = PayloadCodec(limits=PayloadLimits(max_error_chars=200))
        try:
            raise ValueError("v" * 10_000)
        except ValueError as exc:
            info = codec.decode_error(codec.encode_error(exc))
        assert 200 == len(info.message) == len(info.traceback)
        assert "chars truncated]" in info.message

    def test_over_long_stored_error_is_truncated_on_decode(self) -> None:
        """A record written with a larger limit is cut to this codec's limit when read."""
        wide = PayloadCodec(limits=PayloadLimits(max_error_chars=5000))
        narrow = PayloadCodec(limits=PayloadLimits(max_error_chars=100))
        info = narrow.decode_error(wide.encode_error(ValueError("e" * 4000)))
        assert 100 == len(info.message)

    def test_oversized_error_record_is_refused(self) -> None:
        """An error record over max(max_result_bytes, 12 * max_error_chars + 64) is refused."""
        codec = PayloadCodec(limits=PayloadLimits(max_error_chars=64, max_result_bytes=1000))
        with pytest.raises(
            tm.PayloadTooLarge, match="error is 10000 bytes, over the limit of 1000"
        ):
            codec.decode_error(b"x" * 10_000)

    @pytest.mark.parametrize(
        "data", [b"", b"[1]", b'{"type": 1, "message": "m"}', b'{"message": "m"}']
    )
    def test_malformed_error_record(self, data: bytes) -> None:
        """Junk error records raise PayloadError, never reconstruct anything."""
        with pytest.raises(tm.PayloadError, match="malformed error record"):
            PayloadCodec().decode_error(data)

    @pytest.mark.parametrize("data", [b"", b"[", b"NaN", b"[" * 10_000 + b"]" * 10_000])
    def test_malformed_result(self, data: bytes) -> None:
        """Junk results raise PayloadError."""
        with pytest.raises(tm.PayloadError, match="malformed result"):
            PayloadCodec().decode_result(data)
