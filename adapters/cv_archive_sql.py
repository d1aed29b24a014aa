"""The ``cv-archive-sqlite`` and ``cv-archive-postgres`` adapters: the persistence service of
:mod:`harness.families.cv_archive.service` in front of a SQL archive table (SQLAlchemy 2 Core).

Schema: ``cv_archive(id, request_id UNIQUE, user_id, filename, content, sha256, origin)``. The
unique request id is the idempotency key: inserts are ``INSERT ... ON CONFLICT (request_id) DO
NOTHING`` and verification reads back by key, so a retry after an ambiguous commit, a client's
retry, a re-run or concurrent recovery never adds a second row. Every method is one transaction
(SQLite: on a new connection each time, ``NullPool``; PostgreSQL: from a small pool that a forked
child drops without closing). SQLite: ``<location>/archive.sqlite3``, WAL, ``synchronous=FULL``,
writes in ``BEGIN IMMEDIATE``; backups in ``<location>/backups``. PostgreSQL: one schema per location (as the
``postgres`` adapter), READ COMMITTED; backups in a directory derived from the database and
schema under the system temp dir, removed with the location. Driver errors become
``StorageError`` (transient for the service); injected faults and crashes pass through.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import weakref
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import psycopg
from sqlalchemy import (
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
    text,
    update,
)
from sqlalchemy import insert as sa_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Connection, Engine, Row
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from adapters.postgres import PostgresAdapter, parse_dsn
from harness.errors import ContractError, NotFound, StorageError
from harness.families.cv_archive.contract import (
    Backup,
    CvArchive,
    CvRow,
    RecoveryReport,
    SaveResult,
    Snapshot,
    sha256_text,
)
from harness.families.cv_archive.service import PersistenceService
from harness.faults import FaultController
from harness.redact import redact
from harness.store import ATOMIC, CRASH_SAFE, DURABLE, PROCESS_SAFE, THREAD_SAFE

T = TypeVar("T")
DB_FILE = "archive.sqlite3"
BACKUP_SUBDIR = "backups"
BUSY_TIMEOUT_S = 15.0
ALL_GUARANTEES = frozenset({ATOMIC, THREAD_SAFE, PROCESS_SAFE, CRASH_SAFE, DURABLE})


def archive_table(metadata: MetaData, *, unique: bool) -> Table:
    """The archive table; ``unique=False`` is the audited schema (request id not unique)."""
    table = Table(
        "cv_archive", metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("request_id", Text, nullable=False, unique=unique),
        Column("user_id", Text, nullable=False),
        Column("filename", Text, nullable=False),
        Column("content", Text, nullable=False),
        Column("sha256", Text, nullable=False),
        Column("origin", Text, nullable=False),
    )
    if not unique:
        Index("cv_archive_request", table.c.request_id)
    return table


#: Server locations whose table this process (or the parent it was forked from) created:
#: opening them again skips the DDL. ``drop_location`` / ``fresh_location`` forget them.
_CREATED: set[str] = set()
_KEYED = MetaData()
KEYED_TABLE = archive_table(_KEYED, unique=True)


def sqlite_engine(path: str) -> Engine:
    """A SQLite engine: a new connection per transaction, WAL, FULL sync, busy timeout."""
    engine = create_engine(URL.create("sqlite+pysqlite", database=path), poolclass=NullPool,
                           connect_args={"isolation_level": None, "check_same_thread": False,
                                         "timeout": BUSY_TIMEOUT_S})

    def on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = FULL")
        finally:
            cur.close()

    event.listen(engine, "connect", on_connect)
    return engine


def _row(r: Row[Any]) -> CvRow:
    return CvRow(row_id=r.id, request_id=r.request_id, user_id=r.user_id, filename=r.filename,
                 content=r.content, sha256=r.sha256, origin=r.origin)


class ArchiveDB:
    """The archive table behind the service (:class:`~harness.families.cv_archive.service.
    ArchiveBackend`). ``keyed``: inserts are idempotent on the request id."""

    def __init__(self, engine: Engine, table: Table, *, keyed: bool, name: str,
                 write_begin: str | None = None) -> None:
        self.engine = engine
        self.table = table
        self.keyed = keyed
        self.name = name
        self.write_begin = write_begin  # SQLite: "BEGIN IMMEDIATE" (its driver begins nothing)
        self.read_begin = "BEGIN" if write_begin else None

    def tx(self, work: Callable[[Connection], T], *, write: bool = True) -> T:
        committed = False
        try:
            with self.engine.connect() as conn:
                with conn.begin():
                    begin = self.write_begin if write else self.read_begin
                    if begin:
                        conn.exec_driver_sql(begin)
                    result = work(conn)
                committed = True
            return result
        except ContractError:
            raise
        except (SQLAlchemyError, OSError, sqlite3.Error, psycopg.Error) as exc:
            if committed:  # only giving the connection back failed
                return result
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise StorageError(f"{self.name}: {type(exc).__name__}: {redact(first)}") from exc

    def create(self) -> None:
        self.tx(lambda conn: self.table.metadata.create_all(conn))

    def ping(self) -> None:
        self.tx(lambda conn: conn.execute(text("SELECT 1")).scalar_one(), write=False)

    def insert(self, request_id: str, user_id: str, filename: str, content: str, sha256: str,
               origin: str) -> bool:
        values = {"request_id": request_id, "user_id": user_id, "filename": filename,
                  "content": content, "sha256": sha256, "origin": origin}

        def work(conn: Connection) -> bool:
            if not self.keyed:
                conn.execute(sa_insert(self.table).values(**values))
                return True
            dialect = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            stmt = dialect(self.table).values(**values).on_conflict_do_nothing(
                index_elements=["request_id"]).returning(self.table.c.id)
            return conn.execute(stmt).first() is not None
        return self.tx(work)

    def read(self, request_id: str) -> CvRow | None:
        def work(conn: Connection) -> CvRow | None:
            r = conn.execute(select(self.table).where(self.table.c.request_id == request_id)
                             .order_by(self.table.c.id).limit(1)).first()
            return _row(r) if r is not None else None
        return self.tx(work, write=False)

    def read_row(self, row_id: int) -> CvRow | None:
        def work(conn: Connection) -> CvRow | None:
            r = conn.execute(select(self.table).where(self.table.c.id == row_id)).first()
            return _row(r) if r is not None else None
        return self.tx(work, write=False)

    def last_row_of(self, request_id: str) -> CvRow | None:
        def work(conn: Connection) -> CvRow | None:
            r = conn.execute(select(self.table).where(self.table.c.request_id == request_id)
                             .order_by(self.table.c.id.desc()).limit(1)).first()
            return _row(r) if r is not None else None
        return self.tx(work, write=False)

    def repair(self, request_id: str, content: str) -> None:
        """Rewrite the content of the row(s) recorded for ``request_id`` with what was sent,
        only where the recorded hash says that is what was meant."""
        sent = sha256_text(content)
        self.tx(lambda conn: conn.execute(
            update(self.table).where(self.table.c.request_id == request_id,
                                     self.table.c.sha256 == sent).values(content=content)))

    def rows(self, user_id: str | None = None) -> list[CvRow]:
        def work(conn: Connection) -> list[CvRow]:
            q = select(self.table).order_by(self.table.c.id)
            if user_id is not None:
                q = q.where(self.table.c.user_id == user_id)
            return [_row(r) for r in conn.execute(q)]
        return self.tx(work, write=False)

    def clear(self) -> None:
        self.tx(lambda conn: conn.execute(delete(self.table)))


class SQLCvArchive(CvArchive):
    """Service + keyed SQL table; backends give the engine, the backup dir and transactions."""

    guarantees: ClassVar[frozenset[str]] = ALL_GUARANTEES
    boundary_points: ClassVar[tuple[str, ...]] = ("sql#k", "commit#k", "write#k")
    fault_points: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "save_cv": ("save_cv.health", "save_cv.stored", "save_cv.committed", "save_cv.readback",
                    "save_cv.backup_begin", "save_cv.backup_before_rename"),
        "recover": ("recover.health", "recover.stored", "recover.committed", "recover.readback",
                    "recover.imported", "recover.removed"),
    }
    #: Retries of the service (attempts = retries + 1) and its first backoff delay.
    retries: ClassVar[int] = 2
    base_delay_s: ClassVar[float] = 0.001

    def __init__(self, location: str, faults: FaultController | None = None) -> None:
        super().__init__(location, faults)
        self.backup_dir = self._backup_dir()
        self.db = ArchiveDB(self._create_engine(), KEYED_TABLE, keyed=True, name=self.name,
                            write_begin=self._write_begin())
        try:
            if self.location_kind != "server" or self.location not in _CREATED:
                self.db.create()
                _CREATED.add(self.location)
        except BaseException:
            self.db.engine.dispose()
            raise
        self.service = PersistenceService(self.db, self.backup_dir, self.faults,
                                          retries=self.retries, base_delay_s=self.base_delay_s)

    @property  # type: ignore[override]
    def faults(self) -> FaultController:
        return self._faults

    @faults.setter
    def faults(self, value: FaultController) -> None:
        self._faults = value
        service = self.__dict__.get("service")
        if service is not None:
            service.faults = value

    # -- backend hooks
    def _create_engine(self) -> Engine:
        raise NotImplementedError

    def _backup_dir(self) -> str:
        raise NotImplementedError

    def _write_begin(self) -> str | None:
        return None

    # -- lifecycle
    def close(self) -> None:
        self.db.engine.dispose()

    def reset(self) -> None:
        self.db.clear()
        self.service.backups.clear()

    def snapshot(self) -> Snapshot:
        rows = self.db.rows()
        backups, bad = self.service.backups.scan()
        return Snapshot(rows=rows, backups=backups, unreadable=bad)

    # -- operations
    def save_cv(self, request_id: str, user_id: str, filename: str, content: str) -> SaveResult:
        return self.service.save(request_id, user_id, filename, content)

    def get_cv(self, request_id: str) -> CvRow:
        row = self.db.read(request_id)
        if row is None:
            raise NotFound(f"cv {request_id!r}")
        return row

    def list_cvs(self, user_id: str | None = None) -> list[CvRow]:
        return self.db.rows(user_id)

    def recover(self, dry_run: bool = False, only: list[str] | None = None) -> RecoveryReport:
        return self.service.recover(dry_run=dry_run, only=only)

    def list_backups(self) -> list[Backup]:
        return self.service.list_backups()


class CvArchiveSQLite(SQLCvArchive):
    """The service in front of a SQLite file (all five guarantees)."""

    name: ClassVar[str] = "cv-archive-sqlite"
    location_kind: ClassVar[str] = "file"

    def _create_engine(self) -> Engine:
        os.makedirs(self.location, exist_ok=True)
        return sqlite_engine(os.path.join(self.location, DB_FILE))

    def _backup_dir(self) -> str:
        return os.path.join(self.location, BACKUP_SUBDIR)

    def _write_begin(self) -> str | None:
        return "BEGIN IMMEDIATE"


#: Pooled engines: a forked child drops the pools it inherited without closing the parent's
#: connections (SQLAlchemy's recipe for ``fork()``) and opens its own.
_POOLED: weakref.WeakSet[Engine] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for engine in list(_POOLED):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork_in_child)


def pg_backup_dir(location: str) -> str:
    """The backup directory of a PostgreSQL location (it cannot live in the DSN)."""
    target = parse_dsn(location)
    base = f"{target.url.host or 'local'}_{target.url.port or 5432}_{target.url.database}"
    return os.path.join(tempfile.gettempdir(), "cv-archive-backups",
                        f"{base}_{target.schema}".replace(os.sep, "_"))


class CvArchivePostgres(SQLCvArchive):
    """The service in front of a PostgreSQL schema (all five guarantees)."""

    name: ClassVar[str] = "cv-archive-postgres"
    location_kind: ClassVar[str] = "server"

    def __init__(self, location: str, faults: FaultController | None = None) -> None:
        self.target = parse_dsn(location)
        super().__init__(location, faults)

    def _create_engine(self) -> Engine:
        schema = self.target.schema
        engine = create_engine(self.target.url, pool_size=2, max_overflow=4, pool_timeout=60,
                               isolation_level="READ COMMITTED",
                               connect_args={"options": f"-c search_path={schema}",
                                           "connect_timeout": 10,
                                           "application_name": "cv-archive-harness"})
        _POOLED.add(engine)
        return engine

    def _backup_dir(self) -> str:
        return pg_backup_dir(self.location)

    @classmethod
    def validate_root(cls, root: str) -> None:
        PostgresAdapter.validate_root(root)

    @classmethod
    def fresh_location(cls, root: str, tag: str) -> str:
        location = PostgresAdapter.fresh_location(root, tag)
        _CREATED.discard(location)
        shutil.rmtree(pg_backup_dir(location), ignore_errors=True)
        return location

    @classmethod
    def drop_location(cls, location: str) -> None:
        _CREATED.discard(location)
        PostgresAdapter.drop_location(location)
        shutil.rmtree(pg_backup_dir(location), ignore_errors=True)
