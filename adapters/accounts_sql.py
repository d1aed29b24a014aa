"""The ``accounts-sqlite`` and ``accounts-postgres`` adapters: the accounts contract on SQLAlchemy
2 Core, one transaction per operation.

The schema enforces what it can: foreign keys with ``ON DELETE CASCADE`` (SQLite:
``PRAGMA foreign_keys = ON`` on every connection), a UNIQUE normalized email, a UNIQUE job id,
``CHECK (confidence > 0.75)`` and ``CHECK (access_count >= 0)``. Session times are real
timestamps (``TIMESTAMPTZ`` on PostgreSQL; fixed-width UTC text on SQLite, which orders as time),
so cleanup compares instants. A transfer locks the upload row (``FOR UPDATE``), checks that the
owner is anonymous and moves it with one UPDATE; a cache read increments in the UPDATE itself.

SQLite writes start with ``BEGIN IMMEDIATE`` (writers serialize before reading); PostgreSQL runs
READ COMMITTED with row locks, reads in REPEATABLE READ. Serialization failures, deadlocks,
``SQLITE_BUSY`` and unique-key races are retried; other database errors become
:class:`StorageError`. Locations are those of the ``sqlite`` and ``postgres`` adapters (a
directory; a DSN with a schema per location).
"""

from __future__ import annotations

import abc
import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, TypeVar

import psycopg
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    Table,
    Text,
    TypeDecorator,
    create_engine,
    delete,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, Connection, Engine, Row
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError, StatementError
from sqlalchemy.pool import QueuePool

