"""``jobs-sqlite`` and ``jobs-postgres``: the ``jobs`` contract on SQLAlchemy Core, done right.

Every operation is ONE transaction. The schema enforces what it can: ``task_id`` is the primary
key (one job per task), CHECK constraints keep ``status`` in the enum, ``created_at <=
updated_at``, and tie each status to its fields (a pending job has no attempts and no worker, a
completed one a result, a failed one an error). ``get_or_create`` inserts with ``ON CONFLICT DO
NOTHING`` and reads back, so concurrent calls return the one row. Changes lock before they read:
SQLite writes begin with ``BEGIN IMMEDIATE`` (the database write lock); PostgreSQL runs READ
COMMITTED with ``SELECT ... FOR UPDATE`` on the job, and ``claim_next`` takes the oldest pending
job with ``FOR UPDATE SKIP LOCKED``, so two workers never claim one job. Transitions are checked
against :data:`~harness.families.jobs.contract.TRANSITIONS` under that lock (``Conflict``).
Contention (``SQLITE_BUSY``, serialization failures, deadlocks) is retried; every other database
error becomes :class:`StorageError`. Injected faults and simulated crashes pass through.

Locations, connection setup and fork handling follow the resume adapters: SQLite in
``<location>/jobs.sqlite3`` with the same connect pragmas (WAL, ``synchronous=FULL``, busy
timeout); PostgreSQL in a schema per location (the DSN's ``harness_schema``), made and dropped by
:class:`adapters.postgres.PostgresAdapter`'s location methods.
"""

from __future__ import annotations

import abc
import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, ClassVar, Literal, TypeVar

import psycopg
from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    create_engine,
    delete,
    event,
    select,
    update,
)
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, Connection, Engine, Row
from sqlalchemy.exc import DBAPIError, SQLAlchemyError, StatementError
from sqlalchemy.pool import QueuePool

from adapters.postgres import PostgresAdapter, parse_dsn
from adapters.sqlite import BUSY_TIMEOUT_S, _on_connect
from harness.errors import ContractError
from harness.families.jobs.contract import (
    COMPLETED,
    FAILED,
    PENDING,
    PROCESSING,
    STATUSES,
    TRANSITIONS,
    Conflict,
    Job,
    JobStore,
    NotFound,
    Snapshot,
    StorageError,
    check_error,
    check_result,
    now_iso,
)
from harness.faults import FaultController
from harness.redact import redact
from harness.store import ATOMIC, CRASH_SAFE, DURABLE, PROCESS_SAFE, THREAD_SAFE

T = TypeVar("T")
Mode = Literal["read", "write"]
READ: Mode = "read"
WRITE: Mode = "write"
MAX_ATTEMPTS = 8
_JITTER = random.Random()
ALL_GUARANTEES = frozenset({ATOMIC, THREAD_SAFE, PROCESS_SAFE, CRASH_SAFE, DURABLE})

# --------------------------------------------------------------------------- schema


def _key() -> Text:
    """Text compared byte-wise (``COLLATE "C"`` on PostgreSQL): ISO timestamps order as strings."""
    return Text().with_variant(Text(collation="C"), "postgresql")


_ENUM = ", ".join(f"'{s}'" for s in STATUSES)
metadata = MetaData()
jobs = Table(
    "processing_jobs", metadata,
    Column("task_id", _key(), primary_key=True),
    Column("task_type", Text, nullable=False),
    Column("input", JSON(none_as_null=True)),
    Column("status", Text, nullable=False),
    Column("worker_id", Text),
    Column("result", JSON(none_as_null=True)),
    Column("error", Text),
    Column("attempts", Integer, nullable=False),
    Column("created_at", _key(), nullable=False),
    Column("updated_at", _key(), nullable=False),
    CheckConstraint(f"status IN ({_ENUM})", name="jobs_status_in_enum"),
    CheckConstraint("created_at <= updated_at", name="jobs_created_before_updated"),
    CheckConstraint("attempts >= 0", name="jobs_attempts_not_negative"),
    CheckConstraint("status <> 'pending' OR (attempts = 0 AND worker_id IS NULL)",
                    name="jobs_pending_unclaimed"),
    CheckConstraint("status = 'pending' OR attempts >= 1", name="jobs_claimed_counted"),
    CheckConstraint("status <> 'completed' OR result IS NOT NULL", name="jobs_completed_result"),
    CheckConstraint("status <> 'failed' OR error IS NOT NULL", name="jobs_failed_error"),
)
Index("processing_jobs_claim_order", jobs.c.status, jobs.c.created_at, jobs.c.task_id)


