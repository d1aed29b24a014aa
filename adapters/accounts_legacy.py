"""The ``accounts-legacy`` adapter: the audited SQLite schema and data-access code, reproduced.

Raw ``sqlite3`` (no SQLAlchemy), one connection per operation, the module's default transaction
handling, one ``commit()`` per statement as the audited code does. The audited patterns:

- SCHEMA-FK: the schema declares ``REFERENCES users(user_id) ON DELETE CASCADE`` on sessions and
  CV uploads, but ``PRAGMA foreign_keys`` is never turned on, so SQLite enforces none of it:
  ``delete_user`` deletes the user row and leaves its sessions and uploads behind.
- SCHEMA-EMAIL: ``email`` has an index but no UNIQUE constraint; sign-up SELECTs for the email
  and then INSERTs, so two concurrent sign-ups with one email both succeed.
- SCHEMA-TRANSFER: ``transfer_cv_ownership`` re-creates the upload under the new owner as two
  statements with a commit each (DELETE the row, then INSERT it again), and never checks that
  the current owner is anonymous.
- SCHEMA-CACHE: the cache is written when ``confidence >= 0.75`` (the threshold itself is
  stored), and a read increments ``access_count`` by reading it and writing back ``count + 1``.
- SCHEMA-CLEANUP: session ``created_at`` is kept as the text the client sent (``T`` or space,
  ``Z`` or any offset) and cleanup deletes ``WHERE created_at < ?`` against an ISO cutoff:
  a string comparison of mixed formats.

Named fault points sit at every step boundary, after each check and after each commit (raw
sqlite3 passes no automatic storage-boundary points).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, ClassVar

from harness.families.accounts.contract import (
    CACHE_THRESHOLD,
    AccountsStore,
    CacheEntry,
    Conflict,
    InvalidData,
    NotFound,
    Session,
    Snapshot,
    StorageError,
    Upload,
    User,
    check_cleanup_args,
    check_confidence,
    check_email,
    now_iso,
    parse_time,
)
from harness.faults import FaultController

DB_FILE = "accounts.db"

SCHEMA = """
BEGIN;
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    is_anonymous INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_users_email ON users (email);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cv_uploads (
    job_id TEXT UNIQUE NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    file_hash TEXT NOT NULL,
    filename TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS extraction_cache (
    file_hash TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    confidence REAL NOT NULL,
    access_count INTEGER NOT NULL DEFAULT 0
);
COMMIT;
"""


class AccountsLegacyAdapter(AccountsStore):
    """The audited code path; claims no guarantee."""

    name: ClassVar[str] = "accounts-legacy"
    location_kind: ClassVar[str] = "file"
    guarantees: ClassVar[frozenset[str]] = frozenset()
    boundary_points: ClassVar[tuple[str, ...]] = ()
    fault_points: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "create_user": ("create_user.after_check", "create_user.after_insert"),
        "delete_user": ("delete_user.after_read", "delete_user.after_delete"),
        "create_session": ("create_session.after_check", "create_session.after_insert"),
        "cleanup_sessions": ("cleanup_sessions.after_delete",),
        "create_upload": ("create_upload.after_check", "create_upload.after_insert"),
        "transfer_cv_ownership": ("transfer_cv_ownership.after_read",
                                  "transfer_cv_ownership.after_delete",
                                  "transfer_cv_ownership.after_insert"),
        "cache_extraction": ("cache_extraction.after_upsert",),
        "get_cached_extraction": ("get_cached_extraction.after_read",
                                  "get_cached_extraction.after_update"),
    }

    def __init__(self, location: str, faults: FaultController | None = None) -> None:
        super().__init__(location, faults)
        os.makedirs(location, exist_ok=True)
        self.path = os.path.join(location, DB_FILE)
        with self._db() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A new connection per operation, as the audited ``get_db()`` opens one per request."""
        try:
            db = sqlite3.connect(self.path, timeout=5.0)
        except sqlite3.Error as exc:
            raise StorageError(f"{self.name}: {exc}") from exc
        db.row_factory = sqlite3.Row
        try:
            yield db
        except sqlite3.OperationalError as exc:
            raise StorageError(f"{self.name}: {exc}") from exc
        finally:
            db.close()

    # -- lifecycle
    def reset(self) -> None:
        with self._db() as db:
            for table in ("sessions", "cv_uploads", "extraction_cache", "users"):
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
            db.commit()

    def snapshot(self) -> Snapshot:
        snap = Snapshot()
        with self._db() as db:
            db.execute("BEGIN")
            for r in db.execute("SELECT * FROM users"):
                snap.users[r["user_id"]] = _user(r)
            for r in db.execute("SELECT * FROM sessions"):
                snap.sessions[r["session_id"]] = Session(r["session_id"], r["user_id"],
                                                         r["created_at"])
            snap.uploads = [_upload(r) for r in db.execute("SELECT * FROM cv_uploads")]
            for r in db.execute("SELECT * FROM extraction_cache"):
                snap.cache[r["file_hash"]] = _entry(r)
            db.rollback()
        return snap

    # -- users
    def create_user(self, user_id: str, email: str, is_anonymous: bool = False) -> User:
        check_email(email)
        with self._db() as db:
            if db.execute("SELECT 1 FROM users WHERE user_id = ?", (user_id,)).fetchone():
                raise Conflict(f"user {user_id!r} already exists")
            # SCHEMA-EMAIL: check, then insert; nothing in the schema stops a second row.
            if db.execute("SELECT 1 FROM users WHERE lower(email) = lower(?)",
                          (email.strip(),)).fetchone():
                raise Conflict(f"email {email!r} is taken")
            self.faults.point("create_user.after_check")
            db.execute("INSERT INTO users (user_id, email, is_anonymous, created_at) "
                       "VALUES (?, ?, ?, ?)", (user_id, email, int(bool(is_anonymous)), now_iso()))
            db.commit()
            self.faults.point("create_user.after_insert")
            return _user(db.execute("SELECT * FROM users WHERE user_id = ?", (user_id,)).fetchone())

    def get_user(self, user_id: str) -> User:
        with self._db() as db:
            row = db.execute("SELECT * FROM users WHERE user_id = ?", (user_id,)).fetchone()
        if row is None:
            raise NotFound(f"user {user_id!r}")
        return _user(row)

    def delete_user(self, user_id: str) -> None:
        with self._db() as db:
            if not db.execute("SELECT 1 FROM users WHERE user_id = ?", (user_id,)).fetchone():
                raise NotFound(f"user {user_id!r}")
            self.faults.point("delete_user.after_read")
            # SCHEMA-FK: relies on ON DELETE CASCADE, which is off without PRAGMA foreign_keys.
            db.execute("DELETE FROM users WHERE user_id = ?", (user_id,))
            db.commit()
            self.faults.point("delete_user.after_delete")

    # -- sessions
    def create_session(self, session_id: str, user_id: str, created_at: str) -> Session:
        parse_time(created_at)  # validated, but SCHEMA-CLEANUP: stored as sent
        with self._db() as db:
            if not db.execute("SELECT 1 FROM users WHERE user_id = ?", (user_id,)).fetchone():
                raise NotFound(f"user {user_id!r}")
            if db.execute("SELECT 1 FROM sessions WHERE session_id = ?", (session_id,)).fetchone():
                raise Conflict(f"session {session_id!r} already exists")
            self.faults.point("create_session.after_check")
            db.execute("INSERT INTO sessions (session_id, user_id, created_at) VALUES (?, ?, ?)",
                       (session_id, user_id, created_at))
            db.commit()
            self.faults.point("create_session.after_insert")
        return Session(session_id, user_id, created_at)

    def cleanup_sessions(self, older_than_days: int, now: str) -> int:
        check_cleanup_args(older_than_days, now)
        # SCHEMA-CLEANUP: an ISO cutoff compared as text with whatever format each row holds.
        cutoff = (parse_time(now, "now") - timedelta(days=older_than_days)).isoformat()
        with self._db() as db:
            removed = db.execute("DELETE FROM sessions WHERE created_at < ?", (cutoff,)).rowcount
            db.commit()
            self.faults.point("cleanup_sessions.after_delete")
        return removed

    # -- uploads
    def create_upload(self, job_id: str, user_id: str, file_hash: str, filename: str) -> Upload:
        with self._db() as db:
            if not db.execute("SELECT 1 FROM users WHERE user_id = ?", (user_id,)).fetchone():
                raise NotFound(f"user {user_id!r}")
            if db.execute("SELECT 1 FROM cv_uploads WHERE job_id = ?", (job_id,)).fetchone():
                raise Conflict(f"upload {job_id!r} already exists")
            self.faults.point("create_upload.after_check")
            db.execute("INSERT INTO cv_uploads (job_id, user_id, file_hash, filename, created_at) "
                       "VALUES (?, ?, ?, ?, ?)", (job_id, user_id, file_hash, filename, now_iso()))
            db.commit()
            self.faults.point("create_upload.after_insert")
            return self._load_upload(db, job_id)

    @staticmethod
    def _load_upload(db: sqlite3.Connection, job_id: str) -> Upload:
        row = db.execute("SELECT * FROM cv_uploads WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"upload {job_id!r}")
        return _upload(row)

    def get_upload(self, job_id: str) -> Upload:
        with self._db() as db:
            return self._load_upload(db, job_id)

    def transfer_cv_ownership(self, job_id: str, new_user_id: str) -> Upload:
        with self._db() as db:
            old = self._load_upload(db, job_id)
            if not db.execute("SELECT 1 FROM users WHERE user_id = ?", (new_user_id,)).fetchone():
                raise NotFound(f"user {new_user_id!r}")
            # SCHEMA-TRANSFER: no check that the current owner is anonymous.
            self.faults.point("transfer_cv_ownership.after_read")
            db.execute("DELETE FROM cv_uploads WHERE job_id = ?", (job_id,))
            db.commit()
            self.faults.point("transfer_cv_ownership.after_delete")
            db.execute("INSERT INTO cv_uploads (job_id, user_id, file_hash, filename, created_at) "
                       "VALUES (?, ?, ?, ?, ?)",
                       (job_id, new_user_id, old.file_hash, old.filename, old.created_at))
            db.commit()
            self.faults.point("transfer_cv_ownership.after_insert")
            return self._load_upload(db, job_id)

    # -- cache
    def cache_extraction(self, file_hash: str, data: Any, confidence: float) -> bool:
        confidence = check_confidence(confidence)
        if confidence < CACHE_THRESHOLD:  # SCHEMA-CACHE: the threshold itself gets stored
            return False
        try:
            text = json.dumps(data)
        except (TypeError, ValueError) as exc:
            raise InvalidData("data", str(exc)) from None
        with self._db() as db:
            db.execute("INSERT INTO extraction_cache (file_hash, data, confidence) VALUES (?, ?, ?) "
                       "ON CONFLICT (file_hash) DO UPDATE SET data = excluded.data, "
                       "confidence = excluded.confidence", (file_hash, text, confidence))
            db.commit()
            self.faults.point("cache_extraction.after_upsert")
        return True

    def get_cached_extraction(self, file_hash: str) -> CacheEntry:
        with self._db() as db:
            row = db.execute("SELECT * FROM extraction_cache WHERE file_hash = ?",
                             (file_hash,)).fetchone()
            if row is None:
                raise NotFound(f"no cached extraction for {file_hash!r}")
            self.faults.point("get_cached_extraction.after_read")
            count = row["access_count"] + 1  # SCHEMA-CACHE: read-modify-write, not atomic
            db.execute("UPDATE extraction_cache SET access_count = ? WHERE file_hash = ?",
                       (count, file_hash))
            db.commit()
            self.faults.point("get_cached_extraction.after_update")
        entry = _entry(row)
        entry.access_count = count
        return entry


def _user(row: sqlite3.Row) -> User:
    return User(row["user_id"], row["email"], bool(row["is_anonymous"]), row["created_at"])


def _upload(row: sqlite3.Row) -> Upload:
    return Upload(row["job_id"], row["user_id"], row["file_hash"], row["filename"],
                  row["created_at"])


def _entry(row: sqlite3.Row) -> CacheEntry:
    return CacheEntry(row["file_hash"], json.loads(row["data"]), row["confidence"],
                      row["access_count"])
