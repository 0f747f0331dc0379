"""taskmill: background work that keeps running.

Retries with backoff, tagged task groups, supervised workers, periodic and
triggered jobs, an application lifecycle, and a task manager with priorities,
concurrency and rate limits, scheduling, results and cancellation — asyncio-native,
in memory, on SQLite or on Redis.
"""

from __future__ import annotations

from ._backoff import Backoff as Backoff
from ._backoff import Constant as Constant
from ._backoff import Exponential as Exponential
from ._backoff import Jitter as Jitter
from ._errors import AlreadyStarted as AlreadyStarted
from ._errors import CannotBeConfigured as CannotBeConfigured
from ._errors import CannotBeStopped as CannotBeStopped
from ._errors import ConfigurationError as ConfigurationError
from ._errors import Next as Next
from ._errors import NotRunning as NotRunning
from ._errors import PayloadError as PayloadError
from ._errors import PayloadTooLarge as PayloadTooLarge
from ._errors import ResetBackoff as ResetBackoff
from ._errors import RetriesExhausted as RetriesExhausted
from ._errors import RetryDirective as RetryDirective
from ._errors import RetryNow as RetryNow
from ._errors import SignatureError as SignatureError
from ._errors import StateError as StateError
from ._errors import StopRetrying as StopRetrying
from ._errors import StopTimeout as StopTimeout
from ._errors import TagExists as TagExists
from ._errors import TaskCancelled as TaskCancelled
from ._errors import TaskFailed as TaskFailed
from ._errors import TaskmillError as TaskmillError
from ._errors import TaskNotFound as TaskNotFound
from ._errors import TaskTimeout as TaskTimeout
from ._errors import UnknownTask as UnknownTask
from ._errors import WorkerExitedPrematurely as WorkerExitedPrematurely
from ._errors import WouldBlock as WouldBlock
from ._health import Health as Health
from ._health import HealthError as HealthError
from ._health import HealthLevel as HealthLevel
from ._health import HealthSnapshot as HealthSnapshot
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
from ._metrics import Metrics as Metrics
from ._metrics import NoopMetrics as NoopMetrics
from ._names import sanitize_name as sanitize_name
from ._registry import RegistryStatistics as RegistryStatistics
from ._registry import TaskRegistry as TaskRegistry
from ._registry import TaskSpec as TaskSpec
from ._retry import Retry as Retry
from ._retry import RetryDecorator as RetryDecorator
from ._retry import RetryOn as RetryOn
from ._retry import retry as retry
from ._retry import run as run
from ._runner import Attempt as Attempt
from ._runner import RetryState as RetryState
from ._runner import Runner as Runner
from ._runner import Step as Step
from ._taskoptions import TaskOptions as TaskOptions
from ._ticker import Ticker as Ticker
from ._ticker import TickerStatistics as TickerStatistics
from ._ticker import wait_tick as wait_tick
from ._timer import timer as timer
from ._trigger import Trigger as Trigger
from ._trigger import TriggerStatistics as TriggerStatistics
from ._version import __version__ as __version__

__all__ = [
    "AlreadyStarted",
    "Attempt",
    "Backoff",
    "CannotBeConfigured",
    "CannotBeStopped",
    "ConfigurationError",
    "Constant",
    "Exponential",
    "Health",
    "HealthError",
    "HealthLevel",
    "HealthSnapshot",
    "Jitter",
    "Job",
    "JobGroup",
    "JobGroupState",
    "JobGroupStatistics",
    "JobKind",
    "JobScope",
    "JobState",
    "JobStatistics",
    "Metrics",
    "Next",
    "NoopMetrics",
    "NotRunning",
    "PayloadError",
    "PayloadTooLarge",
    "RegistryStatistics",
    "ResetBackoff",
    "RetriesExhausted",
    "Retry",
    "RetryDecorator",
    "RetryDirective",
    "RetryNow",
    "RetryOn",
    "RetryState",
    "Runner",
    "SignatureError",
    "StateError",
    "Step",
    "StopRetrying",
    "StopTimeout",
    "TagExists",
    "TaskCancelled",
    "TaskFailed",
    "TaskNotFound",
    "TaskOptions",
    "TaskRegistry",
    "TaskSpec",
    "TaskTimeout",
    "TaskmillError",
    "Ticker",
    "TickerStatistics",
    "Trigger",
    "TriggerStatistics",
    "UnknownTask",
    "WorkerExitedPrematurely",
    "WouldBlock",
    "__version__",
    "current_health",
    "observer",
    "one_shot",
    "retry",
    "run",
    "sanitize_name",
    "timer",
    "wait_tick",
]

# Public names report their public home (reprs, tracebacks and docs say taskmill.X).
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("taskmill._"):
        _obj.__module__ = __name__
del _name, _obj
