"""PayloadCodec round trips, building envelopes, argument errors, results and ErrorInfo."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import math
import uuid
from typing import Any, Literal, NamedTuple

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import taskmill as tm
from taskmill.payloads import (
    AttemptInfo,
    Envelope,
    EnvelopeOptions,
    ErrorInfo,
    JsonSerializer,
    MsgpackSerializer,
    PayloadCodec,
    PayloadLimits,
    RetrySummary,
    Serializer,
)

UTC = dt.UTC
SERIALIZERS = [
    pytest.param(JsonSerializer(), id="json"),
    pytest.param(MsgpackSerializer(), id="msgpack"),
]


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: float


class Size(msgspec.Struct, frozen=True):
    width: int
    height: int


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Pair(NamedTuple):
    left: str
    right: int


def _echo(value: Any) -> Any:
    return value


# kind -> (annotation, value): each must round-trip exactly when the parameter is annotated.
KINDS: dict[str, tuple[Any, Any]] = {
    "none": (None, None),
    "bool": (bool, True),
    "int": (int, -(2**63)),
    "uint64": (int, 2**64 - 1),
    "float": (float, 0.1),
    "negative_zero": (float, -0.0),
    "str": (str, "héllo \u2603 \x00"),
    "bytes": (bytes, b"\x00\xffbinary"),
    "list": (list[int], [1, 2, 3]),
    "dict": (dict[str, list[int]], {"a": [1], "b": []}),
    "int_keys": (dict[int, str], {1: "one", 2: "two"}),
    "tuple": (tuple[int, str], (1, "x")),
    "set": (set[str], {"a", "b"}),
    "frozenset": (frozenset[int], frozenset({1, 2})),
    "aware_datetime": (dt.datetime, dt.datetime(2030, 1, 2, 3, 4, 5, 6, tzinfo=UTC)),
    "offset_datetime": (
        dt.datetime,
        dt.datetime(2030, 1, 2, 3, 4, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    ),
    "naive_datetime": (dt.datetime, dt.datetime(2030, 1, 2, 3, 4, 5)),  # noqa: DTZ001  (user data)
    "date": (dt.date, dt.date(2030, 1, 2)),
    "time": (dt.time, dt.time(9, 30)),
    "timedelta": (dt.timedelta, dt.timedelta(days=1, seconds=3.5)),
    "uuid": (uuid.UUID, uuid.UUID("12345678-1234-5678-1234-567812345678")),
    "decimal": (decimal.Decimal, decimal.Decimal("3.14159265358979323846")),
    "dataclass": (Point, Point(1, 2.5)),
    "struct": (Size, Size(width=3, height=4)),
    "enum": (Color, Color.BLUE),
    "int_enum": (Level, Level.HIGH),
    "named_tuple": (Pair, Pair("a", 1)),
    "literal": (Literal["a", "b"], "b"),
    "optional": (int | None, None),
    "union": (int | str, "x"),
    "nested": (list[dict[str, Point]], [{"p": Point(0, 0.0)}]),
}


def _task_with(annotation: Any) -> Any:
    def task(value: Any, *, other: Any = None) -> Any:
        return value

    task.__annotations__ = {"value": annotation, "other": annotation, "return": annotation}
    return task


def _codec(serializer: Serializer | None = None, /, **tasks: Any) -> PayloadCodec:
    registry = tm.TaskRegistry()
    for name, fn in tasks.items():
        registry.register(fn, name=name)
    return PayloadCodec(registry, serializer=serializer)


class TestRoundTrip:
    @pytest.mark.parametrize("serializer", SERIALIZERS)
    @pytest.mark.parametrize("kind", list(KINDS))
    def test_annotated_arguments_round_trip_exactly(
        self, serializer: Serializer, kind: str
    ) -> None:
        """Every supported kind comes back equal (and of the same type) as arg and kwarg."""
        annotation, value = KINDS[kind]
        codec = _codec(serializer, t=_task_with(annotation))
        envelope = codec.decode(codec.encode(codec.build("t", [value], {"other": value})))
        assert [value] == envelope.args
        assert {"other": value} == envelope.kwargs
        assert type(value) is type(envelope.args[0])

    @pytest.mark.parametrize("serializer", SERIALIZERS)
    @pytest.mark.parametrize("kind", list(KINDS))
    def test_annotated_results_round_trip_exactly(self, serializer: Serializer, kind: str) -> None:
        """Results convert to the task's return annotation."""
        annotation, value = KINDS[kind]
        codec = _codec(serializer, t=_task_with(annotation))
        assert value == codec.decode_result(codec.encode_result(value, task="t"), task="t")

    @pytest.mark.parametrize(
        ("serializer", "value", "wire"),
        [
            (JsonSerializer(), dt.datetime(2030, 1, 1, tzinfo=UTC), "2030-01-01T00:00:00Z"),
            (JsonSerializer(), b"\x01\x02", "AQI="),
            (JsonSerializer(), (1, 2), [1, 2]),
            (JsonSerializer(), {1: "a"}, {"1": "a"}),
            (JsonSerializer(), Point(1, 2.0), {"x": 1, "y": 2.0}),
            (JsonSerializer(), Color.RED, "red"),
            (JsonSerializer(), decimal.Decimal("1.5"), "1.5"),
            (MsgpackSerializer(), b"\x01\x02", b"\x01\x02"),
            (MsgpackSerializer(), {1: "a"}, {1: "a"}),
            (MsgpackSerializer(), dt.date(2030, 1, 2), "2030-01-02"),
        ],
    )
    def test_without_annotation_the_wire_form_comes_back(
        self, serializer: Serializer, value: object, wire: object
    ) -> None:
        """Unannotated parameters get the JSON/msgpack form, as documented."""
        codec = _codec(serializer, t=_echo)
        assert [wire] == codec.decode(codec.encode(codec.build("t", [value]))).args

    @pytest.mark.parametrize("serializer", SERIALIZERS)
    def test_without_registry_arguments_stay_in_wire_form(self, serializer: Serializer) -> None:
        """A codec without a registry references tasks by name and converts nothing."""
        codec = PayloadCodec(serializer=serializer)
        when = dt.datetime(2030, 1, 1, tzinfo=UTC)
        envelope = codec.decode(codec.encode(codec.build("anything.at_all", [when], {"n": 1})))
        assert ("anything.at_all", ["2030-01-01T00:00:00Z"], {"n": 1}) == (
            envelope.task,
            envelope.args,
            envelope.kwargs,
        )

    @pytest.mark.parametrize("serializer", SERIALIZERS)
    def test_envelope_fields_round_trip(self, serializer: Serializer) -> None:
        """Every field (options, trace, attempt) survives encode/decode unchanged."""
        codec = PayloadCodec(serializer=serializer)
        envelope = Envelope(
            version=Envelope.VERSION,
            id="task-1",
            task="t",
            args=[1],
            kwargs={"k": "v"},
            options=EnvelopeOptions(
                priority=-5,
                queue="q",
                timeout=1.5,
                retry=RetrySummary(max_attempts=None, timeout=2.0, deadline=30.0),
                unique_key="u",
                scheduled_at=1.9e9,
            ),
            trace={"traceparent": "00-abc-def-01"},
            attempt=AttemptInfo(number=3, enqueued_at=1.8e9, attempt_id="a-7"),
        )
        assert envelope == codec.decode(codec.encode(envelope))

    def test_json_wire_format_is_pinned(self) -> None:
        """The version-1 JSON schema does not change by accident."""
        envelope = Envelope(
            version=1, id="i", task="t", args=[1], attempt=AttemptInfo(enqueued_at=5.0)
        )
        expected = (
            b'{"version":1,"id":"i","task":"t","args":[1],"kwargs":{},"options":'
            b'{"priority":0,"queue":"default","timeout":null,"retry":null,"unique_key":null,'
            b'"scheduled_at":null},"trace":{},"attempt":{"number":1,"enqueued_at":5.0,'
            b'"attempt_id":null}}'
        )
        assert expected == PayloadCodec().encode(envelope)


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
MSGPACK_VALUES = st.recursive(
    JSON_SCALARS | st.binary(max_size=16),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.integers(-10, 10), inner, max_size=4)
    ),
    max_leaves=20,
)


