"""Per-task options and how they merge over a manager's defaults.

Per-task options cannot share ``**kwargs`` with the task's own arguments in a
type-safe way, so they travel separately: ``mgr.with_options(priority=1)`` (or
``mgr.with_options(TaskOptions(...))``) returns a
:class:`~taskmill.TaskSubmitter` whose ``submit(fn, *args, **kwargs)`` is typed
with ``ParamSpec`` exactly like ``mgr.submit``.

``None`` in a :class:`TaskOptions` field always means "use the manager's
default". To switch a default off for one task: ``retry=Retry.never()`` and
``timeout=math.inf``.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, final

from ._errors import ConfigurationError
from ._retry import Retry

if TYPE_CHECKING:
    from ._handle import Owner

__all__ = ["TaskOptions"]


def _check_key(name: str, value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigurationError(f"{name} must be a non-empty str or None, got {value!r}")


def _check_seconds(name: str, value: object, *, zero_ok: bool, inf_ok: bool) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not zero_ok) or (math.isinf(value) and not inf_ok):
        lowest = ">= 0" if zero_ok else "> 0"
        raise ConfigurationError(f"{name} must be finite and {lowest}, got {value!r}")


@final
@dataclass(frozen=True, kw_only=True, slots=True)
class TaskOptions:
    """Options for one task; every ``None`` field falls back to the manager's default.

    Args:
        name: Shown in logs, results and statistics (default: the callable's
            qualified name).
        description: Free text for humans (default: empty).
        priority: Lower runs first; FIFO within a priority (manager default: 0).
        retry: The retry policy (manager default; ``Retry.never()`` for none).
        timeout: Per-attempt timeout in seconds; ``math.inf`` for none. An attempt
            that runs past it fails with :class:`~taskmill.TaskTimeout`.
        delay: Run no earlier than this many seconds after submission.
        at: Run no earlier than this aware datetime (past = as soon as possible).
            Naive datetimes are refused. Exclusive with ``delay``.
        unique_key: While a task with this key is not finished, submitting another
            one with the same key returns the *existing* handle instead.
        rate_key: Also take a token from this key's rate limit at each start (the
            key, or ``"*"``, must be configured in the manager's ``rate_limits``).
        concurrency_key: Run at most the configured number of tasks with this key
            at once (the key, or ``"*"``, must be in ``concurrency_limits``).

    Raises:
        ConfigurationError: A value is invalid, or both ``delay`` and ``at`` are set.
    """

    name: str | None = None
    description: str | None = None
    priority: int | None = None
    retry: Retry | None = None
    timeout: float | None = None
    delay: float | None = None
    at: _dt.datetime | None = None
    unique_key: str | None = None
    rate_key: str | None = None
    concurrency_key: str | None = None

    def __post_init__(self) -> None:
        _check_key("name", self.name)
        if self.description is not None and not isinstance(self.description, str):
            raise ConfigurationError(f"description must be a str, got {self.description!r}")
        priority = self.priority
        if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
            raise ConfigurationError(f"priority must be an int, got {priority!r}")
        if self.retry is not None and not isinstance(self.retry, Retry):
            raise ConfigurationError(f"retry must be a taskmill.Retry, got {self.retry!r}")
        _check_seconds("timeout", self.timeout, zero_ok=False, inf_ok=True)
        _check_seconds("delay", self.delay, zero_ok=True, inf_ok=False)
        self._check_at()
        for key in ("unique_key", "rate_key", "concurrency_key"):
            _check_key(key, getattr(self, key))

    def _check_at(self) -> None:
        at = self.at
        if at is None:
            return
        if not isinstance(at, _dt.datetime):
            raise ConfigurationError(f"at must be an aware datetime, got {at!r}")
        if at.tzinfo is None or at.utcoffset() is None:
            raise ConfigurationError(
                f"at must be an aware datetime (naive datetimes are ambiguous), got {at!r}"
            )
        if self.delay is not None:
            raise ConfigurationError("pass either delay or at, not both")


@final
class Resolved:
    """Options merged and pre-digested for the manager's hot path (internal).

    ``plain`` is true when nothing beyond priority, retry and timeout is set, so
    submission and admission can skip every optional check at once; ``fast`` when
    an attempt needs neither a timeout nor a concurrency-key slot.
    """

    __slots__ = (
        "at",
        "concurrency_key",
        "delay",
        "description",
        "fast",
        "name",
        "options",
        "owner",
        "plain",
        "priority",
        "rate_key",
        "retry",
        "timeout",
        "unique_key",
    )

    def __init__(self, options: TaskOptions, owner: Owner) -> None:
        self.options = options
        self.owner = owner
        self.name = options.name
        self.description = options.description or ""
        self.priority = options.priority or 0
        self.retry = options.retry
        timeout = options.timeout
        if timeout is None and options.retry is not None:
            timeout = options.retry.timeout
        self.timeout = None if timeout is None or math.isinf(timeout) else float(timeout)
        self.delay = options.delay
        self.at = options.at
        self.unique_key = options.unique_key
        self.rate_key = options.rate_key
        self.concurrency_key = options.concurrency_key
        self.fast = self.timeout is None and options.concurrency_key is None
        self.plain = (
            options.delay is None
            and options.at is None
            and options.unique_key is None
            and options.rate_key is None
            and options.concurrency_key is None
        )

    def __repr__(self) -> str:
        return f"<Resolved {self.options!r}>"
