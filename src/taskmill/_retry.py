"""The retry policy and the drivers that run a call under it.

* :class:`Retry` is the policy: how many attempts, which backoff, which errors,
  per-attempt timeout and total deadline, hooks.
* :func:`run`, :meth:`Retry.run`, :meth:`Retry.run_sync` and :func:`retry` are the
  drivers: they call the function, time it on the running loop's clock, feed each
  failure to a :class:`~taskmill.Runner` (the sans-IO state machine in
  ``_runner.py``) and wait as it says. The success path builds no Runner at all.

Outcomes:

* success -> the value;
* an error ``retry_on`` does not accept, or ``StopRetrying(err)`` -> that error,
  re-raised unchanged (``err`` for StopRetrying);
* every attempt failed, or the total deadline ran out ->
  :class:`~taskmill.RetriesExhausted` (attempt history; ``__cause__`` = last error);
* cancellation -> :class:`asyncio.CancelledError`, at once, unwrapped; no new
  attempt starts while the current task is being cancelled.

Why ``run(policy, fn, *args)`` and not ``run(fn, *args, retry=policy)``: a
keyword-only parameter cannot sit between ``*args: P.args`` and
``**kwargs: P.kwargs`` (PEP 612), and without ParamSpec a wrong argument to ``fn``
would not be a type error. The policy therefore comes first (or is bound by
:meth:`Retry.run` / the :func:`retry` decorator).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import (
    Any,
    ClassVar,
    Final,
    ParamSpec,
    Protocol,
    TypeAlias,
    TypedDict,
    TypeVar,
    Unpack,
    final,
    overload,
)

from . import _clock
from ._backoff import Backoff, Exponential
from ._errors import ConfigurationError, TaskTimeout
from ._runner import NEVER_RETRY, Attempt, RetryState, Runner, Step

# Runner and its records live in _runner.py; they are re-exported here for internal callers.
__all__ = [
    "NEVER_RETRY",
    "Attempt",
    "Retry",
    "RetryDecorator",
    "RetryOn",
    "RetryState",
    "Runner",
    "Step",
    "retry",
    "run",
]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

RetryOn: TypeAlias = (
    type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
)
"""Which errors are retried: a type, a tuple of types, or a predicate."""


def _positive(name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"{name} must be None or a number > 0, got {value!r}")
    if value == float("inf"):
        raise ConfigurationError(f"{name} must be finite (use None for no limit), got {value!r}")


def _matcher(retry_on: RetryOn) -> Callable[[BaseException], bool]:
    """Turn ``retry_on`` into a predicate, validating it."""
    if isinstance(retry_on, tuple):
        items: tuple[object, ...] = retry_on
        if not all(isinstance(t, type) and issubclass(t, BaseException) for t in items):
            raise ConfigurationError(f"retry_on must hold exception types, got {retry_on!r}")
        return lambda error: isinstance(error, retry_on)
    if isinstance(retry_on, type):
        if not issubclass(retry_on, BaseException):
            raise ConfigurationError(f"retry_on must be an exception type, got {retry_on!r}")
        return lambda error: isinstance(error, retry_on)
    if callable(retry_on):
        return lambda error: bool(retry_on(error))
    raise ConfigurationError(f"retry_on must be a type, a tuple or a callable, got {retry_on!r}")


_DEFAULT_BACKOFF: Final = Exponential(0.1, max=10.0, jitter="full")


class _PolicyOptions(TypedDict, total=False):
    backoff: Backoff
    timeout: float | None
    deadline: float | None
    retry_on: RetryOn
    on_attempt: Callable[[Attempt], None] | None
    before_sleep: Callable[[RetryState], None] | None
    rng: random.Random | None


class _RetryFields(_PolicyOptions, total=False):
    max_attempts: int | None


@final
@dataclass(frozen=True, kw_only=True, slots=True)
class Retry:
    """A retry policy: frozen, validated at construction, reusable and shareable.

    Args:
        max_attempts: Total attempts (``>= 1``); ``None`` retries without limit.
        backoff: Delays between attempts (any :class:`~taskmill.Backoff`).
        timeout: Per-attempt timeout in seconds (a fresh deadline each attempt);
            an attempt that runs past it fails with :class:`~taskmill.TaskTimeout`,
            which is retryable by default. Async drivers only.
        deadline: Total budget in seconds, from the first attempt's start. No wait
            is started that would end at or past it, and each attempt's timeout is
            cut to the time left.
        retry_on: Which errors are retried: a type, a tuple of types or a predicate.
            Cancellation, ``KeyboardInterrupt`` and ``SystemExit`` never are.
        on_attempt: Called with each :class:`Attempt` after it ends (successes too).
        before_sleep: Called with a :class:`RetryState` before each wait.
        rng: Random source for jitter (default: one module-level generator).

    Raises:
        ConfigurationError: Any parameter is invalid.

    Example:
        >>> policy = Retry(max_attempts=5, backoff=Exponential(0.1, max=2.0), timeout=1.0)
    """

    max_attempts: int | None = 3
    backoff: Backoff = _DEFAULT_BACKOFF
    timeout: float | None = None
    deadline: float | None = None
    retry_on: RetryOn = Exception
    on_attempt: Callable[[Attempt], None] | None = None
    before_sleep: Callable[[RetryState], None] | None = None
    rng: random.Random | None = None
    _matches: Callable[[BaseException], bool] = field(init=False, repr=False, compare=False)
    _fast: bool = field(init=False, repr=False, compare=False)

    DEFAULT: ClassVar[Retry]
    """The default policy: 3 attempts, full-jitter exponential backoff 0.1 s .. 10 s."""

    def __post_init__(self) -> None:
        attempts: object = self.max_attempts
        if attempts is not None and (
            isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1
        ):
            raise ConfigurationError(f"max_attempts must be None or an int >= 1, got {attempts!r}")
        if not callable(getattr(self.backoff, "delay", None)):
            raise ConfigurationError(f"backoff must have a delay() method, got {self.backoff!r}")
        _positive("timeout", self.timeout)
        _positive("deadline", self.deadline)
        for name in ("on_attempt", "before_sleep"):
            hook = getattr(self, name)
            if hook is not None and not callable(hook):
                raise ConfigurationError(f"{name} must be callable or None, got {hook!r}")
        if self.rng is not None and not isinstance(self.rng, random.Random):
            raise ConfigurationError(f"rng must be a random.Random or None, got {self.rng!r}")
        object.__setattr__(self, "_matches", _matcher(self.retry_on))
        fast = self.timeout is None and self.deadline is None and self.on_attempt is None
        object.__setattr__(self, "_fast", fast)

    def is_retryable(self, error: BaseException) -> bool:
        """Return whether ``retry_on`` accepts ``error`` (cancellation never is).

        Args:
            error: A failed attempt's error (directives already unwrapped).
        """
        return not isinstance(error, NEVER_RETRY) and self._matches(error)

    @classmethod
    def never(cls) -> Retry:
        """Return a policy that makes exactly one attempt."""
        return cls(max_attempts=1)

    @classmethod
    def from_sc_bos(cls, attempts: int | None, **options: Unpack[_PolicyOptions]) -> Retry:
        """Map sc-bos ``WithRetry(n)``: ``n`` is the total; ``n <= 0`` means 1.

        Args:
            attempts: sc-bos' ``n`` (``None`` for ``RetryUnlimited``).
            **options: Any other :class:`Retry` field.

        Returns:
            The equivalent policy.
        """
        return cls(max_attempts=None if attempts is None else max(1, attempts), **options)

    @classmethod
    def from_marionette(cls, retries: int, **options: Unpack[_PolicyOptions]) -> Retry:
        """Map marionette ``WithRetries(n)``: ``n`` extra attempts (``n + 1`` in total).

        Args:
            retries: marionette's ``n`` (``<= 0``: a single attempt).
            **options: Any other :class:`Retry` field.

        Returns:
            The equivalent policy.
        """
        return cls(max_attempts=max(0, retries) + 1, **options)

    @classmethod
    def from_hive(cls, times: int, **options: Unpack[_PolicyOptions]) -> Retry:
        """Map hive ``WithRetry(times, backoff)``: ``times + 1`` attempts, unlimited if < 0.

        Args:
            times: hive's ``times``.
            **options: Any other :class:`Retry` field.

        Returns:
            The equivalent policy.
        """
        return cls(max_attempts=None if times < 0 else times + 1, **options)

    def run(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, T]:
        """Await ``fn(*args, **kwargs)`` under this policy (see :func:`run`).

        Returns:
            A coroutine: ``value = await policy.run(fetch, url)``.
        """
        return _run_async(self, fn, args, kwargs)

    def run_sync(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call the synchronous ``fn(*args, **kwargs)`` under this policy, blocking.

        Waits with a blocking sleep; ``timeout`` is not supported (a thread cannot be
        preempted), ``deadline`` is checked between attempts.

        Returns:
            What ``fn`` returned.

        Raises:
            ConfigurationError: The policy has a per-attempt ``timeout``.
        """
        _refuse_sync_timeout(self, fn)
        return _run_sync(self, fn, args, kwargs)