class TestRoundTripProperties:
    @settings(max_examples=60, deadline=None)
    @given(
        args=st.lists(JSON_VALUES, max_size=4),
        kwargs=st.dictionaries(
            st.from_regex(r"[a-z]{1,8}", fullmatch=True), JSON_VALUES, max_size=3
        ),
    )
    def test_json_builtins_round_trip(self, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Any tree of JSON builtins decodes to an equal tree."""
        codec = PayloadCodec()
        envelope = codec.decode(codec.encode(codec.build("t", args, kwargs)))
        assert (args, kwargs) == (envelope.args, envelope.kwargs)

    @settings(max_examples=60, deadline=None)
    @given(args=st.lists(MSGPACK_VALUES, max_size=4))
    def test_msgpack_builtins_round_trip(self, args: list[Any]) -> None:
        """msgpack keeps bytes and int keys."""
        codec = PayloadCodec(serializer=MsgpackSerializer())
        assert args == codec.decode(codec.encode(codec.build("t", args))).args

    @settings(max_examples=120, deadline=None)
    @given(
        value=st.recursive(
            st.none()
            | st.integers()
            | st.floats()
            | st.text(max_size=5)
            | st.binary(max_size=5)
            | st.sampled_from([object(), {1, 2}, (1,), dt.date(2030, 1, 1), Point(1, math.nan)]),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=3) | st.integers(), inner, max_size=3)
            ),
            max_leaves=10,
        ),
        serializer=st.sampled_from([JsonSerializer(), MsgpackSerializer()]),
    )
    def test_what_encodes_also_decodes(self, value: object, serializer: Serializer) -> None:
        """Encode either refuses (PayloadError) or produces bytes that decode."""
        codec = PayloadCodec(serializer=serializer, limits=PayloadLimits(max_depth=3))
        try:
            data = codec.encode(codec.build("t", [value]))
        except tm.PayloadError:
            return
        codec.decode(data)


async def send(to: str, when: dt.datetime, *, cc: list[str] | None = None) -> int:
    return 1


def collect(*items: int, **named: float) -> None:
    return None


class TestArgumentErrors:
    @pytest.mark.parametrize("serializer", SERIALIZERS)
    @pytest.mark.parametrize(
        ("args", "kwargs", "argument", "message"),
        [
            (
                ["a", object()],
                {},
                "1",
                "argument 'when' (position 1) of task 'mail.send': object is not serializable",
            ),
            (
                ["a"],
                {"when": lambda: 1},
                "when",
                "argument 'when' of task 'mail.send': function is not serializable",
            ),
            (
                ["a", "not a date"],
                {},
                "1",
                "argument 'when' (position 1) of task 'mail.send': not a valid datetime",
            ),
            (
                ["a", dt.datetime(2030, 1, 1, tzinfo=UTC)],
                {"cc": [1]},
                "cc",
                "argument 'cc' of task 'mail.send': not a valid list[str] | None",
            ),
            (
                ["a", dt.datetime(2030, 1, 1, tzinfo=UTC)],
                {"cc": [math.inf]},
                "cc",
                "argument 'cc' of task 'mail.send': inf is not allowed (non-finite float)",
            ),
        ],
    )
    def test_error_names_the_argument(
        self,
        serializer: Serializer,
        args: list[Any],
        kwargs: dict[str, Any],
        argument: str,
        message: str,
    ) -> None:
        """Encode fails at submit with the argument (index or keyword) and its problem."""
        codec = _codec(serializer, **{"mail.send": send})
        with pytest.raises(tm.PayloadError) as info:
            codec.encode(codec.build(send, args, kwargs))
        assert info.value.reason.startswith(message), info.value.reason
        assert (argument, "mail.send") == (info.value.argument, info.value.task)

    @pytest.mark.parametrize(
        ("args", "kwargs", "match"),
        [
            ([], {}, "missing a required argument: 'to'"),
            (["a", "b", "c"], {}, "too many positional arguments"),
            (["a", "b"], {"bcc": []}, "got an unexpected keyword argument 'bcc'"),
        ],
    )
    def test_arguments_must_fit_the_signature(
        self, args: list[Any], kwargs: dict[str, Any], match: str
    ) -> None:
        """Arity is checked at encode against the registered function."""
        codec = _codec(**{"mail.send": send})
        with pytest.raises(tm.PayloadError, match=f"do not match its signature: {match}"):
            codec.encode(codec.build("mail.send", args, kwargs))

    def test_var_positional_and_var_keyword_annotations_apply_to_each_item(self) -> None:
        """`*items: int` and `**named: float` check (and convert) every extra argument."""
        codec = _codec(c=collect)
        assert [1, 2] == codec.decode(codec.encode(codec.build("c", [1, 2], {"x": 1}))).args
        with pytest.raises(
            tm.PayloadError, match="positional argument 2 of task 'c': not a valid int"
        ):
            codec.encode(codec.build("c", [1, 2, "3"]))
        with pytest.raises(tm.PayloadError, match="argument 'y' of task 'c': not a valid float"):
            codec.encode(codec.build("c", [], {"y": "1"}))

    @pytest.mark.parametrize(
        ("value", "match"),
        [
            (math.nan, "nan is not allowed"),
            ([1.0, [2.0, -math.inf]], "-inf is not allowed"),
            ({"k": math.nan}, "nan is not allowed"),
            (Point(1, math.nan), "nan is not allowed"),
            (2**64, "integer out of range"),
            (-(2**63) - 1, "integer out of range"),
            ({(1, 2): 3}, "keys"),
        ],
    )
    def test_values_json_cannot_carry_faithfully_are_refused(
        self, value: object, match: str
    ) -> None:
        """NaN/inf (JSON would turn them into null), huge ints and tuple keys fail at encode."""
        codec = PayloadCodec()
        with pytest.raises(tm.PayloadError, match=match):
            codec.encode(codec.build("t", [value]))

    @pytest.mark.parametrize("serializer", SERIALIZERS)
    def test_lone_surrogate_names_the_argument(self, serializer: Serializer) -> None:
        """A str UTF-8 cannot carry fails at encode, naming the argument."""
        codec = _codec(serializer, t=_echo)
        with pytest.raises(
            tm.PayloadError, match="argument 'value' \\(position 0\\) of task 't': cannot"
        ):
            codec.encode(codec.build("t", ["bad \udc80"]))

    def test_cycle_is_refused(self) -> None:
        """A self-referencing list is an error at encode, not a crash."""
        value: list[Any] = []
        value.append(value)
        codec = PayloadCodec()
        with pytest.raises(
            tm.PayloadError, match="positional argument 0 of task 't': nested too deeply"
        ):
            codec.encode(codec.build("t", [value]))

    def test_unregistered_name_with_registry_fails_at_encode(self) -> None:
        """A codec with a registry refuses names it does not know, at submit."""
        codec = _codec(t=_echo)
        envelope = PayloadCodec().build("other", [])
        with pytest.raises(tm.UnknownTask):
            codec.encode(envelope)

    def test_not_an_envelope(self) -> None:
        """encode() takes an Envelope."""
        with pytest.raises(tm.ConfigurationError):
            PayloadCodec().encode({"task": "t"})  # type: ignore[arg-type]

    def test_invalid_header_field_fails_at_encode(self) -> None:
        """Hand-built envelopes are validated like decoded ones (no asymmetric accept)."""
        envelope = Envelope(
            version=1, id="has space", task="t", attempt=AttemptInfo(enqueued_at=0.0)
        )
        with pytest.raises(tm.PayloadError, match=r"envelope of task 't':.*\$\.id"):
            PayloadCodec().encode(envelope)


class TestBuild:
    async def test_defaults_come_from_the_registration(self) -> None:
        """Registered priority, queue, timeout, retry and unique key fill unset options."""
        registry = tm.TaskRegistry()
        registry.register(
            send,
            name="mail.send",
            priority=4,
            queue="mail",
            timeout=30.0,
            retry=tm.Retry(max_attempts=7, timeout=5.0),
            unique_key=lambda to, when, **_: f"mail:{to}",
        )
        envelope = PayloadCodec(registry).build(send, ["a@b", dt.datetime(2030, 1, 1, tzinfo=UTC)])
        assert (
            EnvelopeOptions(
                priority=4,
                queue="mail",
                timeout=30.0,
                retry=RetrySummary(max_attempts=7, timeout=5.0, deadline=None),
                unique_key="mail:a@b",
            )
            == envelope.options
        )
        assert ("mail.send", 1) == (envelope.task, envelope.attempt.number)

    def test_explicit_options_win(self) -> None:
        """Values passed to build() override the registered defaults."""
        registry = tm.TaskRegistry()
        registry.register(
            send, name="mail.send", priority=4, queue="mail", timeout=30.0, unique_key="k"
        )
        envelope = PayloadCodec(registry).build(
            "mail.send",
            priority=0,
            queue="urgent",
            timeout=math.inf,
            unique_key="mine",
            retry=tm.Retry.never(),
        )
        assert (
            EnvelopeOptions(
                priority=0,
                queue="urgent",
                timeout=None,
                retry=RetrySummary(max_attempts=1),
                unique_key="mine",
            )
            == envelope.options
        )

    async def test_ids_and_times(self) -> None:
        """Default id is 32 hex chars; enqueued_at and delay follow the (virtual) wall clock."""
        codec = PayloadCodec()
        now = tm._clock.wall_time()
        envelope = codec.build("t", delay=60.0, task_id=None)
        assert 32 == len(envelope.id)
        int(envelope.id, 16)
        assert now == envelope.attempt.enqueued_at
        assert now + 60.0 == envelope.options.scheduled_at
        assert "given" == codec.build("t", task_id="given").id

    def test_at_must_be_aware(self) -> None:
        """`at` takes an aware datetime (-> POSIX seconds); naive or with delay is refused."""
        codec = PayloadCodec()
        at = dt.datetime(2030, 1, 1, tzinfo=UTC)
        assert at.timestamp() == codec.build("t", at=at).options.scheduled_at
        with pytest.raises(tm.ConfigurationError, match="aware"):
            codec.build("t", at=dt.datetime(2030, 1, 1))  # noqa: DTZ001
        with pytest.raises(tm.ConfigurationError, match="either delay or at"):
            codec.build("t", at=at, delay=1.0)

    @pytest.mark.parametrize(
        "options",
        [
            {"priority": "1"},
            {"queue": "a b"},
            {"timeout": 0},
            {"retry": 3},
            {"unique_key": ""},
            {"delay": -1.0},
            {"trace": {"k": 1}},
        ],
    )
    def test_invalid_options_raise_configuration_error(self, options: dict[str, Any]) -> None:
        """Bad options fail at build() with ConfigurationError."""
        with pytest.raises(tm.ConfigurationError):
            PayloadCodec().build("t", **options)

    def test_invalid_task_name_is_refused(self) -> None:
        """A name that could never be registered is refused at build()."""
        with pytest.raises(tm.ConfigurationError, match="task name"):
            PayloadCodec().build("os system")

    def test_callable_needs_a_registry(self) -> None:
        """Without a registry a callable cannot be resolved: UnknownTask with a hint."""
        with pytest.raises(tm.UnknownTask, match="needs a codec with a TaskRegistry"):
            PayloadCodec().build(send)

    def test_unregistered_callable_fails_at_build(self) -> None:
        """With a registry, an unregistered callable raises UnknownTask saying how to register."""
        with pytest.raises(tm.UnknownTask, match=r"registry\.task"):
            PayloadCodec(tm.TaskRegistry()).build(send)

    def test_trace_is_copied(self) -> None:
        """Trace context travels as a str->str dict."""
        trace = {"traceparent": "00-1-2-01"}
        envelope = PayloadCodec().build("t", trace=trace)
        assert trace == envelope.trace
        assert trace is not envelope.trace


class TestRetrySummary:
    def test_apply_to_keeps_code_and_takes_numbers(self) -> None:
        """Backoff and retry_on come from the registered policy, numbers from the payload."""
        registered = tm.Retry(max_attempts=3, backoff=tm.Constant(2.0), retry_on=KeyError)
        applied = RetrySummary(max_attempts=9, timeout=1.0, deadline=50.0).apply_to(registered)
        assert (9, 1.0, 50.0) == (applied.max_attempts, applied.timeout, applied.deadline)
        assert (tm.Constant(2.0), KeyError) == (applied.backoff, applied.retry_on)

    def test_from_retry(self) -> None:
        """from_retry takes max_attempts, timeout and deadline."""
        summary = RetrySummary.from_retry(tm.Retry(max_attempts=None, timeout=1.0, deadline=9.0))
        assert RetrySummary(max_attempts=None, timeout=1.0, deadline=9.0) == summary


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no")


class TestErrorInfo:
    def test_builtin_and_qualified_type_names(self) -> None:
        """Builtins are bare (`ValueError`), others `module.QualName`."""
        assert "ValueError" == ErrorInfo.from_exception(ValueError("x")).type
        assert "taskmill.TaskTimeout" == ErrorInfo.from_exception(tm.TaskTimeout(1.0)).type
        assert f"{__name__}.BadStr" == ErrorInfo.from_exception(BadStr()).type

    def test_message_and_traceback_text(self) -> None:
        """The message is str(exc); the traceback is the formatted text with the frame."""
        try:
            raise KeyError("missing")
        except KeyError as exc:
            info = ErrorInfo.from_exception(exc)
        assert "'missing'" == info.message
        assert "Traceback (most recent call last)" in info.traceback
        assert "test_message_and_traceback_text" in info.traceback

    def test_unprintable_exception(self) -> None:
        """A broken __str__ gives a placeholder message instead of raising."""
        assert "<unprintable BadStr object>" == ErrorInfo.from_exception(BadStr()).message

    def test_exception_group_keeps_members(self) -> None:
        """An ExceptionGroup's traceback text names each member."""
        group = ExceptionGroup("two", [ValueError("a"), KeyError("b")])
        info = ErrorInfo.from_exception(group)
        assert "ExceptionGroup" == info.type
        assert "ValueError: a" in info.traceback
        assert "KeyError: 'b'" in info.traceback

    @pytest.mark.parametrize("limit", [64, 100, 8192])
    def test_truncation_keeps_message_head_and_traceback_tail(self, limit: int) -> None:
        """Long text is cut to exactly the limit with a marker counting what was removed."""
        info = ErrorInfo(
            type="T", message="m" * 10_000 + "END", traceback="START" + "t" * 10_000
        ).truncated(limit)
        assert limit == len(info.message) == len(info.traceback)
        assert info.message.startswith("mmm")
        assert info.message.endswith(" chars truncated]")
        assert info.traceback.startswith("[... ")
        assert info.traceback.endswith("ttt")
        removed = int(info.message.rsplit("[... ", 1)[1].split()[0])
        assert 10_003 == removed + info.message.index("[... ")

    def test_text_at_the_limit_is_unchanged(self) -> None:
        """Exactly max_chars is kept whole; one more is truncated."""
        info = ErrorInfo(type="T", message="m" * 64, traceback="")
        assert info == info.truncated(64)
        assert "m" * 65 != ErrorInfo(type="T", message="m" * 65).truncated(64).message

    @pytest.mark.parametrize("serializer", SERIALIZERS)
    def test_encode_decode_error(self, serializer: Serializer) -> None:
        """Errors are stored as text and come back as ErrorInfo, never as exception objects."""
        codec = PayloadCodec(serializer=serializer, limits=PayloadLimits(max_error_chars=100))
        info = codec.decode_error(codec.encode_error(ValueError("x" * 500)))
        assert ("ValueError", 100) == (info.type, len(info.message))
        assert info == codec.decode_error(codec.encode_error(info))

    @pytest.mark.parametrize("serializer", SERIALIZERS)
    def test_unencodable_text_is_escaped(self, serializer: Serializer) -> None:
        """An error message with lone surrogates is still stored (escaped), never lost."""
        codec = PayloadCodec(serializer=serializer)
        info = codec.decode_error(codec.encode_error(ValueError("bad \udc80 byte")))
        assert "bad \\udc80 byte" == info.message

    def test_to_task_failed(self) -> None:
        """An ErrorInfo becomes the TaskFailed an awaiter sees, text only."""
        failed = ErrorInfo(type="ValueError", message="bad", traceback="tb").to_task_failed(
            "id1", "t"
        )
        assert ("id1", "t", "ValueError", "bad", "tb") == (
            failed.task_id,
            failed.name,
            failed.error_type,
            failed.message,
            failed.traceback,
        )
        assert failed.__cause__ is None


class TestResults:
    def test_unserializable_result_names_the_task(self) -> None:
        """A result that cannot be stored fails with 'result of task ...'."""
        codec = _codec(t=_echo)
        with pytest.raises(tm.PayloadError, match="result of task 't': object is not serializable"):
            codec.encode_result(object(), task="t")

    def test_result_must_fit_the_return_annotation(self) -> None:
        """The return annotation is checked at encode and applied at decode."""
        codec = _codec(s=send)
        assert 3 == codec.decode_result(codec.encode_result(3, task="s"), task="s")
        with pytest.raises(tm.PayloadError, match="result of task 's': not a valid int"):
            codec.encode_result("three", task="s")

    def test_result_without_task_is_wire_form(self) -> None:
        """Without a (known) task name the result stays in wire form."""
        codec = _codec(t=_task_with(dt.date))
        data = codec.encode_result(dt.date(2030, 1, 2))
        assert "2030-01-02" == codec.decode_result(data)
        assert "2030-01-02" == codec.decode_result(data, task="unknown")
        assert dt.date(2030, 1, 2) == codec.decode_result(data, task="t")


class TestCodec:
    def test_statistics_count_successes_and_failures(self) -> None:
        """Encoded/decoded envelopes and refusals on each side are counted."""
        codec = PayloadCodec()
        data = codec.encode(codec.build("t"))
        codec.decode(data)
        for bad in (b"", b"{}"):
            with pytest.raises(tm.PayloadError):
                codec.decode(bad)
        with pytest.raises(tm.PayloadError):
            codec.encode(codec.build("t", [object()]))
        assert (1, 1, 1, 2) == (
            codec.statistics().encoded,
            codec.statistics().decoded,
            codec.statistics().encode_errors,
            codec.statistics().decode_errors,
        )

    def test_repr_and_properties(self) -> None:
        """The repr shows format, signing and registry size."""
        codec = PayloadCodec(tm.TaskRegistry(), serializer=MsgpackSerializer())
        assert "<PayloadCodec msgpack unsigned 0 tasks>" == repr(codec)
        assert "<PayloadCodec json unsigned no registry>" == repr(PayloadCodec())
        assert PayloadLimits() == codec.limits
        assert "msgpack" == codec.serializer.name

    @pytest.mark.parametrize(
        "kwargs",
        [{"serializer": "json"}, {"limits": {"max_payload_bytes": 1}}, {"signer": b"key"}],
    )
    def test_constructor_checks_types(self, kwargs: dict[str, Any]) -> None:
        """Wrong component types fail at construction."""
        with pytest.raises(tm.ConfigurationError):
            PayloadCodec(**kwargs)
        with pytest.raises(tm.ConfigurationError):
            PayloadCodec({})  # type: ignore[arg-type]

    def test_unresolvable_annotations_fall_back_to_wire_form(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A forward reference that cannot be resolved logs a warning and converts nothing."""

        def task(when: Missing) -> None:  # type: ignore[name-defined]  # noqa: F821
            return None

        codec = _codec(t=task)
        with caplog.at_level("WARNING"):
            envelope = codec.decode(codec.encode(codec.build("t", [dt.date(2030, 1, 1)])))
        assert ["2030-01-01"] == envelope.args
        assert "annotations cannot be resolved" in caplog.text