def _job(row: Row[Any]) -> Job:
    m = row._mapping
    return Job(task_id=m["task_id"], task_type=m["task_type"], input=m["input"], status=m["status"],
               worker_id=m["worker_id"], result=m["result"], error=m["error"],
               attempts=m["attempts"], created_at=m["created_at"], updated_at=m["updated_at"])


# --------------------------------------------------------------------------- fork safety

_LIVE: weakref.WeakSet[JobsSQLStore] = weakref.WeakSet()
#: Pools inherited over fork(): kept referenced in the child so that garbage collection never
#: closes (for PostgreSQL: terminates) connections that belong to the parent.
_ABANDONED: list[Any] = []


def _before_fork() -> None:
    for store in list(_LIVE):
        store._before_fork()


def _after_fork_in_child() -> None:
    for store in list(_LIVE):
        store._engine_lock = threading.Lock()
        store._abandon_inherited_pool()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


# --------------------------------------------------------------------------- the adapter


class JobsSQLStore(JobStore):
    """The ``jobs`` contract on a SQLAlchemy engine; see the module docstring."""

    guarantees: ClassVar[frozenset[str]] = ALL_GUARANTEES
    boundary_points: ClassVar[tuple[str, ...]] = ("sql#k", "commit#k")
    fault_points: ClassVar[dict[str, tuple[str, ...]]] = {
        "get_or_create": ("get_or_create.after_check", "get_or_create.after_insert"),
        "claim_next": ("claim_next.after_select", "claim_next.after_update"),
        "mark_processing": ("mark_processing.after_check", "mark_processing.after_update"),
        "mark_completed": ("mark_completed.after_check", "mark_completed.after_update"),
        "mark_failed": ("mark_failed.after_check", "mark_failed.after_update"),
    }

    def __init__(self, location: str, faults: FaultController | None = None) -> None:
        super().__init__(location, faults)
        self._pid = os.getpid()
        self._closed = False
        self._engine_lock = threading.Lock()
        self._engine: Engine = self._create_engine()
        _LIVE.add(self)
        try:
            self._tx(WRITE, self._create_schema)
        except BaseException:
            self.close()
            raise

    # -- backend hooks
    @abc.abstractmethod
    def _create_engine(self) -> Engine: ...

    @abc.abstractmethod
    def _begin(self, conn: Connection, mode: Mode) -> None: ...

    def _connection_options(self, mode: Mode) -> dict[str, Any]:
        return {}

    def _retryable(self, exc: BaseException) -> bool:
        return False

    def _driver_errors(self) -> tuple[type[BaseException], ...]:
        return ()

    def _create_schema(self, conn: Connection) -> None:
        metadata.create_all(conn)

    def _before_fork(self) -> None:  # noqa: B027 - optional hook
        """Called in the parent just before ``os.fork()``."""

    def _insert(self, conn: Connection) -> Any:
        return pg_dialect.insert if conn.dialect.name == "postgresql" else sqlite_dialect.insert

    # -- engine and transactions
    @property
    def engine(self) -> Engine:
        """The engine (for tests that need raw SQL behind the adapter's back)."""
        self._check_fork()
        return self._engine

    def _check_fork(self) -> None:
        if self._pid != os.getpid():
            self._abandon_inherited_pool()

    def _abandon_inherited_pool(self) -> None:
        with self._engine_lock:
            if self._pid == os.getpid():
                return
            _ABANDONED.append(self._engine.pool)
            self._engine.dispose(close=False)
            self._pid = os.getpid()

    def _tx(self, mode: Mode, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one transaction, retrying contention; errors become StorageError."""
        if self._closed:
            raise StorageError(f"{self.name}: adapter is closed")
        self._check_fork()
        attempt = 0
        while True:
            attempt += 1
            committed = False
            try:
                with self._engine.connect() as conn:
                    options = self._connection_options(mode)
                    if options:
                        conn.execution_options(**options)
                    with conn.begin():
                        self._begin(conn, mode)
                        result = work(conn)
                    committed = True
                return result
            except ContractError:
                raise
            except (SQLAlchemyError, OSError, *self._driver_errors()) as exc:
                if committed:  # only giving the connection back failed: the unit is done
                    return result
                inner = exc.orig if isinstance(exc, StatementError) else None
                if isinstance(inner, ContractError):
                    raise inner from None
                if attempt < MAX_ATTEMPTS and self._retryable(exc):
                    time.sleep(_JITTER.uniform(0, min(0.2, 0.002 * 2 ** attempt)))
                    continue
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise StorageError(f"{self.name}: {type(exc).__name__}: {redact(first)}") from exc

    # -- lifecycle
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _LIVE.discard(self)
        if self._pid != os.getpid():
            _ABANDONED.append(self._engine.pool)
            self._engine.dispose(close=False)
        else:
            self._engine.dispose()

    def reset(self) -> None:
        self._tx(WRITE, lambda conn: conn.execute(delete(jobs)))

    def snapshot(self) -> Snapshot:
        def work(conn: Connection) -> Snapshot:
            rows = conn.execute(select(jobs).order_by(jobs.c.created_at, jobs.c.task_id))
            return Snapshot(jobs=[_job(r) for r in rows])
        return self._tx(READ, work)

    # -- helpers used inside transactions
    @staticmethod
    def _load(conn: Connection, task_id: str, *, lock: bool = False) -> Job:
        stmt = select(jobs).where(jobs.c.task_id == task_id)
        if lock:
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).first()
        if row is None:
            raise NotFound(f"task {task_id!r}")
        return _job(row)

    def _transition(self, op: str, task_id: str, target: str, **values: Any) -> Job:
        """Move ``task_id`` to ``target`` under the row lock, if TRANSITIONS allow it."""
        def work(conn: Connection) -> Job:
            job = self._load(conn, task_id, lock=True)
            if target not in TRANSITIONS.get(job.status, frozenset()):
                raise Conflict(f"task {task_id!r} is {job.status}: {op} cannot move it to {target}")
            self.faults.point(f"{op}.after_check")
            changes = dict(values, status=target, updated_at=now_iso())
            if target == PROCESSING:
                changes["attempts"] = job.attempts + 1
            conn.execute(update(jobs).where(jobs.c.task_id == task_id).values(**changes))
            self.faults.point(f"{op}.after_update")
            return self._load(conn, task_id)
        return self._tx(WRITE, work)

    # -- the contract
    def get_or_create(self, task_id: str, task_type: str, input: Any) -> Job:  # noqa: A002
        def work(conn: Connection) -> Job:
            existing = conn.execute(select(jobs).where(jobs.c.task_id == task_id)).first()
            if existing is not None:
                return _job(existing)
            self.faults.point("get_or_create.after_check")
            now = now_iso()
            stmt = self._insert(conn)(jobs).values(
                task_id=task_id, task_type=task_type, input=input, status=PENDING, worker_id=None,
                result=None, error=None, attempts=0, created_at=now, updated_at=now)
            conn.execute(stmt.on_conflict_do_nothing(index_elements=[jobs.c.task_id]))
            self.faults.point("get_or_create.after_insert")
            return self._load(conn, task_id)
        return self._tx(WRITE, work)

    def claim_next(self, worker_id: str) -> Job | None:
        def work(conn: Connection) -> Job | None:
            stmt = (select(jobs.c.task_id, jobs.c.attempts).where(jobs.c.status == PENDING)
                    .order_by(jobs.c.created_at, jobs.c.task_id).limit(1)
                    .with_for_update(skip_locked=True))
            row = conn.execute(stmt).first()
            if row is None:
                return None
            self.faults.point("claim_next.after_select")
            conn.execute(update(jobs).where(jobs.c.task_id == row.task_id).values(
                status=PROCESSING, worker_id=worker_id, attempts=row.attempts + 1,
                updated_at=now_iso()))
            self.faults.point("claim_next.after_update")
            return self._load(conn, row.task_id)
        return self._tx(WRITE, work)

    def mark_processing(self, task_id: str, worker_id: str | None = None) -> Job:
        return self._transition("mark_processing", task_id, PROCESSING, worker_id=worker_id)

    def mark_completed(self, task_id: str, result: Any) -> Job:
        check_result(result)
        return self._transition("mark_completed", task_id, COMPLETED, result=result)

    def mark_failed(self, task_id: str, error: str) -> Job:
        check_error(error)
        return self._transition("mark_failed", task_id, FAILED, error=error)

    def get(self, task_id: str) -> Job:
        return self._tx(READ, lambda conn: self._load(conn, task_id))


class JobsSQLiteAdapter(JobsSQLStore):
    """``jobs-sqlite``: one SQLite file, ``BEGIN IMMEDIATE`` for every write."""

    name: ClassVar[str] = "jobs-sqlite"
    location_kind: ClassVar[str] = "file"
    DB_FILE: ClassVar[str] = "jobs.sqlite3"
    _BUSY_CODES: ClassVar[frozenset[int]] = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})

    def __init__(self, location: str, faults: FaultController | None = None) -> None:
        os.makedirs(location, exist_ok=True)
        self.path = os.path.join(location, self.DB_FILE)
        super().__init__(location, faults)

    def _create_engine(self) -> Engine:
        engine = create_engine(
            URL.create("sqlite+pysqlite", database=self.path),
            poolclass=QueuePool, pool_size=5, max_overflow=10, pool_timeout=60,
            connect_args={"isolation_level": None, "check_same_thread": False,
                          "timeout": BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _on_connect)
        return engine

    def _begin(self, conn: Connection, mode: Mode) -> None:
        conn.exec_driver_sql("BEGIN" if mode == READ else "BEGIN IMMEDIATE")

    def _driver_errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.Error,)

    def _retryable(self, exc: BaseException) -> bool:
        orig = exc.orig if isinstance(exc, DBAPIError) else exc
        if not isinstance(orig, sqlite3.OperationalError):
            return False
        code = getattr(orig, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in self._BUSY_CODES
        text = str(orig).lower()
        return "locked" in text or "busy" in text

    def _before_fork(self) -> None:
        # A child forked while this process has the file open could skip SQLite's locks: close
        # the idle connections first (the same precaution as the resume ``sqlite`` adapter).
        if self._pid == os.getpid() and not self._closed:
            self._engine.pool.dispose()


class JobsPostgresAdapter(JobsSQLStore):
    """``jobs-postgres``: one PostgreSQL schema, READ COMMITTED writes with row locks."""

    name: ClassVar[str] = "jobs-postgres"
    location_kind: ClassVar[str] = "server"
    _RETRY_SQLSTATES: ClassVar[frozenset[str]] = frozenset({"40001", "40P01", "55P03"})

    def __init__(self, location: str, faults: FaultController | None = None) -> None:
        self.target = parse_dsn(location)
        self.schema = self.target.schema
        super().__init__(location, faults)

    def _create_engine(self) -> Engine:
        query = self.target.url.query
        extra = query.get("options", "")
        extra = extra[-1] if isinstance(extra, tuple) else extra
        options = " ".join(filter(None, [extra, f"-c search_path={self.schema}"]))
        connect_args: dict[str, Any] = {"options": options}
        if "connect_timeout" not in query:
            connect_args["connect_timeout"] = 10
        if "application_name" not in query:
            connect_args["application_name"] = "jobs-harness"
        return create_engine(self.target.url, pool_size=2, max_overflow=3, pool_timeout=60,
                             isolation_level="READ COMMITTED", connect_args=connect_args)

    def _connection_options(self, mode: Mode) -> dict[str, Any]:
        return {"isolation_level": "REPEATABLE READ"} if mode == READ else {}

    def _begin(self, conn: Connection, mode: Mode) -> None:
        """READ COMMITTED writes lock the rows they change (``FOR UPDATE``)."""

    def _create_schema(self, conn: Connection) -> None:
        conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        metadata.create_all(conn)

    def _driver_errors(self) -> tuple[type[BaseException], ...]:
        return (psycopg.Error,)

    def _retryable(self, exc: BaseException) -> bool:
        orig = exc.orig if isinstance(exc, DBAPIError) else exc
        return getattr(orig, "sqlstate", None) in self._RETRY_SQLSTATES

    @classmethod
    def validate_root(cls, root: str) -> None:
        PostgresAdapter.validate_root(root)

    @classmethod
    def fresh_location(cls, root: str, tag: str) -> str:
        return PostgresAdapter.fresh_location(root, tag)

    @classmethod
    def drop_location(cls, location: str) -> None:
        PostgresAdapter.drop_location(location)