Retry.DEFAULT = Retry()


# ----------------------------------------------------------------- async driver
def _require_awaitable(fn: object, result: object, error: BaseException, *, called: bool) -> None:
    """Re-raise when calling ``fn`` failed, or it returned something not awaitable."""
    if not called:
        raise error  # calling fn raised (e.g. bad arguments): not an attempt, not retried
    if not inspect.isawaitable(result):
        raise ConfigurationError(
            f"{fn!r} returned {type(result).__name__}, not an awaitable; "
            "use Retry.run_sync() or @retry on the plain function"
        ) from error


async def _run_async(
    policy: Retry, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> T:
    """Run ``fn`` under ``policy``: a cheap first try, a Runner only after a failure."""
    if not policy._fast:  # noqa: SLF001 - computed by Retry for this module
        return await _retry_async(fn, args, kwargs, Runner(policy), None)
    loop = asyncio.get_running_loop()
    result: Awaitable[T] | None = None
    called = False
    started = loop.time()
    try:
        result = fn(*args, **kwargs)
        called = True
        return await result
    except NEVER_RETRY:
        raise
    except BaseException as exc:  # noqa: BLE001 - the Runner decides what is retried
        error = exc
    finished = loop.time()
    _require_awaitable(fn, result, error, called=called)
    runner = Runner(policy)
    step = runner.step(error, started=started, finished=finished)
    return await _retry_async(fn, args, kwargs, runner, step)


def _raise_if_cancelling(task: asyncio.Task[Any] | None) -> None:
    """Refuse to go on while the current task is being cancelled (even if swallowed)."""
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def _retry_async(
    fn: Callable[..., Awaitable[T]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    runner: Runner,
    step: Step | None,
) -> T:
    """The retry loop: wait, attempt, step — until the Runner says stop."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    while True:
        if step is not None:
            _raise_if_cancelling(task)  # a swallowed cancel still ends the loop
            if not step.again:
                raise runner.failure()
            logger.debug("attempt %d failed; retrying in %.3fs", runner.attempts, step.delay)
            await asyncio.sleep(step.delay)  # yields even for 0: no hot loop, cancellable
            _raise_if_cancelling(task)
        started = loop.time()
        result: Awaitable[T] | None = None
        called = False
        try:
            result = fn(*args, **kwargs)
            called = True
            value = await _guard(result, runner, started)
        except NEVER_RETRY:
            raise
        except BaseException as exc:  # noqa: BLE001 - the Runner decides what is retried
            error = exc
        else:
            runner.step(None, started=started, finished=loop.time())
            return value
        finished = loop.time()
        _require_awaitable(fn, result, error, called=called)
        step = runner.step(error, started=started, finished=finished)


def _attempt_limit(runner: Runner, started: float) -> float | None:
    """Seconds this attempt may run: the per-attempt timeout cut to the deadline."""
    policy = runner.policy
    timeout = policy.timeout
    if policy.deadline is None:
        return timeout
    first = runner.first_started
    left = policy.deadline - (started - (started if first is None else first))
    return left if timeout is None or left < timeout else timeout


async def _guard(awaitable: Awaitable[T], runner: Runner, started: float) -> T:
    """Await one attempt, under its timeout if it has one."""
    limit = _attempt_limit(runner, started)
    if limit is None:
        return await awaitable
    scope = asyncio.timeout_at(started + limit)
    try:
        async with scope:
            return await awaitable
    except TimeoutError as exc:
        if scope.expired():
            raise TaskTimeout(limit, runner.attempts + 1) from exc
        raise  # the function's own TimeoutError passes unchanged


# ------------------------------------------------------------------ sync driver
def _refuse_sync_timeout(policy: Retry, fn: object) -> None:
    if policy.timeout is not None:
        raise ConfigurationError(
            f"Retry(timeout={policy.timeout!r}) cannot preempt the synchronous {fn!r}; "
            "drop timeout (deadline still works between attempts) or make it async"
        )


def _sync_runner(policy: Retry) -> Runner:
    offset = _clock.real_now().timestamp() - _clock.real_monotonic()
    return Runner(policy, wall_offset=offset)


def _run_sync(
    policy: Retry, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> T:
    """Run the sync ``fn`` under ``policy``: a cheap first try, a Runner on failure."""
    if not policy._fast:  # noqa: SLF001 - computed by Retry for this module
        return _retry_sync(fn, args, kwargs, _sync_runner(policy), None)
    started = _clock.real_monotonic()
    try:
        return fn(*args, **kwargs)
    except NEVER_RETRY:
        raise
    except BaseException as exc:  # noqa: BLE001 - the Runner decides what is retried
        error = exc
    runner = _sync_runner(policy)
    step = runner.step(error, started=started, finished=_clock.real_monotonic())
    return _retry_sync(fn, args, kwargs, runner, step)


def _retry_sync(
    fn: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    runner: Runner,
    step: Step | None,
) -> T:
    """The blocking retry loop (real monotonic clock, blocking sleep)."""
    while True:
        if step is not None:
            if not step.again:
                raise runner.failure()
            logger.debug("attempt %d failed; retrying in %.3fs", runner.attempts, step.delay)
            _clock.sleep_sync(step.delay)
        started = _clock.real_monotonic()
        try:
            value = fn(*args, **kwargs)
        except NEVER_RETRY:
            raise
        except BaseException as exc:  # noqa: BLE001 - the Runner decides what is retried
            error = exc
        else:
            runner.step(None, started=started, finished=_clock.real_monotonic())
            return value
        step = runner.step(error, started=started, finished=_clock.real_monotonic())


# ------------------------------------------------------------ public entry points
@overload
def run(
    policy: Retry, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
) -> Coroutine[Any, Any, T]: ...
@overload
def run(
    fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
) -> Coroutine[Any, Any, T]: ...
def run(*args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
    """Await ``fn(*args, **kwargs)``, retrying failures under a policy.

    ``await run(fetch, url)`` uses :attr:`Retry.DEFAULT`; ``await run(policy, fetch,
    url)`` (or ``await policy.run(fetch, url)``) uses ``policy``. Arguments after
    ``fn`` are type-checked against its signature.

    Args:
        *args: ``[policy,] fn, *fn_args``.
        **kwargs: Keyword arguments for ``fn``.

    Returns:
        A coroutine that returns what ``fn`` returned.

    Raises:
        RetriesExhausted: Every attempt failed, or the deadline ran out.
        TaskTimeout: Never directly: a timed-out attempt is retried, and the last
            one is ``RetriesExhausted.__cause__``; but a ``retry_on`` that refuses
            it re-raises it.
        asyncio.CancelledError: The calling task was cancelled.

    Any error ``retry_on`` refuses (or that a task wrapped in ``StopRetrying``) is
    re-raised unchanged. Errors raised while *calling* ``fn`` (before there is an
    awaitable, e.g. wrong arguments) are not retried.
    """
    policy = Retry.DEFAULT
    if args and isinstance(args[0], Retry):
        policy, args = args[0], args[1:]
    if not args or not callable(args[0]):
        raise TypeError("run() needs a callable to run: run([policy,] fn, *args, **kwargs)")
    return _run_async(policy, args[0], args[1:], kwargs)


class RetryDecorator(Protocol):
    """What ``retry(...)`` returns: a decorator for async and sync callables."""

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, T]], /
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...
    @overload
    def __call__(self, fn: Callable[P, T], /) -> Callable[P, T]: ...


@overload
def retry(fn: Callable[P, Coroutine[Any, Any, T]], /) -> Callable[P, Coroutine[Any, Any, T]]: ...
@overload
def retry(fn: Callable[P, T], /) -> Callable[P, T]: ...
@overload
def retry(policy: Retry | None = None, /, **options: Unpack[_RetryFields]) -> RetryDecorator: ...
def retry(target: Any = None, /, **options: Any) -> Any:
    """Decorate an async or sync function so each call is retried.

    ``@retry`` uses :attr:`Retry.DEFAULT`; ``@retry(policy)`` uses ``policy``;
    ``@retry(max_attempts=5, ...)`` (or ``@retry(policy, timeout=2)``) builds the
    policy from :class:`Retry` fields (overriding ``policy``'s). The wrapper keeps
    the signature (ParamSpec) and metadata (:func:`functools.wraps`).

    Async functions are driven like :func:`run`. Sync functions block between
    attempts; they cannot have a per-attempt ``timeout`` (nothing can preempt them),
    but a ``deadline`` is honoured between attempts.

    Args:
        target: The function (bare ``@retry``) or a base policy.
        **options: :class:`Retry` fields.

    Returns:
        The wrapped function, or a decorator.

    Raises:
        ConfigurationError: Invalid options, a generator function, or a sync
            function with a per-attempt timeout — at decoration time.
    """
    if target is None or isinstance(target, Retry):
        base = target or Retry.DEFAULT
        policy = replace(base, **options) if options else base
        return functools.partial(_decorate, policy)
    if not callable(target) or options:
        raise ConfigurationError(f"retry() takes a function or a Retry, got {target!r}")
    return _decorate(Retry.DEFAULT, target)


def _is_async(fn: object) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an async __call__ makes an async callable
    )


def _decorate(policy: Retry, fn: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise ConfigurationError(f"@retry cannot wrap the generator function {fn!r}")
    if _is_async(fn):

        @functools.wraps(fn)
        async def retrying(*args: Any, **kwargs: Any) -> Any:
            return await _run_async(policy, fn, args, kwargs)

        return retrying
    _refuse_sync_timeout(policy, fn)

    @functools.wraps(fn)
    def retrying_sync(*args: Any, **kwargs: Any) -> Any:
        return _run_sync(policy, fn, args, kwargs)

    return retrying_sync
