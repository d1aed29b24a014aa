"""``cv-archive-legacy``: the audited CV archive persistence code, reproduced faithfully.

What the audit found (and this adapter keeps on purpose):

- Schema: ``cv_archive.request_id`` is indexed but NOT unique and inserts carry no idempotency
  key; the service retries on *any* exception, so a retry after an ambiguous commit (the
  connection lost after the commit went through) inserts a second row for the same request, as
  does a client that re-sends a request.
- Read-back verification compares the LENGTH of what was read with what was sent, not a hash: a
  same-length corruption of the stored bytes is acknowledged as verified, and never repaired.
- Backups: one JSON list, ``<location>/cv_backups.json``, rewritten IN PLACE on every change
  (``open(path, "w")`` truncates first; no temp file, no fsync, no rename). A crash while it is
  rewritten leaves it empty or torn, losing every CV it held; an unreadable file is silently
  treated as empty and overwritten by the next backup. Writers do not lock it: a save that
  falls back to a backup while a recovery runs is overwritten by the recovery's stale list.
- Recovery imports an entry, then rewrites the file without it, with no record of progress in
  the store: an interrupted recovery, a repeated one or two concurrent ones import the same
  backup twice (the table happily takes the duplicate).

It claims no guarantee. The store is a real SQLite file (``<location>/archive.sqlite3``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from sqlalchemy import MetaData

from adapters.cv_archive_sql import DB_FILE, ArchiveDB, archive_table, sqlite_engine
from harness.errors import NotFound, StorageError
from harness.families.cv_archive.contract import (
    BACKED_UP,
    ORIGIN_RECOVERY,
    ORIGIN_SAVE,
    STORED,
    Backup,
    CvArchive,
    CvRow,
    RecoveryReport,
    SaveResult,
    Snapshot,
    sha256_text,
    validate_save,
)
from harness.families.cv_archive.service import corrupt, parse_entry
from harness.faults import FaultController

BACKUP_FILE = "cv_backups.json"
ATTEMPTS = 3
RETRY_DELAY_S = 0.001
LEGACY_TABLE = archive_table(MetaData(), unique=False)


class LegacyBackupFile:
    """The audited backup file: one JSON list rewritten in place."""

    def __init__(self, path: str, faults: FaultController) -> None:
        self.path = path
        self.faults = faults

    def load(self) -> list[dict[str, Any]]:
        """The entries; a missing or unreadable file counts as empty (as the audited code did)."""
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return []
        return data if isinstance(data, list) else []

    def rewrite(self, entries: list[dict[str, Any]]) -> None:
        data = json.dumps(entries, ensure_ascii=False)
        with open(self.path, "w", encoding="utf-8") as fh:  # truncates first: the audited bug
            torn = self.faults.boundary("write")
            if torn is not None:
                rule, point = torn
                fh.write(data[:max(1, int(len(data) * rule.torn_fraction))])
                fh.flush()
                os.fsync(fh.fileno())
                self.faults.die(point)
            fh.write(data)

    def append(self, entry: dict[str, Any]) -> None:
        entries = self.load()
        entries.append(entry)
        self.rewrite(entries)

    def scan(self) -> tuple[list[Backup], list[dict[str, str]]]:
        name = os.path.basename(self.path)
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
            if not isinstance(data, list):
                raise ValueError("backup file is not a list")
            return [parse_entry(name, e) for e in data], []
        except FileNotFoundError:
            return [], []
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return [], [{"file": name, "error": f"{type(exc).__name__}: {exc}"[:200]}]


class CvArchiveLegacy(CvArchive):
    """The audited service + schema (see the module docstring)."""

    name: ClassVar[str] = "cv-archive-legacy"
    guarantees: ClassVar[frozenset[str]] = frozenset()
    location_kind: ClassVar[str] = "file"
    boundary_points: ClassVar[tuple[str, ...]] = ("sql#k", "commit#k", "write#k")
    fault_points: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "save_cv": ("save_cv.health", "save_cv.stored", "save_cv.committed", "save_cv.readback",
                    "save_cv.backup_begin"),
        "recover": ("recover.health", "recover.imported", "recover.removed"),
    }

    def __init__(self, location: str, faults: FaultController | None = None) -> None:
        super().__init__(location, faults)
        os.makedirs(location, exist_ok=True)
        self.backup_dir = location
        self.db = ArchiveDB(sqlite_engine(os.path.join(location, DB_FILE)), LEGACY_TABLE,
                            keyed=False, name=self.name, write_begin="BEGIN IMMEDIATE")
        self.db.create()
        self.backup = LegacyBackupFile(os.path.join(location, BACKUP_FILE), self.faults)

    @property  # type: ignore[override]
    def faults(self) -> FaultController:
        return self._faults

    @faults.setter
    def faults(self, value: FaultController) -> None:
        self._faults = value
        backup = self.__dict__.get("backup")
        if backup is not None:
            backup.faults = value

    def close(self) -> None:
        self.db.engine.dispose()

    def reset(self) -> None:
        self.db.clear()
        try:
            os.unlink(self.backup.path)
        except FileNotFoundError:
            pass

    def snapshot(self) -> Snapshot:
        backups, bad = self.backup.scan()
        return Snapshot(rows=self.db.rows(), backups=backups, unreadable=bad)

    # -- operations
    def save_cv(self, request_id: str, user_id: str, filename: str, content: str) -> SaveResult:
        validate_save(request_id, user_id, filename, content)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                self.faults.point("save_cv.health")
                self.db.ping()
                body = corrupt(content) if self.faults.point("save_cv.stored") else content
                self.db.insert(request_id, user_id, filename, body, sha256_text(content),
                               ORIGIN_SAVE)
                self.faults.point("save_cv.committed")
                row = self.db.last_row_of(request_id)
                if row is None:
                    raise StorageError("not found on read-back")
                got = corrupt(row.content) if self.faults.point("save_cv.readback") else row.content
                if len(got) != len(content):  # the audited check: lengths, not hashes
                    raise StorageError("read-back length differs")
                return SaveResult(request_id, STORED, sha256_text(content), attempt)
            except Exception:  # noqa: BLE001 - the audited pattern retries on anything
                time.sleep(RETRY_DELAY_S)
        self.faults.point("save_cv.backup_begin")
        self.backup.append({"request_id": request_id, "user_id": user_id, "filename": filename,
                            "content": content, "sha256": sha256_text(content)})
        return SaveResult(request_id, BACKED_UP, sha256_text(content), ATTEMPTS,
                          backup_file=BACKUP_FILE)

    def get_cv(self, request_id: str) -> CvRow:
        row = self.db.read(request_id)
        if row is None:
            raise NotFound(f"cv {request_id!r}")
        return row

    def list_cvs(self, user_id: str | None = None) -> list[CvRow]:
        return self.db.rows(user_id)

    def recover(self, dry_run: bool = False, only: list[str] | None = None) -> RecoveryReport:
        report = RecoveryReport(dry_run=dry_run)
        entries = self.backup.load()
        remaining = list(entries)
        for entry in entries:
            rid = entry.get("request_id")
            if only is not None and rid not in only:
                continue
            if dry_run:
                report.imported.append(rid)
                continue
            self.faults.point("recover.health")
            self.db.ping()
            self.db.insert(rid, entry["user_id"], entry["filename"], entry["content"],
                           entry["sha256"], ORIGIN_RECOVERY)
            self.faults.point("recover.imported")
            remaining.remove(entry)
            self.backup.rewrite(remaining)  # progress lives only in this file
            self.faults.point("recover.removed")
            report.imported.append(rid)
        return report

    def list_backups(self) -> list[Backup]:
        return self.backup.scan()[0]
