"""``jobs-legacy``: the processing-job code of the job-status audit, reproduced as audited.

The audited module keeps jobs in SQLite through the SQLAlchemy ORM, one short session per step:

- **Pattern 2, get-or-create by query then insert**: ``get_or_create`` queries for the task and
  inserts it when the query found nothing, with no lock and no unique constraint on ``task_id``
  (only a plain index), so two concurrent calls both insert. ``claim_next`` is the same pattern:
  it SELECTs the oldest pending job and then UPDATEs it in a later commit, so two workers that
  both selected it both claim it.
- **Pattern 3, direct status assignment**: every status change goes through
  ``_update_status(task_id, status)``, which assigns the column and commits, with no check of the
  current status: completed -> processing, pending -> completed, processing -> processing all
  succeed. The rest of the change (worker, attempts, result, error) follows in a *separate*
  commit, so a failure between the two leaves a half-made transition.
- The schema has no CHECK on ``status``, and ``updated_at`` has an ``onupdate`` but no default,
  so a job is stored with ``updated_at`` NULL until its first change.

It claims no guarantee: the harness is expected to find these bugs here. Do not fix them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Integer, String, Text, create_engine, delete, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from harness.families.jobs.contract import Job, JobStore, NotFound, Snapshot
from harness.faults import FaultController

DB_FILE = "jobs.db"


def _utcnow() -> datetime:
    """``datetime.utcnow()`` as the audited model uses it (naive UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class ProcessingJob(Base):
    """The audited model: ``task_id`` indexed but not unique, ``status`` free text."""

    __tablename__ = "processing_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(64), index=True)
    task_type: Mapped[str | None] = mapped_column(String(64))
    input: Mapped[Any] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(32), default="pending")
    worker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    result: Mapped[Any] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime | None] = mapped_column(DateTime, default=_utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime, onupdate=_utcnow)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="microseconds") if value is not None else None


def _job(row: ProcessingJob) -> Job:
    return Job(task_id=row.task_id, task_type=row.task_type or "", input=row.input,
               status=row.status, worker_id=row.worker_id, result=row.result, error=row.error,
               attempts=row.attempts if row.attempts is not None else 0,
               created_at=_iso(row.created_at), updated_at=_iso(row.updated_at))


class JobsLegacyAdapter(JobStore):
    """The audited job storage. Claims nothing."""

    name: ClassVar[str] = "jobs-legacy"
    guarantees: ClassVar[frozenset[str]] = frozenset()
    boundary_points: ClassVar[tuple[str, ...]] = ("sql#k", "commit#k")
    fault_points: ClassVar[dict[str, tuple[str, ...]]] = {
        "get_or_create": ("get_or_create.after_query",),
        "claim_next": ("claim_next.after_select", "claim_next.after_status_commit"),
        "mark_processing": ("mark_processing.after_status_commit",),
        "mark_completed": ("mark_completed.after_status_commit",),
        "mark_failed": ("mark_failed.after_status_commit",),
    }

    def __init__(self, location: str, faults: FaultController | None = None) -> None:
        super().__init__(location, faults)
        os.makedirs(location, exist_ok=True)
        self.path = os.path.join(location, DB_FILE)
        self.engine = create_engine(f"sqlite:///{self.path}",
                                    connect_args={"check_same_thread": False})
        self.Session = sessionmaker(self.engine, expire_on_commit=False)
        Base.metadata.create_all(self.engine)

    # -- lifecycle
    def close(self) -> None:
        self.engine.dispose()

    def reset(self) -> None:
        with self.Session() as s:
            s.execute(delete(ProcessingJob))
            s.commit()

    def snapshot(self) -> Snapshot:
        with self.Session() as s:
            rows = s.scalars(select(ProcessingJob).order_by(ProcessingJob.id)).all()
            return Snapshot(jobs=[_job(r) for r in rows])

    # -- helpers, as audited
    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self.Session() as s:
            yield s

    @staticmethod
    def _find(s: Session, task_id: str) -> ProcessingJob | None:
        return s.query(ProcessingJob).filter_by(task_id=task_id).first()

    def _update_status(self, task_id: str, status: str) -> None:
        """Pattern 3: assign the status and commit; no look at the current one."""
        with self._session() as s:
            row = self._find(s, task_id)
            if row is None:
                raise NotFound(f"task {task_id!r}")
            row.status = status
            s.commit()

    def _set_fields(self, task_id: str, *, bump_attempts: bool = False, **fields: Any) -> None:
        """The second commit of a status change (worker, attempts, result, error)."""
        with self._session() as s:
            row = self._find(s, task_id)
            if row is None:
                raise NotFound(f"task {task_id!r}")
            for key, value in fields.items():
                setattr(row, key, value)
            if bump_attempts:
                row.attempts = (row.attempts or 0) + 1
            s.commit()

    # -- the contract
    def get_or_create(self, task_id: str, task_type: str, input: Any) -> Job:  # noqa: A002
        """Pattern 2: query, then insert when nothing was found (no lock, no unique key)."""
        with self._session() as s:
            row = self._find(s, task_id)
            if row is not None:
                return _job(row)
            self.faults.point("get_or_create.after_query")
            row = ProcessingJob(task_id=task_id, task_type=task_type, input=input, status="pending",
                                attempts=0)
            s.add(row)
            s.commit()
            return _job(row)

    def claim_next(self, worker_id: str) -> Job | None:
        """SELECT the oldest pending job, then claim it in later commits (Patterns 2 and 3)."""
        with self._session() as s:
            row = s.query(ProcessingJob).filter_by(status="pending") \
                .order_by(ProcessingJob.created_at, ProcessingJob.id).first()
            task_id = row.task_id if row is not None else None
        if task_id is None:
            return None
        self.faults.point("claim_next.after_select")
        self._update_status(task_id, "processing")
        self.faults.point("claim_next.after_status_commit")
        self._set_fields(task_id, worker_id=worker_id, bump_attempts=True)
        return self.get(task_id)

    def mark_processing(self, task_id: str, worker_id: str | None = None) -> Job:
        """Pattern 3: status first, worker and attempts in a second commit."""
        self._update_status(task_id, "processing")
        self.faults.point("mark_processing.after_status_commit")
        self._set_fields(task_id, worker_id=worker_id, bump_attempts=True)
        return self.get(task_id)

    def mark_completed(self, task_id: str, result: Any) -> Job:
        """Pattern 3: status first, the result in a second commit."""
        self._update_status(task_id, "completed")
        self.faults.point("mark_completed.after_status_commit")
        self._set_fields(task_id, result=result)
        return self.get(task_id)

    def mark_failed(self, task_id: str, error: str) -> Job:
        """Pattern 3: status first, the error in a second commit."""
        self._update_status(task_id, "failed")
        self.faults.point("mark_failed.after_status_commit")
        self._set_fields(task_id, error=error)
        return self.get(task_id)

    def get(self, task_id: str) -> Job:
        with self._session() as s:
            row = self._find(s, task_id)
            if row is None:
                raise NotFound(f"task {task_id!r}")
            return _job(row)
