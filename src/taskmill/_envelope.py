r"""The versioned payload envelope and the stored form of errors (msgspec Structs).

Wire schema, version 1 (JSON shown; msgpack has the same shape; see docs/payloads.md):

    {"version": 1, "id": "9f0c...", "task": "mail.send",
     "args": ["a@example.com"], "kwargs": {"when": "2030-01-01T09:00:00Z"},
     "options": {"priority": 0, "queue": "default", "timeout": null,
                 "retry": {"max_attempts": 3, "timeout": null, "deadline": null},
                 "unique_key": null, "scheduled_at": null},
     "trace": {"traceparent": "00-..."},
     "attempt": {"number": 1, "enqueued_at": 1767225600.0, "attempt_id": null}}

Unknown fields are refused (a new field means a new version; readers accept only
the versions they know, so upgrade workers before producers). Every field is
bounded: names follow the registry's rule, ids are 1 to 128 characters of
``[\w.:/-]``, numbers are finite and in range.
"""

from __future__ import annotations

import builtins
import datetime as _dt
import math
import traceback as _traceback
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Final

import msgspec
from msgspec import Meta

from . import _clock
from ._errors import ConfigurationError, TaskFailed
from ._registry import DEFAULT_QUEUE, TaskSpec, check_name
from ._retry import Retry
from ._taskoptions import TaskOptions

__all__ = [
    "ENVELOPE_VERSION",
    "AttemptInfo",
    "Envelope",
    "EnvelopeOptions",
    "ErrorInfo",
    "RetrySummary",
    "check_trace",
    "resolve_options",
    "truncate_head",
    "truncate_tail",
]

ENVELOPE_VERSION: Final = 1
"""The envelope version this taskmill writes and reads."""

_INT64_MAX: Final = 2**63 - 1
_POSIX_MAX: Final = 1e11  # about year 5138
_Name = Annotated[str, Meta(pattern=r"^[\w.:/-]{1,200}\Z")]
_Id = Annotated[str, Meta(pattern=r"^[\w.:/-]{1,128}\Z")]
_Key = Annotated[str, Meta(min_length=1, max_length=1024)]
_Seconds = Annotated[float, Meta(gt=0, lt=_POSIX_MAX)]
_Posix = Annotated[float, Meta(ge=-_POSIX_MAX, le=_POSIX_MAX)]
_Count = Annotated[int, Meta(ge=1, le=2**31 - 1)]
_Priority = Annotated[int, Meta(ge=-_INT64_MAX - 1, le=_INT64_MAX)]
_Trace = Annotated[
    dict[Annotated[str, Meta(max_length=256)], Annotated[str, Meta(max_length=4096)]],
    Meta(max_length=64),
]
_Kwargs = dict[Annotated[str, Meta(min_length=1, max_length=200)], Any]


