"""The payload codec: envelopes, results and errors to bytes and back, strictly.

Encoding (at submit) fails with an error naming the argument; decoding untrusted
bytes fails only with :class:`~taskmill.PayloadError` (reason fit for a dead-letter
entry). The checks are the same in both directions, so a payload this codec
encoded is one it decodes.
"""

from __future__ import annotations

import datetime as _dt
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, final

import msgspec

from . import _clock
from ._envelope import (
    ENVELOPE_VERSION,
    AttemptInfo,
    Envelope,
    ErrorInfo,
    VersionProbe,
    check_trace,
    resolve_options,
)
from ._errors import ConfigurationError, PayloadError, PayloadTooLarge, UnknownTask
from ._params import Params, arg_label, bounded
from ._registry import TaskRegistry, TaskSpec, check_name
from ._retry import Retry
from ._serializers import JsonSerializer, PayloadLimits, Serializer, check_tree
from ._signing import MAX_HEADER_BYTES, Signer

__all__ = ["CodecStatistics", "PayloadCodec"]

_WIRE_ERRORS: Final = (msgspec.MsgspecError, ValueError, TypeError, OverflowError, RecursionError)


def _fail(reason: str, *, task: str | None = None, argument: str | None = None) -> PayloadError:
    return PayloadError(bounded(reason), task=task, argument=argument)


@final
@dataclass(frozen=True, kw_only=True, slots=True)
class CodecStatistics:
    """Counters of a :class:`PayloadCodec` (exact when used from one thread).

    Attributes:
        encoded: Envelopes encoded.
        decoded: Envelopes decoded.
        encode_errors: Envelopes, results or errors refused at encode.
        decode_errors: Envelopes, results or errors refused at decode.
    """

    encoded: int
    decoded: int
    encode_errors: int
    decode_errors: int


