"""The storage contract on SQLAlchemy Core, shared by the ``sqlite`` and ``postgres`` adapters.

Every operation is ONE transaction. The schema carries the invariants the database can enforce:
foreign keys with ``ON DELETE CASCADE`` (tailored resumes, improvements), a partial unique index
allowing a single master, one row per ``(job_id, prompt_id)`` preview hash. Operations that change
mastership (upload, set_master, delete) run under a store-wide lock; the others lock the rows they
read. Lock contention (serialization failure, deadlock, ``SQLITE_BUSY``) and constraint races are
retried; every other driver or database error becomes :class:`StorageError` (outcome unknown).
Injected faults and simulated crashes pass through unchanged.

Backends subclass :class:`SQLStore` and provide the engine, how a transaction begins in each
:data:`Mode`, and which driver errors mean "rolled back, try again".
"""

from __future__ import annotations

import abc
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    MetaData,
    Table,
    Text,
    delete,
    exists,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError, SQLAlchemyError, StatementError

from harness.contract import (
    ATOMIC,
    CRASH_SAFE,
    DURABLE,
    PROCESS_SAFE,
    THREAD_SAFE,
    UPDATABLE_RESUME_FIELDS,
    Confirmation,
    Improvement,
    Job,
    Resume,
    Snapshot,
    StorageAdapter,
    check_processed_data,
    new_id,
    now_iso,
)
from harness.errors import Conflict, ContractError, InvalidData, NotFound, StorageError
from harness.faults import FaultController
from harness.redact import redact

T = TypeVar("T")

#: How a transaction starts: a consistent read, a write, or a write under the store-wide lock.
Mode = Literal["read", "write", "exclusive"]
READ: Mode = "read"
WRITE: Mode = "write"
EXCLUSIVE: Mode = "exclusive"

ALL_GUARANTEES = frozenset({ATOMIC, THREAD_SAFE, PROCESS_SAFE, CRASH_SAFE, DURABLE})
MAX_ATTEMPTS = 8
_JITTER = random.Random()  # private: never disturbs a seeded global ``random``
COMPLETED, PENDING = "completed", "pending"

# --------------------------------------------------------------------------- schema


def _key() -> Text:
    """Text compared byte-wise (``COLLATE "C"`` on PostgreSQL) so ORDER BY matches Python."""
    return Text().with_variant(Text(collation="C"), "postgresql")


def _json() -> JSON:
    return JSON(none_as_null=True)


metadata = MetaData()

resumes = Table(
    "resumes", metadata,
    Column("resume_id", _key(), primary_key=True),
    Column("content", Text),
    Column("content_type", Text),
    Column("filename", Text),
    Column("is_master", Boolean, nullable=False),
    Column("parent_id", _key(), ForeignKey("resumes.resume_id", ondelete="CASCADE")),
    Column("processed_data", _json()),
    Column("processing_status", Text),
    Column("cover_letter", Text),
    Column("outreach_message", Text),
    Column("created_at", _key(), nullable=False),
    Column("updated_at", Text, nullable=False),
)
#: At most one master, enforced by the database whatever the code does.
Index("resumes_one_master", resumes.c.is_master, unique=True,
      sqlite_where=resumes.c.is_master, postgresql_where=resumes.c.is_master)
Index("resumes_parent", resumes.c.parent_id)
Index("resumes_creation_order", resumes.c.created_at, resumes.c.resume_id)

jobs = Table(
    "jobs", metadata,
    Column("job_id", _key(), primary_key=True),
    Column("content", Text),
    Column("job_keywords", _json()),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
)

job_preview_hashes = Table(
    "job_preview_hashes", metadata,
    Column("job_id", _key(), ForeignKey("jobs.job_id", ondelete="CASCADE"), primary_key=True),
    Column("prompt_id", _key(), primary_key=True),
    Column("preview_hash", Text, nullable=False),
)

