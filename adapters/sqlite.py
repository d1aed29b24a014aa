"""The ``sqlite`` adapter: the contract in one SQLite file, ``<location>/resumes.sqlite3``.

WAL journal, ``synchronous=FULL`` (a commit is on disk before it is acknowledged), foreign keys
on for every connection, a busy timeout. The sqlite3 module's own transaction handling is off
(``isolation_level=None``); each operation begins its transaction itself, as SQLAlchemy's pysqlite
documentation describes: ``BEGIN IMMEDIATE`` for every write, so writers from every thread and
process serialize on the database's write lock before they read anything (no lost updates, no
``SQLITE_BUSY`` upgrade deadlocks), and a plain ``BEGIN`` for reads, which then see one WAL
snapshot. Connections come from a per-adapter pool and are never shared across ``fork()``.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any, ClassVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import QueuePool

from adapters.sql_common import READ, Mode, SQLStore
from harness.faults import FaultController

DB_FILE = "resumes.sqlite3"
BUSY_TIMEOUT_S = 15.0
_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    try:
        cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")
    finally:
        cur.close()


class SQLiteAdapter(SQLStore):
    """SQLite file store with real transactions and constraints (all five guarantees)."""

    name: ClassVar[str] = "sqlite"
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
            return code & 0xFF in _BUSY_CODES
        text = str(orig).lower()
        return "locked" in text or "busy" in text

    def _before_fork(self) -> None:
        # SQLite keeps per-process lock bookkeeping for every open file; a child forked while
        # this process has the database open inherits it and may skip taking real locks. Close
        # the idle connections so a child that opens the store starts from a clean slate.
        if self._pid == os.getpid() and not self._closed:
            self._engine.pool.dispose()