@final
class PayloadCodec:
    """Encodes and decodes task envelopes, results and errors.

    Args:
        registry: Resolves callables to names, supplies per-task defaults and
            the signatures used to check arguments at encode and convert them at
            decode. Without one, tasks are referenced by name only and arguments
            stay in their wire form.
        serializer: :class:`JsonSerializer` (default) or :class:`MsgpackSerializer`.
        limits: Size and nesting bounds (default :class:`PayloadLimits` ()).
        signer: Sign everything encoded and refuse anything not validly signed.

    Raises:
        ConfigurationError: An argument has the wrong type.
    """

    __slots__ = ("_counts", "_limits", "_params", "_registry", "_serializer", "_signer")

    def __init__(
        self,
        registry: TaskRegistry | None = None,
        *,
        serializer: Serializer | None = None,
        limits: PayloadLimits | None = None,
        signer: Signer | None = None,
    ) -> None:
        if registry is not None and not isinstance(registry, TaskRegistry):
            raise ConfigurationError(f"registry must be a TaskRegistry, got {registry!r}")
        if serializer is not None and not isinstance(serializer, Serializer):
            raise ConfigurationError(f"serializer must be a Serializer, got {serializer!r}")
        if limits is not None and not isinstance(limits, PayloadLimits):
            raise ConfigurationError(f"limits must be PayloadLimits, got {limits!r}")
        if signer is not None and not isinstance(signer, Signer):
            raise ConfigurationError(f"signer must be a Signer, got {signer!r}")
        self._registry = registry
        self._serializer: Serializer = serializer or JsonSerializer()
        self._limits = limits or PayloadLimits()
        self._signer = signer
        self._params: dict[str, tuple[TaskSpec, Params]] = {}
        self._counts = [0, 0, 0, 0]  # encoded, decoded, encode errors, decode errors

    @property
    def limits(self) -> PayloadLimits:
        """The limits in force."""
        return self._limits

    @property
    def serializer(self) -> Serializer:
        """The serializer in use."""
        return self._serializer

    # ---------------------------------------------------------------- building

    def build(
        self,
        task: str | Callable[..., Any],
        args: Sequence[object] = (),
        kwargs: Mapping[str, object] | None = None,
        *,
        task_id: str | None = None,
        priority: int | None = None,
        queue: str | None = None,
        timeout: float | None = None,
        retry: Retry | None = None,
        unique_key: str | None = None,
        delay: float | None = None,
        at: _dt.datetime | None = None,
        trace: Mapping[str, str] | None = None,
    ) -> Envelope:
        """Return the envelope for one submit; ``None`` options take the task's defaults.

        Arguments are not checked here but by :meth:`encode`.

        Args:
            task: The registered name, or the registered callable.
            args: Positional arguments.
            kwargs: Keyword arguments.
            task_id: The id (default: 32 random hex characters).
            priority: Lower runs first (default: registered, else 0).
            queue: The queue (default: registered, else ``"default"``).
            timeout: Per-attempt timeout in seconds; ``math.inf`` for none.
            retry: Retry policy, whose numbers travel as a :class:`RetrySummary`.
            unique_key: Unique key (default: the registered key or key function).
            delay: Run no earlier than this many seconds from now.
            at: Run no earlier than this aware datetime.
            trace: Trace context to propagate.

        Raises:
            UnknownTask: ``task`` is not registered (a callable always needs a registry).
            ConfigurationError: An option is invalid.
        """
        spec = self._spec(task)
        name = spec.name if spec is not None else check_name("task name", task)
        arguments, keywords = list(args), dict(kwargs or {})
        options = resolve_options(
            spec,
            arguments,
            keywords,
            priority=priority,
            queue=queue,
            timeout=timeout,
            retry=retry,
            unique_key=unique_key,
            delay=delay,
            at=at,
        )
        return Envelope(
            version=ENVELOPE_VERSION,
            id=secrets.token_hex(16) if task_id is None else task_id,
            task=name,
            args=arguments,
            kwargs=keywords,
            options=options,
            trace=check_trace(trace),
            attempt=AttemptInfo(enqueued_at=_clock.wall_time()),
        )

    def _spec(self, task: str | Callable[..., Any]) -> TaskSpec | None:
        if self._registry is not None:
            return self._registry.resolve(task)
        if not isinstance(task, str):
            raise UnknownTask(
                repr(task), hint="resolving a callable needs a codec with a TaskRegistry"
            )
        return None

    # ---------------------------------------------------------------- envelopes

    def encode(self, envelope: Envelope) -> bytes:
        """Return ``envelope`` as (signed) bytes, after checking every argument.

        Raises:
            PayloadError: An argument cannot be serialized, is nested too deeply,
                holds a non-finite float, or does not fit the task's signature or
                annotations (the error names the argument); or a field is invalid.
            PayloadTooLarge: The encoded envelope is over ``max_payload_bytes``.
            UnknownTask: The codec has a registry and the task is not in it.
        """
        if not isinstance(envelope, Envelope):
            raise ConfigurationError(f"encode() takes an Envelope, got {envelope!r}")
        try:
            data = self._encode(envelope)
        except (PayloadError, UnknownTask):
            self._counts[2] += 1
            raise
        self._counts[0] += 1
        return data

    def _encode(self, envelope: Envelope) -> bytes:
        name = envelope.task
        params = self._params_for(self._registry.get(name)) if self._registry else None
        label = params.label if params is not None else partial(arg_label, name)
        args = [
            self._builtins(value, name, str(index), label)
            for index, value in enumerate(envelope.args)
        ]
        kwargs = {
            key: self._builtins(value, name, key, label) for key, value in envelope.kwargs.items()
        }
        if params is not None:
            params.convert(args, kwargs, self._serializer.convert)
        wire = msgspec.structs.replace(envelope, args=args, kwargs=kwargs)
        self._check_fields(wire)
        try:
            data = self._serializer.encode(wire)
        except _WIRE_ERRORS as exc:
            raise self._culprit(wire, label, exc) from exc
        if len(data) > self._limits.max_payload_bytes:
            raise PayloadTooLarge("payload", len(data), self._limits.max_payload_bytes, task=name)
        return self._signer.sign(data) if self._signer else data

    def _builtins(
        self, value: object, task: str | None, argument: str, label: Callable[[str], str]
    ) -> object:
        try:
            built = self._serializer.to_builtins(value)
        except RecursionError:
            reason = f"{label(argument)}: nested too deeply (or contains a cycle)"
            raise _fail(reason, task=task, argument=argument) from None
        except _WIRE_ERRORS as exc:
            kind, detail = type(value).__name__, str(exc)
            plain = detail == f"Encoding objects of type {kind} is unsupported"
            what = f"{label(argument)}: {kind} is not serializable"
            reason = what if plain else f"{what} ({detail})"
            raise _fail(reason, task=task, argument=argument) from exc
        problem = check_tree(built, self._limits.max_depth)
        if problem is not None:
            raise _fail(f"{label(argument)}: {problem}", task=task, argument=argument)
        return built

    def _check_fields(self, wire: Envelope) -> None:
        """Validate every non-argument field exactly as :meth:`decode` will."""
        header = msgspec.structs.replace(wire, args=[], kwargs={})
        try:
            msgspec.convert(msgspec.to_builtins(header), Envelope)
        except _WIRE_ERRORS as exc:
            raise _fail(f"envelope of task {wire.task!r}: {exc}", task=wire.task) from exc

    def _culprit(
        self, wire: Envelope, label: Callable[[str], str], error: BaseException
    ) -> PayloadError:
        """Name the argument that failed to serialize (e.g. a str with lone surrogates)."""
        items = [(str(index), value) for index, value in enumerate(wire.args)]
        for argument, value in [*items, *wire.kwargs.items()]:
            try:
                self._serializer.encode(value)
            except _WIRE_ERRORS as exc:
                reason = f"{label(argument)}: cannot serialize ({exc})"
                return _fail(reason, task=wire.task, argument=argument)
        return _fail(f"envelope of task {wire.task!r}: cannot serialize ({error})", task=wire.task)

    def _serialize(self, value: object, what: str, task: str | None) -> bytes:
        try:
            return self._serializer.encode(value)
        except _WIRE_ERRORS as exc:
            raise _fail(f"{what}: cannot serialize ({exc})", task=task) from exc

    def decode(self, data: bytes | bytearray | memoryview) -> Envelope:
        """Return the envelope in ``data``, checked and with arguments converted.

        Untrusted input is safe here: nothing is imported or executed, and every
        problem is a :class:`~taskmill.PayloadError` whose ``reason`` can be
        stored as a dead-letter reason (including an unknown task name).

        Raises:
            PayloadError: Bad bytes, bad signature, over the size limit, wrong
                shape, unknown version, unknown fields, values out of bounds,
                unknown task, or arguments that do not fit the task.
        """
        try:
            envelope = self._decode(data)
        except PayloadError:
            self._counts[3] += 1
            raise
        self._counts[1] += 1
        return envelope

    def _decode(self, data: object) -> Envelope:
        raw = self._unwrap(data, self._limits.max_payload_bytes, "payload")
        envelope = self._parse(raw)
        params = self._decoding_params(envelope.task)
        label = params.label if params is not None else partial(arg_label, envelope.task)
        for index, value in enumerate(envelope.args):
            self._check_decoded(value, envelope.task, str(index), label)
        for key, value in envelope.kwargs.items():
            self._check_decoded(value, envelope.task, key, label)
        if params is None:
            return envelope
        args, kwargs = list(envelope.args), dict(envelope.kwargs)
        params.convert(args, kwargs, self._serializer.convert, keep=True)
        return msgspec.structs.replace(envelope, args=args, kwargs=kwargs)

    def _decoding_params(self, name: str) -> Params | None:
        if self._registry is None:
            return None
        try:
            spec = self._registry.get(name)
        except UnknownTask as exc:
            reason = f"unknown task {name!r} (not registered in this process)"
            raise _fail(reason, task=name) from exc
        return self._params_for(spec)

    def _unwrap(self, data: object, limit: int, what: str) -> bytes:
        if isinstance(data, bytearray | memoryview):
            data = bytes(data)
        if not isinstance(data, bytes):
            raise _fail(f"{what} must be bytes, got {type(data).__name__}")
        overhead = MAX_HEADER_BYTES if self._signer is not None else 0
        if len(data) > limit + overhead:
            raise PayloadTooLarge(what, len(data), limit)
        if self._signer is not None:
            data = self._signer.verify(data)
            if len(data) > limit:
                raise PayloadTooLarge(what, len(data), limit)
        elif Signer.is_signed(data):
            raise _fail(f"{what} is signed but this codec has no signer to verify it")
        return data

    def _parse(self, raw: bytes) -> Envelope:
        try:
            envelope: Envelope = self._serializer.decode(raw, Envelope)
        except RecursionError:
            raise _fail("malformed envelope: nested too deeply") from None
        except _WIRE_ERRORS as exc:
            raise self._shape_error(raw, exc) from None
        except Exception as exc:  # noqa: BLE001  (untrusted input: every failure is a reason)
            raise _fail(f"malformed envelope: {type(exc).__name__}") from None
        if envelope.version != ENVELOPE_VERSION:
            raise _version_error(envelope.version)
        return envelope

    def _shape_error(self, raw: bytes, error: BaseException) -> PayloadError:
        try:
            probe: VersionProbe = self._serializer.decode(raw, VersionProbe)
        except Exception:  # noqa: BLE001  (the first error is the one to report)
            return _fail(f"malformed envelope: {error}")
        if probe.version is not None and probe.version != ENVELOPE_VERSION:
            return _version_error(probe.version)
        return _fail(f"malformed envelope: {error}")

    def _check_decoded(
        self, value: object, task: str, argument: str, label: Callable[[str], str]
    ) -> None:
        problem = check_tree(value, self._limits.max_depth)
        if problem is not None:
            raise _fail(f"{label(argument)}: {problem}", task=task, argument=argument)

    def _params_for(self, spec: TaskSpec) -> Params:
        cached = self._params.get(spec.name)
        if cached is not None and cached[0] is spec:
            return cached[1]
        params = Params(spec.name, spec.fn)
        self._params[spec.name] = (spec, params)
        return params

    # ---------------------------------------------------------------- results and errors

    def encode_result(self, value: object, *, task: str | None = None) -> bytes:
        """Return a task's return value as (signed) bytes.

        Args:
            value: The value.
            task: The task name, for messages and the return annotation check.

        Raises:
            PayloadError: The value cannot be serialized or does not fit the
                task's return annotation.
            PayloadTooLarge: Over ``max_result_bytes``.
        """
        try:
            return self._encode_result(value, task)
        except PayloadError:
            self._counts[2] += 1
            raise

    def _encode_result(self, value: object, task: str | None) -> bytes:
        built = self._builtins(value, task, "result", lambda _: _result_label(task))
        params = self._result_params(task)
        if params is not None:
            params.convert_result(built, self._serializer.convert)
        data = self._serialize(built, _result_label(task), task)
        limit = self._limits.max_result_bytes
        if len(data) > limit:
            raise PayloadTooLarge("result", len(data), limit, task=task)
        return self._signer.sign(data) if self._signer else data

    def decode_result(
        self, data: bytes | bytearray | memoryview, *, task: str | None = None
    ) -> Any:
        """Return a stored result, converted to the task's return annotation if known.

        Raises:
            PayloadError: Bad bytes or signature, over the limit, or a value out
                of bounds.
        """
        try:
            return self._decode_result(data, task)
        except PayloadError:
            self._counts[3] += 1
            raise

    def _decode_result(self, data: object, task: str | None) -> Any:
        raw = self._unwrap(data, self._limits.max_result_bytes, "result")
        try:
            value = self._serializer.decode(raw, Any)
        except RecursionError:
            raise _fail("malformed result: nested too deeply", task=task) from None
        except Exception as exc:  # noqa: BLE001  (untrusted input: every failure is a reason)
            raise _fail(f"malformed result: {exc}", task=task) from None
        problem = check_tree(value, self._limits.max_depth)
        if problem is not None:
            raise _fail(f"{_result_label(task)}: {problem}", task=task)
        params = self._result_params(task)
        return value if params is None else params.convert_result(value, self._serializer.convert)

    def _result_params(self, task: str | None) -> Params | None:
        if task is None or self._registry is None or task not in self._registry:
            return None
        return self._params_for(self._registry.get(task))

    def encode_error(self, error: BaseException | ErrorInfo) -> bytes:
        """Return a failure as (signed) bytes: type name, message, traceback text.

        Each text field is cut to ``max_error_chars`` with a marker.
        """
        if isinstance(error, BaseException):
            info = ErrorInfo.from_exception(error, max_chars=self._limits.max_error_chars)
        else:
            info = error.truncated(self._limits.max_error_chars)
        data = self._serialize(info, "error record", None)
        return self._signer.sign(data) if self._signer else data

    def decode_error(self, data: bytes | bytearray | memoryview) -> ErrorInfo:
        """Return a stored failure as text (never an exception object).

        Records up to ``max_result_bytes`` (or what three ``max_error_chars``
        fields need, if more) are read; longer text is cut to ``max_error_chars``.

        Raises:
            PayloadError: Bad bytes or signature, or not an error record.
        """
        try:
            raw = self._unwrap(data, self._error_bytes(), "error")
            info: ErrorInfo = self._serializer.decode(raw, ErrorInfo)
        except PayloadError:
            self._counts[3] += 1
            raise
        except Exception as exc:  # noqa: BLE001  (untrusted input: every failure is a reason)
            self._counts[3] += 1
            raise _fail(f"malformed error record: {exc}") from None
        return info.truncated(self._limits.max_error_chars)

    def _error_bytes(self) -> int:
        """Largest error record read: results' bound, or what three full fields can take."""
        limits = self._limits
        return max(limits.max_result_bytes, 3 * 4 * limits.max_error_chars + 64)

    def statistics(self) -> CodecStatistics:
        """Return the counters."""
        encoded, decoded, encode_errors, decode_errors = self._counts
        return CodecStatistics(
            encoded=encoded,
            decoded=decoded,
            encode_errors=encode_errors,
            decode_errors=decode_errors,
        )

    def __repr__(self) -> str:
        signed = "signed" if self._signer is not None else "unsigned"
        tasks = "no registry" if self._registry is None else f"{len(self._registry)} tasks"
        return f"<PayloadCodec {self._serializer.name} {signed} {tasks}>"


def _result_label(task: str | None) -> str:
    return "result" if task is None else f"result of task {task!r}"


def _version_error(version: object) -> PayloadError:
    shown = repr(version)[:40]
    return _fail(
        f"unsupported envelope version {shown} (this taskmill reads version {ENVELOPE_VERSION})"
    )
