"""The task registry: tasks that leave the process are referenced by a registered name.

A payload never carries code or an import path, only a name; the worker looks the
name up in its :class:`TaskRegistry` and runs what was registered under it.
Nothing is ever imported because a payload named it (Celery CVE-2021-23727), so a
payload naming ``os.system`` is simply an unknown task.

Rules:

* the default name is ``module.qualname``; lambdas, nested functions, callables
  without a ``__qualname__`` (``functools.partial``...) and functions defined in
  ``__main__`` (whose module name differs between the producer script and the
  worker) must be given an explicit ``name=``;
* names (and queue names) are 1 to 200 characters of letters, digits and
  ``_ . : / -``;
* a name is registered once per registry: a duplicate raises
  :class:`~taskmill.ConfigurationError`, so does registering the same callable
  twice;
* a callable resolves to its name by *identity* (the object that was decorated;
  bound methods by their instance and function);
* this module imports nothing beyond the standard library: ``import taskmill``
  stays light. Encoding payloads lives in :mod:`taskmill.payloads`.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, final, overload

from ._errors import ConfigurationError, UnknownTask
from ._periodic import PeriodicSpec, check_periodic_callable
from ._retry import Retry
from ._taskoptions import TaskOptions

__all__ = ["DEFAULT_QUEUE", "RegistryStatistics", "TaskRegistry", "TaskSpec", "check_name"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_QUEUE: Final = "default"
"""The queue a task goes to when neither its registration nor its submit names one."""

MAX_NAME_LENGTH: Final = 200
_NAME = re.compile(r"[\w.:/-]{1,200}")

UniqueKey = str | Callable[..., str]
"""A fixed unique key, or a function of the task's arguments that returns one."""


def check_name(kind: str, name: object) -> str:
    """Return ``name`` if it is a valid task or queue name, else raise.

    Args:
        kind: What is named (``"task name"``, ``"queue"``), for the message.
        name: The candidate.

    Raises:
        ConfigurationError: ``name`` is not a str of 1 to 200 letters, digits and
            ``_ . : / -``.
    """
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise ConfigurationError(
            f"{kind} must be 1 to {MAX_NAME_LENGTH} letters, digits and '_.:/-', got {name!r}"
        )
    return name


def _is_async(fn: object) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004  (async __call__ of callable objects)
    return not isinstance(fn, type) and inspect.iscoroutinefunction(call)