class RetrySummary(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The serializable numbers of a :class:`~taskmill.Retry` policy.

    Backoff, ``retry_on`` and hooks are code, so they never travel: the worker
    takes them from the task's registration (or its defaults) and these numbers
    from the payload.

    Attributes:
        max_attempts: Total attempts (``None`` = unlimited).
        timeout: Per-attempt timeout in seconds.
        deadline: Total budget in seconds.
    """

    max_attempts: _Count | None = 3
    timeout: _Seconds | None = None
    deadline: _Seconds | None = None

    @classmethod
    def from_retry(cls, retry: Retry) -> RetrySummary:
        """Return the summary of ``retry``."""
        return cls(max_attempts=retry.max_attempts, timeout=retry.timeout, deadline=retry.deadline)

    def apply_to(self, retry: Retry) -> Retry:
        """Return ``retry`` (the registered policy) with these numbers."""
        return Retry(
            max_attempts=self.max_attempts,
            backoff=retry.backoff,
            timeout=self.timeout,
            deadline=self.deadline,
            retry_on=retry.retry_on,
            on_attempt=retry.on_attempt,
            before_sleep=retry.before_sleep,
            rng=retry.rng,
        )


class EnvelopeOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Per-task options as they travel.

    Attributes:
        priority: Lower runs first.
        queue: The queue name.
        timeout: Per-attempt timeout in seconds (``None`` = none).
        retry: The retry numbers (``None`` = the worker's default).
        unique_key: The task's unique key, if any.
        scheduled_at: Run no earlier than this POSIX time (``None`` = now).
    """

    priority: _Priority = 0
    queue: _Name = "default"
    timeout: _Seconds | None = None
    retry: RetrySummary | None = None
    unique_key: _Key | None = None
    scheduled_at: _Posix | None = None


class AttemptInfo(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Delivery metadata.

    Attributes:
        number: 1-based number of the attempt this payload is for.
        enqueued_at: POSIX time of the first enqueue.
        attempt_id: The fencing token of the current claim, set by a backend.
    """

    number: _Count = 1
    enqueued_at: _Posix
    attempt_id: _Id | None = None


class Envelope(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One task on the wire: what to run, with which arguments and options.

    Build it with :meth:`PayloadCodec.build <taskmill.payloads.PayloadCodec.build>`,
    which resolves names and applies the task's registered defaults.

    Attributes:
        VERSION: The version this taskmill writes and reads (1).
        version: The envelope's version (readers refuse versions they do not know).
        id: The task id.
        task: The registered task name.
        args: Positional arguments (builtins on the wire; converted to the
            function's annotated types on decode when a registry is known).
        kwargs: Keyword arguments.
        options: See :class:`EnvelopeOptions`.
        trace: Trace context (e.g. W3C ``traceparent``), string to string.
        attempt: See :class:`AttemptInfo`.
    """

    VERSION: ClassVar[int] = ENVELOPE_VERSION

    version: int
    id: _Id
    task: _Name
    args: list[Any] = []
    kwargs: _Kwargs = {}
    options: EnvelopeOptions = msgspec.field(default_factory=EnvelopeOptions)
    trace: _Trace = {}
    attempt: AttemptInfo


def _posix(at: _dt.datetime | None, delay: float | None) -> float | None:
    if at is not None and delay is not None:
        raise ConfigurationError("pass either delay or at, not both")
    if delay is not None:
        TaskOptions(delay=delay)  # validates: finite seconds >= 0
        return _clock.wall_time() + delay
    if at is None:
        return None
    TaskOptions(at=at)  # validates: an aware datetime
    return at.timestamp()


def check_trace(trace: Mapping[str, str] | None) -> dict[str, str]:
    """Return ``trace`` as a dict after checking it maps str to str."""
    if trace is None:
        return {}
    pairs: list[tuple[object, object]] = list(trace.items())
    if not all(isinstance(key, str) and isinstance(value, str) for key, value in pairs):
        raise ConfigurationError(f"trace must map str to str, got {trace!r}")
    return dict(trace)


def resolve_options(
    spec: TaskSpec | None,
    args: Sequence[object],
    kwargs: Mapping[str, object],
    *,
    priority: int | None,
    queue: str | None,
    timeout: float | None,
    retry: Retry | None,
    unique_key: str | None,
    delay: float | None,
    at: _dt.datetime | None,
) -> EnvelopeOptions:
    """Return the options of one submit: given values first, then the task's defaults.

    Raises:
        ConfigurationError: A value is invalid.
    """
    TaskOptions(priority=priority, retry=retry, timeout=timeout, unique_key=unique_key)
    if queue is not None:
        check_name("queue", queue)
    if spec is not None:
        priority = spec.priority if priority is None else priority
        queue = queue or spec.queue
        timeout = spec.timeout if timeout is None else timeout
        retry = retry or spec.retry
        unique_key = unique_key or spec.unique_key_for(args, kwargs)
    return EnvelopeOptions(
        priority=priority or 0,
        queue=queue or DEFAULT_QUEUE,
        timeout=None if timeout is None or math.isinf(timeout) else float(timeout),
        retry=None if retry is None else RetrySummary.from_retry(retry),
        unique_key=unique_key,
        scheduled_at=_posix(at, delay),
    )


class VersionProbe(msgspec.Struct):
    """Reads only ``version`` from an envelope of any shape (for error messages)."""

    version: Any = None


def _marker(count: int) -> str:
    return f"[... {count} chars truncated]"


def _cut(text: str, limit: int) -> tuple[int, str]:
    """Return how many chars to keep and the marker, so that both fill ``limit`` exactly."""
    kept = limit - len(_marker(len(text)))
    while True:
        marker = _marker(len(text) - kept)
        if kept + len(marker) >= limit:
            return kept, marker
        kept = limit - len(marker)


def truncate_head(text: str, limit: int) -> str:
    """Return ``text`` cut to ``limit`` chars (marker included), keeping its start."""
    if len(text) <= limit:
        return text
    kept, marker = _cut(text, limit)
    return text[:kept] + marker


def truncate_tail(text: str, limit: int) -> str:
    """Return ``text`` cut to ``limit`` chars (marker included), keeping its end."""
    if len(text) <= limit:
        return text
    kept, marker = _cut(text, limit)
    return marker + text[len(text) - kept :]


def _encodable(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _type_name(error: BaseException) -> str:
    cls = type(error)
    if cls.__module__ == builtins.__name__:
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _message(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:  # noqa: BLE001  (a broken __str__ must not lose the failure)
        return f"<unprintable {type(error).__name__} object>"


def _formatted(error: BaseException) -> str:
    try:
        return "".join(_traceback.format_exception(error))
    except Exception:  # noqa: BLE001  (same: keep what we can)
        return ""


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A failure as stored: text only, never reconstructed into an exception object.

    Attributes:
        type: Qualified name of the exception class (``"ValueError"``,
            ``"mail.errors.Bounce"``).
        message: ``str()`` of the exception (head kept when truncated).
        traceback: The formatted traceback (tail kept when truncated).
    """

    type: str
    message: str
    traceback: str = ""

    @classmethod
    def from_exception(cls, error: BaseException, *, max_chars: int = 8192) -> ErrorInfo:
        """Return the text of ``error``, each field cut to ``max_chars`` with a marker.

        Args:
            error: Any exception (an ``ExceptionGroup`` keeps all its members'
                tracebacks).
            max_chars: The longest each field may be.
        """
        return cls(
            type=_type_name(error),
            message=_message(error),
            traceback=_formatted(error),
        ).truncated(max_chars)

    def truncated(self, max_chars: int) -> ErrorInfo:
        """Return this info with each field cut to ``max_chars`` characters.

        Characters UTF-8 cannot carry (lone surrogates) are escaped first, so the
        result always serializes.
        """
        return ErrorInfo(
            type=truncate_head(_encodable(self.type), max_chars),
            message=truncate_head(_encodable(self.message), max_chars),
            traceback=truncate_tail(_encodable(self.traceback), max_chars),
        )

    def to_task_failed(self, task_id: str, name: str) -> TaskFailed:
        """Return the :class:`~taskmill.TaskFailed` an awaiter of this task should see."""
        return TaskFailed(
            task_id, name, error_type=self.type, message=self.message, traceback=self.traceback
        )


# Resolve the (string) annotations now, while this module's globals are where msgspec
# looks for them: taskmill.payloads later rewrites __module__ to its public path.
msgspec.inspect.multi_type_info((Envelope, ErrorInfo, VersionProbe))