from adapters.postgres import PostgresAdapter, parse_dsn
from adapters.sqlite import BUSY_TIMEOUT_S, _on_connect
from harness.errors import ContractError
from harness.families.accounts.contract import (
    CACHE_THRESHOLD,
    AccountsStore,
    CacheEntry,
    Conflict,
    NotFound,
    Session,
    Snapshot,
    StorageError,
    Upload,
    User,
    check_cleanup_args,
    check_confidence,
    check_email,
    cleanup_cutoff,
    format_time,
    normalize_email,
    now_iso,
    parse_time,
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
DB_FILE = "accounts.sqlite3"


class UTCTime(TypeDecorator[datetime]):
    """An instant: aware UTC in Python; ``TIMESTAMPTZ`` on PostgreSQL; on SQLite naive UTC in
    SQLAlchemy's fixed-width text form, so text order is time order."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

users = Table(
    "users", metadata,
    Column("user_id", Text, primary_key=True),
    Column("email", Text, nullable=False),
    Column("email_key", Text, nullable=False, unique=True),
    Column("is_anonymous", Boolean, nullable=False),
    Column("created_at", Text, nullable=False),
)
sessions = Table(
    "sessions", metadata,
    Column("session_id", Text, primary_key=True),
    Column("user_id", Text, ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("created_at", UTCTime, nullable=False, index=True),
)
cv_uploads = Table(
    "cv_uploads", metadata,
    Column("job_id", Text, primary_key=True),
    Column("user_id", Text, ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("file_hash", Text, nullable=False),
    Column("filename", Text, nullable=False),
    Column("created_at", Text, nullable=False),
)
extraction_cache = Table(
    "extraction_cache", metadata,
    Column("file_hash", Text, primary_key=True),
    Column("data", JSON(none_as_null=True)),
    Column("confidence", Float, nullable=False),
    Column("access_count", Integer, nullable=False),
    CheckConstraint(f"confidence > {CACHE_THRESHOLD} AND confidence <= 1",
                    name="cache_confidence_above_threshold"),
    CheckConstraint("access_count >= 0", name="cache_access_count_non_negative"),
)
#: Children before parents: the order ``reset`` empties them in.
TABLES = (sessions, cv_uploads, extraction_cache, users)


def _user(row: Row[Any]) -> User:
    m = row._mapping
    return User(m["user_id"], m["email"], bool(m["is_anonymous"]), m["created_at"])


def _session(row: Row[Any]) -> Session:
    m = row._mapping
    return Session(m["session_id"], m["user_id"], format_time(m["created_at"]))


def _upload(row: Row[Any]) -> Upload:
    m = row._mapping
    return Upload(m["job_id"], m["user_id"], m["file_hash"], m["filename"], m["created_at"])


def _entry(row: Row[Any]) -> CacheEntry:
    m = row._mapping
    return CacheEntry(m["file_hash"], m["data"], float(m["confidence"]), int(m["access_count"]))


# --------------------------------------------------------------------------- fork safety

_LIVE: weakref.WeakSet[AccountsSQLStore] = weakref.WeakSet()
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


# --------------------------------------------------------------------------- the store


class AccountsSQLStore(AccountsStore):
    """The accounts contract on a SQLAlchemy engine (see the module docstring)."""

    guarantees: ClassVar[frozenset[str]] = frozenset({ATOMIC, THREAD_SAFE, PROCESS_SAFE,
                                                      CRASH_SAFE, DURABLE})
    boundary_points: ClassVar[tuple[str, ...]] = ("sql#k", "commit#k")
    fault_points: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "create_user": ("create_user.after_check", "create_user.after_insert"),
        "delete_user": ("delete_user.after_read", "delete_user.after_delete"),
        "create_session": ("create_session.after_check", "create_session.after_insert"),
        "cleanup_sessions": ("cleanup_sessions.after_delete",),
        "create_upload": ("create_upload.after_check", "create_upload.after_insert"),
        "transfer_cv_ownership": ("transfer_cv_ownership.after_checks",
                                  "transfer_cv_ownership.after_update"),
        "cache_extraction": ("cache_extraction.after_upsert",),
        "get_cached_extraction": ("get_cached_extraction.after_update",),
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

    # -- engine and transactions
    @property
    def engine(self) -> Engine:
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
                if committed:
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
        self._tx(WRITE, work)

    def snapshot(self) -> Snapshot:
        def work(conn: Connection) -> Snapshot:
            snap = Snapshot()
            for row in conn.execute(select(users)):
                snap.users[row.user_id] = _user(row)
            for row in conn.execute(select(sessions)):
                snap.sessions[row.session_id] = _session(row)
            snap.uploads = [_upload(row) for row in conn.execute(select(cv_uploads))]
            for row in conn.execute(select(extraction_cache)):
                snap.cache[row.file_hash] = _entry(row)
            return snap
        return self._tx(READ, work)

    # -- helpers inside transactions
    @staticmethod
    def _user_row(conn: Connection, user_id: str, lock: bool = False) -> Row[Any]:
        """The user or NotFound; ``lock`` takes FOR KEY SHARE (PostgreSQL): the user cannot be
        deleted before this transaction ends."""
        stmt = select(users).where(users.c.user_id == user_id)
        if lock:
            stmt = stmt.with_for_update(read=True, key_share=True)
        row = conn.execute(stmt).first()
        if row is None:
            raise NotFound(f"user {user_id!r}")
        return row

    @staticmethod
    def _upload_row(conn: Connection, job_id: str, lock: bool = False) -> Row[Any]:
        stmt = select(cv_uploads).where(cv_uploads.c.job_id == job_id)
        if lock:
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).first()
        if row is None:
            raise NotFound(f"upload {job_id!r}")
        return row

    def _insert(self, conn: Connection) -> Any:
        return pg_dialect.insert if conn.dialect.name == "postgresql" else sqlite_dialect.insert

    # -- users
    def create_user(self, user_id: str, email: str, is_anonymous: bool = False) -> User:
        check_email(email)
        key = normalize_email(email)

        def work(conn: Connection) -> User:
            if conn.execute(select(users.c.user_id).where(users.c.user_id == user_id)).first():
                raise Conflict(f"user {user_id!r} already exists")
            if conn.execute(select(users.c.user_id).where(users.c.email_key == key)).first():
                raise Conflict(f"email {email!r} is taken")
            self.faults.point("create_user.after_check")
            # A concurrent sign-up with this email makes the UNIQUE key fail: retried, then
            # the check above answers Conflict.
            conn.execute(insert(users).values(user_id=user_id, email=email, email_key=key,
                                              is_anonymous=bool(is_anonymous),
                                              created_at=now_iso()))
            self.faults.point("create_user.after_insert")
            return _user(self._user_row(conn, user_id))

        return self._tx(WRITE, work)

    def get_user(self, user_id: str) -> User:
        return self._tx(READ, lambda conn: _user(self._user_row(conn, user_id)))

    def delete_user(self, user_id: str) -> None:
        def work(conn: Connection) -> None:
            row = conn.execute(select(users.c.user_id).where(users.c.user_id == user_id)
                               .with_for_update()).first()
            if row is None:
                raise NotFound(f"user {user_id!r}")
            self.faults.point("delete_user.after_read")
            conn.execute(delete(users).where(users.c.user_id == user_id))  # cascades
            self.faults.point("delete_user.after_delete")

        self._tx(WRITE, work)

    # -- sessions
    def create_session(self, session_id: str, user_id: str, created_at: str) -> Session:
        at = parse_time(created_at)

        def work(conn: Connection) -> Session:
            self._user_row(conn, user_id, lock=True)
            if conn.execute(select(sessions.c.session_id)
                            .where(sessions.c.session_id == session_id)).first():
                raise Conflict(f"session {session_id!r} already exists")
            self.faults.point("create_session.after_check")
            conn.execute(insert(sessions).values(session_id=session_id, user_id=user_id,
                                                 created_at=at))
            self.faults.point("create_session.after_insert")
            row = conn.execute(select(sessions).where(sessions.c.session_id == session_id)).one()
            return _session(row)

        return self._tx(WRITE, work)

    def cleanup_sessions(self, older_than_days: int, now: str) -> int:
        check_cleanup_args(older_than_days, now)
        cutoff = cleanup_cutoff(older_than_days, now)

        def work(conn: Connection) -> int:
            removed = conn.execute(delete(sessions).where(sessions.c.created_at < cutoff)).rowcount
            self.faults.point("cleanup_sessions.after_delete")
            return int(removed)

        return self._tx(WRITE, work)

    # -- uploads
    def create_upload(self, job_id: str, user_id: str, file_hash: str, filename: str) -> Upload:
        def work(conn: Connection) -> Upload:
            self._user_row(conn, user_id, lock=True)
            if conn.execute(select(cv_uploads.c.job_id).where(cv_uploads.c.job_id == job_id)).first():
                raise Conflict(f"upload {job_id!r} already exists")
            self.faults.point("create_upload.after_check")
            conn.execute(insert(cv_uploads).values(job_id=job_id, user_id=user_id,
                                                   file_hash=file_hash, filename=filename,
                                                   created_at=now_iso()))
            self.faults.point("create_upload.after_insert")
            return _upload(self._upload_row(conn, job_id))

        return self._tx(WRITE, work)

    def get_upload(self, job_id: str) -> Upload:
        return self._tx(READ, lambda conn: _upload(self._upload_row(conn, job_id)))

    def transfer_cv_ownership(self, job_id: str, new_user_id: str) -> Upload:
        def work(conn: Connection) -> Upload:
            upload = self._upload_row(conn, job_id, lock=True)
            self._user_row(conn, new_user_id)  # the UPDATE's foreign key locks it
            if upload.user_id == new_user_id:
                return _upload(upload)  # already its owner: nothing to move
            owner = conn.execute(select(users.c.is_anonymous)
                                 .where(users.c.user_id == upload.user_id)).first()
            if owner is None or not owner.is_anonymous:
                raise Conflict(f"upload {job_id!r} belongs to {upload.user_id!r}, who is not "
                               "anonymous")
            self.faults.point("transfer_cv_ownership.after_checks")
            conn.execute(update(cv_uploads).where(cv_uploads.c.job_id == job_id)
                         .values(user_id=new_user_id))
            self.faults.point("transfer_cv_ownership.after_update")
            return _upload(self._upload_row(conn, job_id))

        return self._tx(WRITE, work)

    # -- cache
    def cache_extraction(self, file_hash: str, data: Any, confidence: float) -> bool:
        confidence = check_confidence(confidence)
        if not confidence > CACHE_THRESHOLD:
            return False

        def work(conn: Connection) -> bool:
            ins = self._insert(conn)(extraction_cache).values(
                file_hash=file_hash, data=data, confidence=confidence, access_count=0)
            conn.execute(ins.on_conflict_do_update(
                index_elements=[extraction_cache.c.file_hash],
                set_={"data": ins.excluded.data, "confidence": ins.excluded.confidence}))
            self.faults.point("cache_extraction.after_upsert")
            return True

        return self._tx(WRITE, work)

    def get_cached_extraction(self, file_hash: str) -> CacheEntry:
        def work(conn: Connection) -> CacheEntry:
            done = conn.execute(update(extraction_cache)
                                .where(extraction_cache.c.file_hash == file_hash)
                                .values(access_count=extraction_cache.c.access_count + 1))
            if done.rowcount == 0:
                raise NotFound(f"no cached extraction for {file_hash!r}")
            self.faults.point("get_cached_extraction.after_update")
            row = conn.execute(select(extraction_cache)
                               .where(extraction_cache.c.file_hash == file_hash)).one()
            return _entry(row)

        return self._tx(WRITE, work)


# --------------------------------------------------------------------------- backends


class AccountsSQLiteAdapter(AccountsSQLStore):
    """SQLite file ``<location>/accounts.sqlite3``: WAL, ``synchronous=FULL``, foreign keys on,
    ``BEGIN IMMEDIATE`` for every write (all five guarantees)."""

    name: ClassVar[str] = "accounts-sqlite"
    location_kind: ClassVar[str] = "file"

    def __init__(self, location: str, faults: FaultController | None = None) -> None:
        os.makedirs(location, exist_ok=True)
        self.path = os.path.join(location, DB_FILE)
        super().__init__(location, faults)

    def _create_engine(self) -> Engine:
        engine = create_engine(
            URL.create("sqlite+pysqlite", database=self.path),
            poolclass=QueuePool, pool_size=5, max_overflow=10, pool_timeout=60,
            connect_args={"isolation_level": None, "check_same_thread": False,
                          "timeout": BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _on_connect)  # foreign_keys=ON, WAL, synchronous=FULL
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
            return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
        text = str(orig).lower()
        return "locked" in text or "busy" in text

    def _before_fork(self) -> None:
        if self._pid == os.getpid() and not self._closed:
            self._engine.pool.dispose()


class AccountsPostgresAdapter(AccountsSQLStore):
    """PostgreSQL, one schema per location (``harness_schema`` in the DSN), real transactions,
    constraints and row locks (all five guarantees)."""

    name: ClassVar[str] = "accounts-postgres"
    location_kind: ClassVar[str] = "server"
    _RETRY_SQLSTATES = frozenset({"40001", "40P01", "55P03"})

    def __init__(self, location: str, faults: FaultController | None = None) -> None:
        self.target = parse_dsn(location)
        self.schema = self.target.schema
        super().__init__(location, faults)

    def _create_engine(self) -> Engine:
        query = self.target.url.query
        options = f"-c search_path={self.schema}"
        extra = query.get("options")
        if extra:
            options = f"{extra if isinstance(extra, str) else extra[-1]} {options}"
        connect_args: dict[str, Any] = {"options": options}
        if "connect_timeout" not in query:
            connect_args["connect_timeout"] = 10
        if "application_name" not in query:
            connect_args["application_name"] = "resume-harness-accounts"
        return create_engine(self.target.url, pool_size=2, max_overflow=3, pool_timeout=60,
                             isolation_level="READ COMMITTED", connect_args=connect_args)

    def _connection_options(self, mode: Mode) -> dict[str, Any]:
        return {"isolation_level": "REPEATABLE READ"} if mode == READ else {}

    def _begin(self, conn: Connection, mode: Mode) -> None:
        pass

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
