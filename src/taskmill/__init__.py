"""taskmill: background work that keeps running.

Retries with backoff, tagged task groups, supervised workers, periodic and
triggered jobs, an application lifecycle, and a task manager with priorities,
concurrency and rate limits, scheduling, results and cancellation — asyncio-native,
in memory, on SQLite or on Redis.
"""

from __future__ import annotations

from ._app import App as App
from ._app import AppState as AppState
from ._app import AppStatistics as AppStatistics
from ._app import Ready as Ready
from ._backoff import Backoff as Backoff
from ._backoff import Constant as Constant
from ._backoff import Exponential as Exponential
from ._backoff import Jitter as Jitter
from ._durable import DurableClient as DurableClient
from ._durable import DurableHandle as DurableHandle
from ._durable import SubmitOptions as SubmitOptions
from ._errors import AlreadyStarted as AlreadyStarted
from ._errors import BackendError as BackendError
from ._errors import BackendUnavailable as BackendUnavailable
from ._errors import CannotBeConfigured as CannotBeConfigured
from ._errors import CannotBeStopped as CannotBeStopped
from ._errors import ConfigurationError as ConfigurationError
from ._errors import Next as Next
from ._errors import NotRunning as NotRunning
from ._errors import PayloadError as PayloadError
from ._errors import PayloadTooLarge as PayloadTooLarge
from ._errors import QueueFull as QueueFull
from ._errors import ResetBackoff as ResetBackoff
from ._errors import RetriesExhausted as RetriesExhausted
from ._errors import RetryDirective as RetryDirective
from ._errors import RetryNow as RetryNow
from ._errors import SignatureError as SignatureError
from ._errors import StateError as StateError
from ._errors import StopRetrying as StopRetrying
from ._errors import StopTimeout as StopTimeout
from ._errors import StorageFull as StorageFull
from ._errors import TagExists as TagExists
from ._errors import TaskCancelled as TaskCancelled
from ._errors import TaskFailed as TaskFailed
from ._errors import TaskmillError as TaskmillError
from ._errors import TaskNotFound as TaskNotFound
from ._errors import TaskTimeout as TaskTimeout
from ._errors import UnknownTask as UnknownTask
from ._errors import WorkerExitedPrematurely as WorkerExitedPrematurely
from ._errors import WouldBlock as WouldBlock
from ._group import Group as Group
from ._group import GroupStatistics as GroupStatistics
from ._group import GroupStrategy as GroupStrategy
from ._group import GroupTask as GroupTask
from ._group import GroupTaskOutcome as GroupTaskOutcome
from ._group import GroupTaskState as GroupTaskState
from ._group import open_group as open_group
from ._handle import TaskHandle as TaskHandle
from ._handle import TaskInfo as TaskInfo
from ._handle import TaskStatus as TaskStatus
from ._health import Health as Health
from ._health import HealthError as HealthError
from ._health import HealthLevel as HealthLevel
from ._health import HealthSnapshot as HealthSnapshot
from ._intermittent import Intermittent as Intermittent
from ._intermittent import IntermittentStatistics as IntermittentStatistics
from ._intermittent import StartFn as StartFn
from ._intermittent import StopFn as StopFn
from ._intermittent import idle_keep_alive as idle_keep_alive
from ._jobgroup import JobGroup as JobGroup
from ._jobgroup import JobGroupState as JobGroupState
from ._jobgroup import JobGroupStatistics as JobGroupStatistics
from ._jobgroup import JobScope as JobScope
from ._jobs import Job as Job
from ._jobs import JobKind as JobKind
from ._jobs import JobState as JobState
from ._jobs import JobStatistics as JobStatistics
from ._jobs import current_health as current_health
from ._jobs import observer as observer
from ._jobs import one_shot as one_shot
from ._lifecycle import ConfigScope as ConfigScope
from ._lifecycle import Configurable as Configurable
from ._lifecycle import Lifecycle as Lifecycle
from ._lifecycle import LifecycleStatistics as LifecycleStatistics
from ._lifecycle import LifecycleStatus as LifecycleStatus
from ._lifecycle import Startable as Startable
from ._lifecycle import Stoppable as Stoppable
from ._lifecycle import configure_component as configure_component
from ._lifecycle import is_configurable as is_configurable
from ._lifecycle import is_stoppable as is_stoppable
from ._lifecycle import stop_component as stop_component
from ._logging import JsonFormatter as JsonFormatter
from ._logging import LogKeys as LogKeys
from ._logging import configure_logging as configure_logging
from ._logging import log_extras as log_extras
from ._manager import Retention as Retention
from ._manager import TaskManager as TaskManager
from ._memory import MemoryBackend as MemoryBackend
from ._metrics import Metrics as Metrics
from ._metrics import NoopMetrics as NoopMetrics
from ._middleware import CallNext as CallNext
from ._middleware import Middleware as Middleware
from ._names import sanitize_name as sanitize_name
from ._periodic import PeriodicScheduler as PeriodicScheduler
from ._periodic import PeriodicSpec as PeriodicSpec
from ._periodic import PeriodicStatistics as PeriodicStatistics
from ._poll import PollBackoff as PollBackoff
from ._poll import PollState as PollState
from ._poll import poll as poll
from ._ratelimit import RateLimit as RateLimit
from ._registry import RegistryStatistics as RegistryStatistics
from ._registry import TaskRegistry as TaskRegistry
from ._registry import TaskSpec as TaskSpec
from ._reports import ManagerStatistics as ManagerStatistics
from ._reports import StopReport as StopReport
from ._results import DropPolicy as DropPolicy
from ._results import ResultStream as ResultStream
from ._results import ResultStreamStatistics as ResultStreamStatistics
from ._results import TaskResult as TaskResult
from ._retry import Retry as Retry
from ._retry import RetryDecorator as RetryDecorator
from ._retry import RetryOn as RetryOn
from ._retry import retry as retry
from ._retry import run as run
from ._runner import Attempt as Attempt
from ._runner import RetryState as RetryState
from ._runner import Runner as Runner
from ._runner import Step as Step
from ._submit import TaskSubmitter as TaskSubmitter
from ._subsystem import SubsystemFilter as SubsystemFilter
from ._subsystem import current_subsystem as current_subsystem
from ._subsystem import current_trace_id as current_trace_id
from ._subsystem import subsystem as subsystem
from ._supervise import DeclarativeWorker as DeclarativeWorker
from ._supervise import RestartPolicy as RestartPolicy
from ._supervise import Supervised as Supervised
from ._supervise import SupervisorStatistics as SupervisorStatistics
from ._supervise import supervise as supervise
from ._taskoptions import TaskOptions as TaskOptions
from ._ticker import Ticker as Ticker
from ._ticker import TickerStatistics as TickerStatistics
from ._ticker import wait_tick as wait_tick
from ._timer import timer as timer
from ._trigger import Trigger as Trigger
from ._trigger import TriggerStatistics as TriggerStatistics
from ._version import __version__ as __version__
from ._worker_runtime import DurableWorker as DurableWorker
from ._worker_runtime import DurableWorkerStatistics as DurableWorkerStatistics
from ._workers import NamedWorker as NamedWorker
from ._workers import Repeat as Repeat
from ._workers import RepeatStatistics as RepeatStatistics
from ._workers import RunOnce as RunOnce
from ._workers import RunOnceLike as RunOnceLike
from ._workers import Worker as Worker
from ._workers import WorkerLike as WorkerLike
from ._workers import WorkerProvider as WorkerProvider
from ._workers import WorkerRegistry as WorkerRegistry
from ._workers import named as named
from ._workers import repeat as repeat
from ._workers import run_all_jobs as run_all_jobs
from ._workers import run_all_workers as run_all_workers