def default_name(fn: object) -> str | None:
    """Return ``module.qualname`` for ``fn``, or None when it has no stable name."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or module == "__main__":
        return None
    if "<lambda>" in qualname or "<locals>" in qualname:
        return None
    return f"{module}.{qualname}"


def _describe(fn: object) -> str:
    qualname = getattr(fn, "__qualname__", None)
    if isinstance(qualname, str):
        module = getattr(fn, "__module__", None) or "?"
        return f"{module}.{qualname}"
    return repr(fn)


def _identity(fn: object) -> tuple[int, int]:
    """Key a callable by identity; a bound method by its instance and function."""
    if inspect.ismethod(fn):
        return id(fn.__self__), id(fn.__func__)
    return id(fn), 0


@final
@dataclass(frozen=True, kw_only=True, slots=True)
class TaskSpec:
    """A registered task: its name, the callable, and its per-task defaults.

    ``None`` in a default means "the submitter's (or the manager's) default".

    Args:
        name: The registered name (what payloads carry).
        fn: The async or sync callable that runs the task.
        retry: Retry policy for this task.
        timeout: Per-attempt timeout in seconds (``math.inf`` for none).
        priority: Lower runs first.
        queue: The queue the task is sent to (default: ``"default"``).
        unique_key: A fixed key, or a function called with the task's arguments
            that returns one: while a task with the key is unfinished, another
            submit with the same key is not accepted twice.

    Raises:
        ConfigurationError: A value is invalid.
    """

    name: str
    fn: Callable[..., Any]
    retry: Retry | None = None
    timeout: float | None = None
    priority: int | None = None
    queue: str = DEFAULT_QUEUE
    unique_key: UniqueKey | None = None
    is_async: bool = field(init=False)
    """Whether ``fn`` is a coroutine function (else it runs in a thread)."""

    def __post_init__(self) -> None:
        check_name("task name", self.name)
        check_name("queue", self.queue)
        if not callable(self.fn):
            raise ConfigurationError(f"a task must be callable, got {self.fn!r}")
        key = self.unique_key
        if key is not None and not callable(key):
            TaskOptions(unique_key=key)  # validates: a non-empty str
        TaskOptions(priority=self.priority, retry=self.retry, timeout=self.timeout)
        object.__setattr__(self, "is_async", _is_async(self.fn))

    def unique_key_for(self, args: Sequence[object], kwargs: Mapping[str, object]) -> str | None:
        """Return this task's unique key for these arguments (None when it has none).

        Raises:
            ConfigurationError: The key function raised or did not return a
                non-empty str.
        """
        key = self.unique_key
        if key is None or isinstance(key, str):
            return key
        try:
            value: object = key(*args, **kwargs)
        except Exception as exc:
            raise ConfigurationError(
                f"unique_key function of task {self.name!r} raised {exc!r}"
            ) from exc
        if not isinstance(value, str) or not value:
            raise ConfigurationError(
                f"unique_key function of task {self.name!r} must return a non-empty str, "
                f"got {value!r}"
            )
        return value

    def options_for(self, args: Sequence[object], kwargs: Mapping[str, object]) -> TaskOptions:
        """Return :class:`~taskmill.TaskOptions` carrying this task's defaults.

        Useful to submit a registered task to an in-memory manager with the same
        defaults a durable backend would apply.
        """
        return TaskOptions(
            name=self.name,
            priority=self.priority,
            retry=self.retry,
            timeout=self.timeout,
            unique_key=self.unique_key_for(args, kwargs),
        )


@final
@dataclass(frozen=True, kw_only=True, slots=True)
class RegistryStatistics:
    """A snapshot of a :class:`TaskRegistry`.

    Attributes:
        tasks: How many tasks are registered.
        async_tasks: How many of them are coroutine functions.
        queues: The distinct queue names, sorted.
    """

    tasks: int
    async_tasks: int
    queues: tuple[str, ...]


@final
class TaskRegistry:
    """Maps task names to :class:`TaskSpec` s; the only way a payload reaches code.

    Example:
        >>> registry = TaskRegistry()
        >>> @registry.task(name="mail.send", queue="mail")
        ... async def send(to: str) -> None: ...
        >>> registry.name_of(send)
        'mail.send'
    """

    __slots__ = ("_by_fn", "_by_name", "_periodic")

    def __init__(self) -> None:
        self._by_name: dict[str, TaskSpec] = {}
        self._by_fn: dict[tuple[int, int], TaskSpec] = {}
        self._periodic: dict[str, PeriodicSpec] = {}

    @overload
    def task(self, fn: F, /) -> F: ...

    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
        priority: int | None = None,
        queue: str | None = None,
        unique_key: UniqueKey | None = None,
    ) -> Callable[[F], F]: ...

    def task(
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
        priority: int | None = None,
        queue: str | None = None,
        unique_key: UniqueKey | None = None,
    ) -> F | Callable[[F], F]:
        """Register a function as a task; use bare (``@registry.task``) or with options.

        The function itself is returned unchanged, so it stays directly callable
        and fully typed.

        Args:
            fn: The function (when used without parentheses).
            name: The registered name (default: ``module.qualname``).
            retry: Default retry policy.
            timeout: Default per-attempt timeout in seconds.
            priority: Default priority (lower runs first).
            queue: Default queue (``"default"``).
            unique_key: A fixed unique key, or a function of the arguments.

        Raises:
            ConfigurationError: The name is taken or invalid, the function has no
                stable default name, or an option is invalid.
        """

        def decorate(func: F) -> F:
            self.register(
                func,
                name=name,
                retry=retry,
                timeout=timeout,
                priority=priority,
                queue=queue,
                unique_key=unique_key,
            )
            return func

        return decorate if fn is None else decorate(fn)

    def periodic(
        self,
        *,
        every: float,
        start: _dt.datetime | None = None,
        misfire_grace: float | None = None,
        name: str | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
        priority: int | None = None,
        queue: str | None = None,
    ) -> Callable[[F], F]:
        """Register a task that every durable worker runs once per scheduled instant.

        The instants are ``start + k * every``; each one is enqueued exactly once
        however many workers serve the task's queue (its task id is
        ``periodic:<name>:<instant ms>``), and the function is called with one
        argument: the instant, an aware UTC datetime (annotate it ``datetime``).

        Args:
            every: Seconds between instants (whole milliseconds).
            start: An aware datetime the instants align to (default: the UNIX epoch,
                so ``every=3600`` fires on the hour, UTC).
            misfire_grace: Seconds after its instant a run may still start (default
                and maximum: ``every``); a later first delivery is skipped and ends
                ``cancelled``. A worker that starts enqueues the latest past instant
                if it is within this grace (one catch-up, older instants are skipped).
            name: The registered name (default: ``module.qualname``).
            retry: Retry policy of each instant's run.
            timeout: Per-attempt timeout in seconds.
            priority: Priority of each instant's run.
            queue: Queue (``"default"``); workers serving it schedule the task.

        Raises:
            ConfigurationError: As for :meth:`task`, or the schedule is invalid, or the
                function cannot be called with one positional argument.
        """
        schedule = PeriodicSpec(
            name="placeholder", every=every, start=start, misfire_grace=misfire_grace
        )

        def decorate(func: F) -> F:
            spec = self.register(
                func, name=name, retry=retry, timeout=timeout, priority=priority, queue=queue
            )
            try:
                check_periodic_callable(func, spec.name)
            except ConfigurationError:
                self._remove(spec)
                raise
            self._periodic[spec.name] = PeriodicSpec(
                name=spec.name,
                every=schedule.every,
                start=schedule.start,
                misfire_grace=schedule.misfire_grace,
            )
            return func

        return decorate

    def periodic_specs(self) -> tuple[PeriodicSpec, ...]:
        """Return the schedules of the periodic tasks, sorted by name."""
        return tuple(self._periodic[name] for name in sorted(self._periodic))

    def periodic_spec(self, name: str) -> PeriodicSpec | None:
        """Return the schedule of the periodic task ``name`` (None for other tasks)."""
        return self._periodic.get(name)

    def _remove(self, spec: TaskSpec) -> None:
        del self._by_name[spec.name]
        del self._by_fn[_identity(spec.fn)]

    def register(
        self,
        fn: Callable[..., Any],
        /,
        *,
        name: str | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
        priority: int | None = None,
        queue: str | None = None,
        unique_key: UniqueKey | None = None,
    ) -> TaskSpec:
        """Register ``fn`` (the non-decorator form of :meth:`task`) and return its spec.

        Raises:
            ConfigurationError: As for :meth:`task`.
        """
        if not callable(fn):
            raise ConfigurationError(f"a task must be callable, got {fn!r}")
        if name is None:
            name = default_name(fn)
            if name is None:
                raise ConfigurationError(
                    f"{_describe(fn)} has no stable import name (a lambda, a nested "
                    "function, a partial or a function in __main__); register it with "
                    "an explicit name, e.g. @registry.task(name='app.resize')"
                )
        spec = TaskSpec(
            name=name,
            fn=fn,
            retry=retry,
            timeout=timeout,
            priority=priority,
            queue=DEFAULT_QUEUE if queue is None else queue,
            unique_key=unique_key,
        )
        self._add(spec)
        return spec

    def _add(self, spec: TaskSpec) -> None:
        if spec.name in self._by_name:
            raise ConfigurationError(f"a task named {spec.name!r} is already registered")
        key = _identity(spec.fn)
        if key in self._by_fn:
            other = self._by_fn[key].name
            raise ConfigurationError(f"{_describe(spec.fn)} is already registered as {other!r}")
        self._by_name[spec.name] = spec
        self._by_fn[key] = spec

    def include(self, other: TaskRegistry) -> None:
        """Add every task of ``other`` (e.g. a library's registry) to this one.

        The tasks registered in ``other`` *now* are copied; later registrations
        in ``other`` are not seen. Either every task is added or none is.

        Raises:
            ConfigurationError: A name (or callable) is already registered here.
        """
        if not isinstance(other, TaskRegistry):
            raise ConfigurationError(f"include() takes a TaskRegistry, got {other!r}")
        if other is self:
            raise ConfigurationError("a registry cannot include itself")
        specs = list(other)
        for spec in specs:
            if spec.name in self._by_name:
                raise ConfigurationError(f"a task named {spec.name!r} is already registered")
            if _identity(spec.fn) in self._by_fn:
                raise ConfigurationError(f"{_describe(spec.fn)} is already registered")
        for spec in specs:
            self._add(spec)
        self._periodic.update(other._periodic)

    def get(self, name: str) -> TaskSpec:
        """Return the spec registered under ``name``.

        Raises:
            UnknownTask: No task has that name (nothing is imported to find one).
        """
        candidate: object = name  # payload data: checked, never trusted
        spec = self._by_name.get(candidate) if isinstance(candidate, str) else None
        if spec is None:
            raise UnknownTask(str(name))
        return spec

    def spec_of(self, fn: Callable[..., Any]) -> TaskSpec:
        """Return the spec of a registered callable (by identity).

        Raises:
            UnknownTask: ``fn`` was not registered; the message says how to do it.
        """
        spec = self._by_fn.get(_identity(fn))
        if spec is None:
            guess = default_name(fn) or _describe(fn)
            raise UnknownTask(
                guess,
                hint=(
                    f"{_describe(fn)} is not a registered task; decorate it with "
                    "@registry.task (or call registry.register(fn, name=...)) in a module "
                    "both the producer and the worker import"
                ),
            )
        return spec

    def name_of(self, fn: Callable[..., Any]) -> str:
        """Return the registered name of ``fn`` (by identity).

        Raises:
            UnknownTask: ``fn`` was not registered; the message says how to do it.
        """
        return self.spec_of(fn).name

    def resolve(self, task: str | Callable[..., Any]) -> TaskSpec:
        """Return the spec for a task given by name or by callable.

        Raises:
            UnknownTask: Nothing is registered under that name or for that callable.
        """
        return self.get(task) if isinstance(task, str) else self.spec_of(task)

    def __contains__(self, task: object) -> bool:
        if isinstance(task, str):
            return task in self._by_name
        return callable(task) and _identity(task) in self._by_fn

    def __iter__(self) -> Iterator[TaskSpec]:
        return iter(list(self._by_name.values()))

    def __len__(self) -> int:
        return len(self._by_name)

    def names(self) -> tuple[str, ...]:
        """Return the registered names, sorted."""
        return tuple(sorted(self._by_name))

    def statistics(self) -> RegistryStatistics:
        """Return a snapshot: task count, async count, queues."""
        specs = self._by_name.values()
        return RegistryStatistics(
            tasks=len(specs),
            async_tasks=sum(spec.is_async for spec in specs),
            queues=tuple(sorted({spec.queue for spec in specs})),
        )

    def __repr__(self) -> str:
        return f"<TaskRegistry tasks={len(self._by_name)}>"