improvements = Table(
    "improvements", metadata,
    Column("request_id", _key(), primary_key=True),
    Column("original_resume_id", _key(), ForeignKey("resumes.resume_id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("tailored_resume_id", _key(), ForeignKey("resumes.resume_id", ondelete="CASCADE"),
           nullable=False, unique=True),
    Column("job_id", _key(), ForeignKey("jobs.job_id"), nullable=False, index=True),
    Column("improvements", _json()),
    Column("created_at", Text, nullable=False),
)

#: Alias: ``confirm_improvement``'s parameter ``improvements`` shadows the table's name.
_IMPROVEMENTS = improvements

#: Children before parents: the order ``reset`` empties them in.
TABLES: tuple[Table, ...] = (improvements, job_preview_hashes, resumes, jobs)

# --------------------------------------------------------------------------- row mapping


def _status_for(processed_data: Any) -> str:
    return COMPLETED if processed_data is not None else PENDING


def _resume(row: Row[Any]) -> Resume:
    m = row._mapping
    return Resume(resume_id=m["resume_id"], content=m["content"], content_type=m["content_type"],
                  filename=m["filename"], is_master=bool(m["is_master"]), parent_id=m["parent_id"],
                  processed_data=m["processed_data"], processing_status=m["processing_status"],
                  cover_letter=m["cover_letter"], outreach_message=m["outreach_message"],
                  created_at=m["created_at"], updated_at=m["updated_at"])


def _improvement(row: Row[Any]) -> Improvement:
    m = row._mapping
    return Improvement(request_id=m["request_id"], original_resume_id=m["original_resume_id"],
                       tailored_resume_id=m["tailored_resume_id"], job_id=m["job_id"],
                       improvements=m["improvements"] if m["improvements"] is not None else [],
                       created_at=m["created_at"])


def _job(row: Row[Any], hashes: dict[str, str]) -> Job:
    m = row._mapping
    return Job(job_id=m["job_id"], content=m["content"], preview_hashes=hashes,
               job_keywords=m["job_keywords"] if m["job_keywords"] is not None else [],
               created_at=m["created_at"], updated_at=m["updated_at"])


# --------------------------------------------------------------------------- fork safety

_LIVE: weakref.WeakSet[SQLStore] = weakref.WeakSet()
#: Pools inherited over fork(): kept alive in the child so that garbage collection never
#: closes (and, for PostgreSQL, terminates) connections that belong to the parent.
_ABANDONED: list[Any] = []


def _before_fork() -> None:
    for store in list(_LIVE):
        store._before_fork()


def _after_fork_in_child() -> None:
    for store in list(_LIVE):
        store._engine_lock = threading.Lock()  # another parent thread may have held it
        store._abandon_inherited_pool()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


# --------------------------------------------------------------------------- the adapter


class SQLStore(StorageAdapter):
    """The contract on a SQLAlchemy engine; see the module docstring for the design."""

    guarantees: ClassVar[frozenset[str]] = ALL_GUARANTEES
    #: The automatic storage-boundary points (harness.boundaries) these adapters pass.
    boundary_points: ClassVar[tuple[str, ...]] = ("sql#k", "commit#k")
    fault_points: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "upload_resume": ("upload_resume.after_master_check", "upload_resume.after_insert"),
        "update_resume": ("update_resume.after_read", "update_resume.after_update"),
        "set_master": ("set_master.after_read", "set_master.after_unset_old",
                       "set_master.after_set_new"),
        "delete_resume": ("delete_resume.after_read", "delete_resume.after_cascade",
                          "delete_resume.after_promote"),
        "save_cover_letter": ("save_cover_letter.after_read", "save_cover_letter.after_update"),
        "save_outreach_message": ("save_outreach_message.after_read",
                                  "save_outreach_message.after_update"),
        "create_job": ("create_job.after_check", "create_job.after_insert"),
        "record_preview": ("record_preview.after_read", "record_preview.after_upsert",
                           "record_preview.after_touch_job"),
        "confirm_improvement": ("confirm_improvement.after_checks",
                                "confirm_improvement.after_tailored_insert",
                                "confirm_improvement.after_improvement_insert"),
    }

    def __init__(self, location: str, faults: FaultController | None = None) -> None:
        super().__init__(location, faults)
        self._pid = os.getpid()
        self._closed = False
        self._engine_lock = threading.Lock()
        self._engine: Engine = self._create_engine()
        _LIVE.add(self)
        try:
            self._tx(EXCLUSIVE, self._create_schema)
        except BaseException:
            self.close()
            raise

    # -- backend hooks
    @abc.abstractmethod
    def _create_engine(self) -> Engine:
        """A new engine on ``self.location`` (connection setup included)."""

    @abc.abstractmethod
    def _begin(self, conn: Connection, mode: Mode) -> None:
        """Run inside a fresh transaction before any work: take the locks ``mode`` needs."""

    def _connection_options(self, mode: Mode) -> dict[str, Any]:
        """Execution options set on the connection before its transaction begins."""
        return {}

    def _retryable(self, exc: BaseException) -> bool:
        """True when ``exc`` means "rolled back because of contention": try again."""
        return False

    def _driver_errors(self) -> tuple[type[BaseException], ...]:
        """The driver's own exception classes (converted like SQLAlchemy's)."""
        return ()

    def _create_schema(self, conn: Connection) -> None:
        metadata.create_all(conn)

    def _before_fork(self) -> None:  # noqa: B027 - optional hook
        """Called in the parent just before ``os.fork()``."""

    # -- engine and transactions
    @property
    def engine(self) -> Engine:
        """The engine (for tests and tools that need raw SQL behind the adapter's back)."""
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
                raise  # NotFound / Conflict / InvalidData / StorageError incl. InjectedFault
            except (SQLAlchemyError, OSError, *self._driver_errors()) as exc:
                if committed:  # only giving the connection back failed: the unit is done
                    return result
                inner = exc.orig if isinstance(exc, StatementError) else None
                if isinstance(inner, ContractError):
                    raise inner from None
                race = isinstance(exc, IntegrityError)
                if attempt < MAX_ATTEMPTS and (race or self._retryable(exc)):
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
        def work(conn: Connection) -> None:
            for table in TABLES:
                conn.execute(delete(table))
        self._tx(EXCLUSIVE, work)

    def snapshot(self) -> Snapshot:
        def work(conn: Connection) -> Snapshot:
            snap = Snapshot()
            for row in conn.execute(select(resumes)):
                snap.resumes[row.resume_id] = _resume(row)
            hashes: dict[str, dict[str, str]] = {}
            for row in conn.execute(select(job_preview_hashes)):
                hashes.setdefault(row.job_id, {})[row.prompt_id] = row.preview_hash
            for row in conn.execute(select(jobs)):
                snap.jobs[row.job_id] = _job(row, hashes.get(row.job_id, {}))
            for row in conn.execute(select(improvements)):
                snap.improvements[row.request_id] = _improvement(row)
            return snap
        return self._tx(READ, work)

    # -- helpers used inside transactions
    @staticmethod
    def _load_resume(conn: Connection, resume_id: str, lock: str | None = None) -> Resume:
        """The resume or NotFound; ``lock`` = "update" (no key update) or "share" on PostgreSQL."""
        stmt = select(resumes).where(resumes.c.resume_id == resume_id)
        if lock == "update":
            stmt = stmt.with_for_update(key_share=True)
        elif lock == "share":
            stmt = stmt.with_for_update(read=True)
        row = conn.execute(stmt).first()
        if row is None:
            raise NotFound(f"resume {resume_id!r}")
        return _resume(row)

    @staticmethod
    def _load_job(conn: Connection, job_id: str) -> Job:
        row = conn.execute(select(jobs).where(jobs.c.job_id == job_id)).first()
        if row is None:
            raise NotFound(f"job {job_id!r}")
        hashes = {r.prompt_id: r.preview_hash for r in conn.execute(
            select(job_preview_hashes.c.prompt_id, job_preview_hashes.c.preview_hash)
            .where(job_preview_hashes.c.job_id == job_id))}
        return _job(row, hashes)

    @staticmethod
    def _exists(conn: Connection, column: Column[Any], value: str) -> bool:
        return bool(conn.execute(select(exists().where(column == value))).scalar())

    @staticmethod
    def _master_exists(conn: Connection) -> bool:
        return SQLStore._exists_where(conn, resumes.c.is_master)

    @staticmethod
    def _exists_where(conn: Connection, clause: Any) -> bool:
        return bool(conn.execute(select(exists().where(clause))).scalar())

    def _upsert(self, conn: Connection) -> Any:
        """The dialect's INSERT with ``on_conflict_do_update``."""
        name = conn.dialect.name
        if name == "postgresql":
            return pg_dialect.insert
        if name == "sqlite":
            return sqlite_dialect.insert
        raise StorageError(f"{self.name}: no upsert for dialect {name!r}")

    # -- resumes
    def upload_resume(self, content: str, content_type: str = "md", filename: str = "",
                      processed_data: dict[str, Any] | None = None, *,
                      resume_id: str | None = None) -> Resume:
        check_processed_data(processed_data)
        rid = new_id() if resume_id is None else resume_id

        def work(conn: Connection) -> Resume:
            if self._exists(conn, resumes.c.resume_id, rid):
                raise Conflict(f"resume {rid!r} already exists")
            has_master = self._master_exists(conn)
            self.faults.point("upload_resume.after_master_check")
            now = now_iso()
            conn.execute(insert(resumes).values(
                resume_id=rid, content=content, content_type=content_type, filename=filename,
                is_master=not has_master, parent_id=None, processed_data=processed_data,
                processing_status=_status_for(processed_data), cover_letter=None,
                outreach_message=None, created_at=now, updated_at=now))
            self.faults.point("upload_resume.after_insert")
            return self._load_resume(conn, rid)

        return self._tx(EXCLUSIVE, work)

    def get_resume(self, resume_id: str) -> Resume:
        return self._tx(READ, lambda conn: self._load_resume(conn, resume_id))

    def list_resumes(self) -> list[Resume]:
        def work(conn: Connection) -> list[Resume]:
            stmt = select(resumes).order_by(resumes.c.created_at, resumes.c.resume_id)
            return [_resume(row) for row in conn.execute(stmt)]
        return self._tx(READ, work)

    def update_resume(self, resume_id: str, fields: Mapping[str, Any]) -> Resume:
        fields = dict(fields)

        def work(conn: Connection) -> Resume:
            self._load_resume(conn, resume_id, lock="update")
            for key in sorted(fields):
                if key not in UPDATABLE_RESUME_FIELDS:
                    raise InvalidData(key, "not a field update_resume may change")
            if "processed_data" in fields:
                check_processed_data(fields["processed_data"])
            self.faults.point("update_resume.after_read")
            values = dict(fields)
            if "processed_data" in fields and "processing_status" not in fields:
                values["processing_status"] = _status_for(fields["processed_data"])
            values["updated_at"] = now_iso()
            conn.execute(update(resumes).where(resumes.c.resume_id == resume_id).values(**values))
            self.faults.point("update_resume.after_update")
            return self._load_resume(conn, resume_id)

        return self._tx(WRITE, work)

    def set_master(self, resume_id: str) -> Resume:
        def work(conn: Connection) -> Resume:
            self._load_resume(conn, resume_id, lock="update")
            self.faults.point("set_master.after_read")
            now = now_iso()
            conn.execute(update(resumes)
                         .where(resumes.c.is_master, resumes.c.resume_id != resume_id)
                         .values(is_master=False, updated_at=now))
            self.faults.point("set_master.after_unset_old")
            conn.execute(update(resumes)
                         .where(resumes.c.resume_id == resume_id, ~resumes.c.is_master)
                         .values(is_master=True, updated_at=now))
            self.faults.point("set_master.after_set_new")
            return self._load_resume(conn, resume_id)

        return self._tx(EXCLUSIVE, work)

    def delete_resume(self, resume_id: str) -> None:
        def work(conn: Connection) -> None:
            self._load_resume(conn, resume_id)  # the DELETE below takes the row lock
            had_master = self._master_exists(conn)
            self.faults.point("delete_resume.after_read")
            # The foreign keys cascade to tailored descendants (any depth) and their improvements.
            conn.execute(delete(resumes).where(resumes.c.resume_id == resume_id))
            self.faults.point("delete_resume.after_cascade")
            if had_master and not self._master_exists(conn):
                heir = conn.execute(
                    select(resumes.c.resume_id).where(resumes.c.parent_id.is_(None))
                    .order_by(resumes.c.created_at, resumes.c.resume_id).limit(1)
                    .with_for_update(key_share=True)).scalar()
                if heir is not None:
                    conn.execute(update(resumes).where(resumes.c.resume_id == heir)
                                 .values(is_master=True, updated_at=now_iso()))
                self.faults.point("delete_resume.after_promote")

        self._tx(EXCLUSIVE, work)

    def _set_text(self, op: str, resume_id: str, column: str, text: str) -> Resume:
        def work(conn: Connection) -> Resume:
            self._load_resume(conn, resume_id, lock="update")
            self.faults.point(f"{op}.after_read")
            conn.execute(update(resumes).where(resumes.c.resume_id == resume_id)
                         .values({column: text, "updated_at": now_iso()}))
            self.faults.point(f"{op}.after_update")
            return self._load_resume(conn, resume_id)

        return self._tx(WRITE, work)

    def save_cover_letter(self, resume_id: str, text: str) -> Resume:
        return self._set_text("save_cover_letter", resume_id, "cover_letter", text)

    def save_outreach_message(self, resume_id: str, text: str) -> Resume:
        return self._set_text("save_outreach_message", resume_id, "outreach_message", text)

    # -- jobs
    def create_job(self, content: str, job_keywords: list[str] | None = None, *,
                   job_id: str | None = None) -> Job:
        jid = new_id() if job_id is None else job_id
        keywords = list(job_keywords or [])

        def work(conn: Connection) -> Job:
            if self._exists(conn, jobs.c.job_id, jid):
                raise Conflict(f"job {jid!r} already exists")
            self.faults.point("create_job.after_check")
            now = now_iso()
            conn.execute(insert(jobs).values(job_id=jid, content=content, job_keywords=keywords,
                                             created_at=now, updated_at=now))
            self.faults.point("create_job.after_insert")
            return self._load_job(conn, jid)

        return self._tx(WRITE, work)

    def get_job(self, job_id: str) -> Job:
        return self._tx(READ, lambda conn: self._load_job(conn, job_id))

    def record_preview(self, job_id: str, prompt_id: str, preview_hash: str) -> Job:
        def work(conn: Connection) -> Job:
            # Locks the job row: record_previews on one job serialize; other rows untouched.
            row = conn.execute(select(jobs.c.job_id).where(jobs.c.job_id == job_id)
                               .with_for_update(key_share=True)).first()
            if row is None:
                raise NotFound(f"job {job_id!r}")
            self.faults.point("record_preview.after_read")
            ins = self._upsert(conn)(job_preview_hashes).values(
                job_id=job_id, prompt_id=prompt_id, preview_hash=preview_hash)
            conn.execute(ins.on_conflict_do_update(
                index_elements=[job_preview_hashes.c.job_id, job_preview_hashes.c.prompt_id],
                set_={"preview_hash": ins.excluded.preview_hash}))
            self.faults.point("record_preview.after_upsert")
            conn.execute(update(jobs).where(jobs.c.job_id == job_id).values(updated_at=now_iso()))
            self.faults.point("record_preview.after_touch_job")
            return self._load_job(conn, job_id)

        return self._tx(WRITE, work)

    # -- improvements
    def confirm_improvement(self, resume_id: str, job_id: str, prompt_id: str, preview_hash: str,
                            improved_data: dict[str, Any], improvements: list[dict[str, Any]], *,
                            tailored_resume_id: str | None = None,
                            request_id: str | None = None) -> Confirmation:
        tid = new_id() if tailored_resume_id is None else tailored_resume_id
        req = new_id() if request_id is None else request_id
        items = list(improvements)

        def work(conn: Connection) -> Confirmation:
            # FOR SHARE: a concurrent delete of the original waits for this unit (then cascades).
            original = self._load_resume(conn, resume_id, lock="share")
            if not self._exists(conn, jobs.c.job_id, job_id):
                raise NotFound(f"job {job_id!r}")
            stored = conn.execute(
                select(job_preview_hashes.c.preview_hash)
                .where(job_preview_hashes.c.job_id == job_id,
                       job_preview_hashes.c.prompt_id == prompt_id)
                .with_for_update(read=True)).scalar()
            if stored is None or stored != preview_hash:
                raise Conflict(f"preview hash for job {job_id!r} prompt {prompt_id!r} does not match")
            if improved_data is None:
                raise InvalidData("improved_data", "required")
            check_processed_data(improved_data, "improved_data")
            if self._exists(conn, resumes.c.resume_id, tid):
                raise Conflict(f"resume {tid!r} already exists")
            if self._exists(conn, _IMPROVEMENTS.c.request_id, req):
                raise Conflict(f"improvement {req!r} already exists")
            self.faults.point("confirm_improvement.after_checks")
            now = now_iso()
            conn.execute(insert(resumes).values(
                resume_id=tid, content=original.content, content_type=original.content_type,
                filename=original.filename, is_master=False, parent_id=resume_id,
                processed_data=improved_data, processing_status=COMPLETED, cover_letter=None,
                outreach_message=None, created_at=now, updated_at=now))
            self.faults.point("confirm_improvement.after_tailored_insert")
            conn.execute(insert(_IMPROVEMENTS).values(
                request_id=req, original_resume_id=resume_id, tailored_resume_id=tid,
                job_id=job_id, improvements=items, created_at=now))
            self.faults.point("confirm_improvement.after_improvement_insert")
            tailored = self._load_resume(conn, tid)
            record = conn.execute(select(_IMPROVEMENTS)
                                  .where(_IMPROVEMENTS.c.request_id == req)).one()
            return Confirmation(tailored, _improvement(record))

        return self._tx(WRITE, work)

    def get_improvement_by_tailored_resume(self, tailored_resume_id: str) -> Improvement:
        def work(conn: Connection) -> Improvement:
            row = conn.execute(select(_IMPROVEMENTS).where(
                _IMPROVEMENTS.c.tailored_resume_id == tailored_resume_id)).first()
            if row is None:
                raise NotFound(f"no improvement for tailored resume {tailored_resume_id!r}")
            return _improvement(row)
        return self._tx(READ, work)