__all__ = [
    "AlreadyStarted",
    "App",
    "AppState",
    "AppStatistics",
    "Attempt",
    "BackendError",
    "BackendUnavailable",
    "Backoff",
    "CallNext",
    "CannotBeConfigured",
    "CannotBeStopped",
    "ConfigScope",
    "Configurable",
    "ConfigurationError",
    "Constant",
    "DeclarativeWorker",
    "DropPolicy",
    "DurableClient",
    "DurableHandle",
    "DurableWorker",
    "DurableWorkerStatistics",
    "Exponential",
    "Group",
    "GroupStatistics",
    "GroupStrategy",
    "GroupTask",
    "GroupTaskOutcome",
    "GroupTaskState",
    "Health",
    "HealthError",
    "HealthLevel",
    "HealthSnapshot",
    "Intermittent",
    "IntermittentStatistics",
    "Jitter",
    "Job",
    "JobGroup",
    "JobGroupState",
    "JobGroupStatistics",
    "JobKind",
    "JobScope",
    "JobState",
    "JobStatistics",
    "JsonFormatter",
    "Lifecycle",
    "LifecycleStatistics",
    "LifecycleStatus",
    "LogKeys",
    "ManagerStatistics",
    "MemoryBackend",
    "Metrics",
    "Middleware",
    "NamedWorker",
    "Next",
    "NoopMetrics",
    "NotRunning",
    "PayloadError",
    "PayloadTooLarge",
    "PeriodicScheduler",
    "PeriodicSpec",
    "PeriodicStatistics",
    "PollBackoff",
    "PollState",
    "QueueFull",
    "RateLimit",
    "Ready",
    "RegistryStatistics",
    "Repeat",
    "RepeatStatistics",
    "ResetBackoff",
    "RestartPolicy",
    "ResultStream",
    "ResultStreamStatistics",
    "Retention",
    "RetriesExhausted",
    "Retry",
    "RetryDecorator",
    "RetryDirective",
    "RetryNow",
    "RetryOn",
    "RetryState",
    "RunOnce",
    "RunOnceLike",
    "Runner",
    "SignatureError",
    "StartFn",
    "Startable",
    "StateError",
    "Step",
    "StopFn",
    "StopReport",
    "StopRetrying",
    "StopTimeout",
    "Stoppable",
    "StorageFull",
    "SubmitOptions",
    "SubsystemFilter",
    "Supervised",
    "SupervisorStatistics",
    "TagExists",
    "TaskCancelled",
    "TaskFailed",
    "TaskHandle",
    "TaskInfo",
    "TaskManager",
    "TaskNotFound",
    "TaskOptions",
    "TaskRegistry",
    "TaskResult",
    "TaskSpec",
    "TaskStatus",
    "TaskSubmitter",
    "TaskTimeout",
    "TaskmillError",
    "Ticker",
    "TickerStatistics",
    "Trigger",
    "TriggerStatistics",
    "UnknownTask",
    "Worker",
    "WorkerExitedPrematurely",
    "WorkerLike",
    "WorkerProvider",
    "WorkerRegistry",
    "WouldBlock",
    "__version__",
    "configure_component",
    "configure_logging",
    "current_health",
    "current_subsystem",
    "current_trace_id",
    "idle_keep_alive",
    "is_configurable",
    "is_stoppable",
    "log_extras",
    "named",
    "observer",
    "one_shot",
    "open_group",
    "poll",
    "repeat",
    "retry",
    "run",
    "run_all_jobs",
    "run_all_workers",
    "sanitize_name",
    "stop_component",
    "subsystem",
    "supervise",
    "timer",
    "wait_tick",
]

# Public names report their public home (reprs, tracebacks and docs say taskmill.X).
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("taskmill._"):
        _obj.__module__ = __name__
del _name, _obj
