"""The processing-jobs contract (DESIGN section 8, ``jobs``): records, statuses, transitions and
the abstract adapter every ``jobs-*`` adapter implements.

A job moves ``pending -> processing -> completed | failed``; ``failed -> processing`` is a retry;
``completed`` is terminal. ``attempts`` counts the entries into ``processing``, so every state a
valid path reaches is a ``(status, attempts)`` pair on one line:
``(pending, 0) -> (processing, 1) -> (failed, 1) -> (processing, 2) -> ... -> (completed, n)``.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from harness.errors import Conflict, InvalidData, NotFound, StorageError
from harness.store import Store

__all__ = ["COMPLETED", "Conflict", "FAILED", "InvalidData", "Job", "JobStore", "NotFound",
           "PENDING", "PROCESSING", "STATUSES", "Snapshot", "StorageError", "TRANSITIONS",
           "WRITE_OPERATIONS", "now_iso"]

PENDING, PROCESSING, COMPLETED, FAILED = "pending", "processing", "completed", "failed"
STATUSES: tuple[str, ...] = (PENDING, PROCESSING, COMPLETED, FAILED)
#: status -> the statuses one operation may move it to.
TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({PROCESSING}),
    PROCESSING: frozenset({COMPLETED, FAILED}),
    FAILED: frozenset({PROCESSING}),
    COMPLETED: frozenset(),
}

OPERATIONS: tuple[str, ...] = ("get_or_create", "claim_next", "mark_processing", "mark_completed",
                               "mark_failed", "get")
WRITE_OPERATIONS: frozenset[str] = frozenset({"get_or_create", "claim_next", "mark_processing",
                                              "mark_completed", "mark_failed"})


def now_iso() -> str:
    """UTC timestamp with microseconds: the format every ``jobs`` adapter reports."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass
class Job:
    """One processing job. Timestamps are ISO 8601 strings (``updated_at`` may be None only in a
    store that breaks the contract)."""

    task_id: str
    task_type: str
    input: Any
    status: str
    worker_id: str | None = None
    result: Any = None
    error: str | None = None
    attempts: int = 0
    created_at: str | None = None
    updated_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def job_from_dict(d: dict[str, Any]) -> Job:
    names = Job.__dataclass_fields__
    return Job(**{k: v for k, v in d.items() if k in names})


@dataclass
class Snapshot:
    """Every stored job row, in storage order. A list, not a map: a store without a unique
    ``task_id`` may hold two rows of one task, and the snapshot must show it."""

    jobs: list[Job] = field(default_factory=list)

    def by_task(self) -> dict[str, list[Job]]:
        out: dict[str, list[Job]] = {}
        for job in self.jobs:
            out.setdefault(job.task_id, []).append(job)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"jobs": [j.to_dict() for j in self.jobs]}


class JobStore(Store):
    """The ``jobs`` contract. Each operation is one unit of work.

    - ``get_or_create(task_id, task_type, input)``: the job with that ``task_id``; creates it
      (``pending``, ``attempts`` 0, no worker, ``created_at == updated_at``) iff none exists, also
      under concurrent calls. An existing job is returned unchanged, whatever the other arguments.
    - ``claim_next(worker_id)``: atomically takes the oldest ``pending`` job (``created_at``, then
      ``task_id``), moves it to ``processing`` with ``worker_id`` recorded and ``attempts + 1``,
      and returns it; None when no job is pending. Two concurrent claims never take one job.
    - ``mark_processing(task_id, worker_id=None)``: ``pending`` or ``failed`` (a retry) ->
      ``processing``, ``attempts + 1``, ``worker_id`` recorded.
    - ``mark_completed(task_id, result)``: ``processing`` -> ``completed`` with ``result``.
    - ``mark_failed(task_id, error)``: ``processing`` -> ``failed`` with ``error``.
    - ``get(task_id)``: the job.

    Every write sets ``updated_at``. A missing task raises :class:`NotFound`; a transition not in
    :data:`TRANSITIONS` raises :class:`Conflict` and changes nothing; a missing ``result`` /
    ``error`` raises :class:`InvalidData`; a store failure raises :class:`StorageError` (outcome
    unknown). The schema refuses a status outside :data:`STATUSES`.
    """

    family: ClassVar[str] = "jobs"
    operations: ClassVar[tuple[str, ...]] = OPERATIONS
    write_operations: ClassVar[frozenset[str]] = WRITE_OPERATIONS

    @abc.abstractmethod
    def get_or_create(self, task_id: str, task_type: str, input: Any) -> Job: ...  # noqa: A002

    @abc.abstractmethod
    def claim_next(self, worker_id: str) -> Job | None: ...

    @abc.abstractmethod
    def mark_processing(self, task_id: str, worker_id: str | None = None) -> Job: ...

    @abc.abstractmethod
    def mark_completed(self, task_id: str, result: Any) -> Job: ...

    @abc.abstractmethod
    def mark_failed(self, task_id: str, error: str) -> Job: ...

    @abc.abstractmethod
    def get(self, task_id: str) -> Job: ...

    @abc.abstractmethod
    def snapshot(self) -> Snapshot: ...


def check_result(result: Any) -> None:
    """``InvalidData`` unless ``result`` is given (a completed job carries its result)."""
    if result is None:
        raise InvalidData("result", "required")


def check_error(error: Any) -> None:
    """``InvalidData`` unless ``error`` is a non-empty string."""
    if not isinstance(error, str) or not error:
        raise InvalidData("error", "a non-empty string is required")
