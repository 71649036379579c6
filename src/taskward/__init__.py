"""taskward: background work that never fails silently.

Two halves, one vocabulary: :mod:`taskward.aio` makes in-process asyncio tasks safe, and
:class:`TaskManager` runs durable jobs on SQLite (the default), memory or other backends.
"""

from taskward.aio import (
    TaskSupervisor,
    cancel_background_tasks,
    drain_background_tasks,
    fire_and_forget,
    get_task_failure_counts,
    reset_task_failure_counts,
    safe_create_task,
    safe_gather,
    schedule_with_delay,
)
from taskward.backends.base import Backend, Capability
from taskward.backoff import RetryPolicy
from taskward.canvas import Group, Step, Workflow, chain, group
from taskward.clock import FrozenClock, SystemClock
from taskward.errors import (
    BackendUnavailable,
    Cancel,
    Discard,
    InvalidCron,
    InvalidJob,
    InvalidOptions,
    JobCancelled,
    JobDiscarded,
    JobFailed,
    JobNotFound,
    JobRunning,
    NotSerializable,
    NotSupported,
    PayloadTooLarge,
    PortalClosed,
    RateLimited,
    ScheduleNotFound,
    ScheduleOverlap,
    Snooze,
    TaskwardError,
    UnknownTask,
    WaitTimeout,
    WorkflowNotFound,
)
from taskward.explain import Explanation, Reason
from taskward.graph import StoredStep, WorkflowRecord, WorkflowState
from taskward.health import (
    HealthLimits,
    HealthReport,
    HealthThresholds,
    HealthVerdict,
    QueueThresholds,
)
from taskward.jobs import ErrorRecord, Job, JobState, Page, Schedule
from taskward.limits import QueueLimits, Rate
from taskward.manager import TaskManager
from taskward.runtime.context import JobContext
from taskward.runtime.settings import DrainResult
from taskward.runtime.worker import Worker
from taskward.tasks import Task
from taskward.version import __version__ as __version__

__all__ = [
    "Backend",
    "BackendUnavailable",
    "Cancel",
    "Capability",
    "Discard",
    "DrainResult",
    "ErrorRecord",
    "Explanation",
    "FrozenClock",
    "Group",
    "HealthLimits",
    "HealthReport",
    "HealthThresholds",
    "HealthVerdict",
    "InvalidCron",
    "InvalidJob",
    "InvalidOptions",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobDiscarded",
    "JobFailed",
    "JobNotFound",
    "JobRunning",
    "JobState",
    "NotSerializable",
    "NotSupported",
    "Page",
    "PayloadTooLarge",
    "PortalClosed",
    "QueueLimits",
    "QueueThresholds",
    "Rate",
    "RateLimited",
    "Reason",
    "RetryPolicy",
    "Schedule",
    "ScheduleNotFound",
    "ScheduleOverlap",
    "Snooze",
    "Step",
    "StoredStep",
    "SystemClock",
    "Task",
    "TaskManager",
    "TaskSupervisor",
    "TaskwardError",
    "UnknownTask",
    "WaitTimeout",
    "Worker",
    "Workflow",
    "WorkflowNotFound",
    "WorkflowRecord",
    "WorkflowState",
    "cancel_background_tasks",
    "chain",
    "drain_background_tasks",
    "fire_and_forget",
    "get_task_failure_counts",
    "group",
    "reset_task_failure_counts",
    "safe_create_task",
    "safe_gather",
    "schedule_with_delay",
]
