"""The robust persistence service in front of any archive store (the design the audit asked for).

:class:`PersistenceService` saves a CV with: a health check before each attempt, an idempotent
insert keyed by the request id, read-back verification by SHA-256 of what was sent (a corrupted
row is repaired from what was sent and verified again), retries with exponential backoff for
transient errors only (``StorageError`` and failed verifications; never ``InvalidData`` or
``Conflict``), and, when every attempt failed, a JSON backup file written atomically
(:class:`BackupDir`: temp file, fsync, rename, fsync of the directory). ``recover`` imports the
backups idempotently and removes each one only after its row is verified, so an interrupted,
repeated or concurrent recovery imports each backup exactly once. Temp files of backup writes
that never completed (``*.tmp``) are ignored and left in place.

Fault points (``<op>`` is the client operation, ``save_cv`` or ``recover``): ``<op>.health``
before the health check, ``<op>.stored`` before the insert (``corrupt``: the bytes that reach the
store are corrupted), ``<op>.committed`` after the insert committed (``error``: the connection is
lost after the commit, an ambiguous outcome), ``<op>.readback`` after reading back (``corrupt``:
the bytes read are corrupted), ``<op>.backup_begin`` / ``<op>.write#k`` (the backup file's write,
``torn-write`` applies) / ``<op>.backup_before_rename``, ``recover.imported`` /
``recover.removed`` per backup.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from typing import Any, Protocol

from harness.errors import Conflict, StorageError
from harness.families.cv_archive.contract import (
    BACKED_UP,
    ORIGIN_RECOVERY,
    ORIGIN_SAVE,
    STORED,
    Backup,
    CvRow,
    RecoveryReport,
    SaveResult,
    sha256_text,
    validate_save,
)
from harness.faults import FaultController, current_operation

BACKUP_FORMAT = 1
BACKUP_PREFIX = "cv-"
BACKUP_SUFFIX = ".json"
TEMP_SUFFIX = ".tmp"


class VerificationFailed(StorageError):
    """What was read back does not hash to what was sent (transient: retried)."""


class ArchiveBackend(Protocol):
    """The store behind the service. Every method is one transaction; failures are StorageError."""

    def ping(self) -> None: ...

    def insert(self, request_id: str, user_id: str, filename: str, content: str, sha256: str,
               origin: str) -> bool: ...

    def read(self, request_id: str) -> CvRow | None: ...

    def repair(self, request_id: str, content: str) -> None: ...


def corrupt(text: str) -> str:
    """``text`` with its first character changed, length unchanged (silent corruption)."""
    if not text:
        return "\x00"
    first = text[0]
    swapped = chr(ord(first) ^ 1)
    if swapped == first or not swapped.isprintable():
        swapped = "#" if first != "#" else "*"
    return swapped + text[1:]


def backoff_delays(retries: int, base_delay_s: float, max_delay_s: float) -> list[float]:
    """The sleeps between attempts: ``base * 2**k``, capped."""
    return [min(max_delay_s, base_delay_s * 2 ** k) for k in range(retries)]


def _op(default: str) -> str:
    return current_operation() or default


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BackupDir:
    """One JSON file per request id, written atomically (temp + fsync + rename + dir fsync).

    Files are ``cv-<sha256(request_id)[:24]>.json``; ``*.tmp`` files are writes that never
    completed and are ignored. A file that does not parse is reported, never imported or removed.
    """

    def __init__(self, path: str, faults: FaultController) -> None:
        self.path = path
        self.faults = faults
        os.makedirs(path, exist_ok=True)

    @staticmethod
    def file_name(request_id: str) -> str:
        return f"{BACKUP_PREFIX}{sha256_text(request_id)[:24]}{BACKUP_SUFFIX}"

    def write(self, request_id: str, user_id: str, filename: str, content: str) -> str:
        op = _op("save_cv")
        self.faults.point(f"{op}.backup_begin")
        name = self.file_name(request_id)
        final = os.path.join(self.path, name)
        temp = f"{final}.{os.getpid()}.{threading.get_ident()}.{time.monotonic_ns()}{TEMP_SUFFIX}"
        data = json.dumps({"format": BACKUP_FORMAT, "request_id": request_id, "user_id": user_id,
                           "filename": filename, "content": content,
                           "sha256": sha256_text(content)}, ensure_ascii=False)
        try:
            with open(temp, "w", encoding="utf-8") as fh:
                torn = self.faults.boundary("write")
                if torn is not None:
                    rule, point = torn
                    fh.write(data[:max(1, int(len(data) * rule.torn_fraction))])
                    fh.flush()
                    os.fsync(fh.fileno())
                    self.faults.die(point)
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            self.faults.point(f"{op}.backup_before_rename")
            os.replace(temp, final)
            _fsync_dir(self.path)
        except OSError as exc:
            raise StorageError(f"backup could not be written: {exc}") from exc
        return name

    def names(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.path)
                          if n.startswith(BACKUP_PREFIX) and n.endswith(BACKUP_SUFFIX))
        except FileNotFoundError:
            return []

    def scan(self) -> tuple[list[Backup], list[dict[str, str]]]:
        """Parsed backups (by request id) and ``{"file", "error"}`` for each file that does not
        parse."""
        good: list[Backup] = []
        bad: list[dict[str, str]] = []
        for name in self.names():
            try:
                with open(os.path.join(self.path, name), encoding="utf-8") as fh:
                    good.append(parse_entry(name, json.load(fh)))
            except FileNotFoundError:
                continue  # removed by a concurrent recovery
            except (OSError, ValueError, KeyError, TypeError) as exc:
                bad.append({"file": name, "error": f"{type(exc).__name__}: {exc}"[:200]})
        good.sort(key=lambda b: (b.request_id, b.file))
        return good, bad

    def remove(self, name: str) -> None:
        try:
            os.unlink(os.path.join(self.path, name))
        except FileNotFoundError:
            return  # a concurrent recovery removed it first
        _fsync_dir(self.path)

    def clear(self) -> None:
        for name in os.listdir(self.path) if os.path.isdir(self.path) else ():
            if name.startswith(BACKUP_PREFIX):
                os.unlink(os.path.join(self.path, name))


def parse_entry(file: str, raw: Any) -> Backup:
    """A backup entry from its JSON object; ``ValueError``/``KeyError``/``TypeError`` if malformed."""
    if not isinstance(raw, dict):
        raise ValueError("backup entry is not an object")
    entry = Backup(file=file, request_id=raw["request_id"], user_id=raw["user_id"],
                   filename=raw["filename"], content=raw["content"], sha256=raw["sha256"])
    for value in (entry.request_id, entry.user_id, entry.filename, entry.content, entry.sha256):
        if not isinstance(value, str):
            raise TypeError("backup entry field is not a string")
    return entry


class PersistenceService:
    """Save / recover on top of an :class:`ArchiveBackend`; see the module docstring."""

    def __init__(self, store: ArchiveBackend, backup_dir: str, faults: FaultController, *,
                 retries: int = 2, base_delay_s: float = 0.001, max_delay_s: float = 0.05) -> None:
        self.store = store
        self.backups = BackupDir(backup_dir, faults)
        self._faults = faults
        self.retries = retries
        self.delays = backoff_delays(retries, base_delay_s, max_delay_s)

    @property
    def faults(self) -> FaultController:
        return self._faults

    @faults.setter
    def faults(self, value: FaultController) -> None:
        self._faults = value
        self.backups.faults = value

    @property
    def attempts(self) -> int:
        return self.retries + 1

    # -- save
    def save(self, request_id: str, user_id: str, filename: str, content: str) -> SaveResult:
        validate_save(request_id, user_id, filename, content)
        sent = sha256_text(content)
        for attempt in range(1, self.attempts + 1):
            try:
                self._store_verified(_op("save_cv"), request_id, user_id, filename, content,
                                     sent, ORIGIN_SAVE)
                return SaveResult(request_id, STORED, sent, attempt)
            except StorageError:  # transient; Conflict / InvalidData pass through
                if attempt < self.attempts:
                    time.sleep(self.delays[attempt - 1])
        name = self.backups.write(request_id, user_id, filename, content)
        return SaveResult(request_id, BACKED_UP, sent, self.attempts, backup_file=name)

    def _store_verified(self, op: str, request_id: str, user_id: str, filename: str,
                        content: str, sent: str, origin: str) -> bool:
        """Health check, idempotent insert, read-back verification (repairing a corrupted row),
        passing ``<op>.*`` points. True when this call inserted the row."""
        self.faults.point(f"{op}.health")
        self.store.ping()
        body = corrupt(content) if self.faults.point(f"{op}.stored") else content
        inserted = self.store.insert(request_id, user_id, filename, body, sent, origin)
        self.faults.point(f"{op}.committed")
        self._verify(op, request_id, content, sent)
        return inserted

    def _verify(self, op: str, request_id: str, content: str, sent: str) -> None:
        row = self.store.read(request_id)
        if row is None:
            raise VerificationFailed(f"{request_id}: not found on read-back")
        got = corrupt(row.content) if self.faults.point(f"{op}.readback") else row.content
        if row.sha256 != sent:
            raise Conflict(f"{request_id} is already stored with different content")
        if sha256_text(got) != sent:
            self.store.repair(request_id, content)
            raise VerificationFailed(f"{request_id}: read-back hash differs from what was sent")

    # -- recovery
    def list_backups(self) -> list[Backup]:
        return self.backups.scan()[0]

    def recover(self, dry_run: bool = False, only: Iterable[str] | None = None) -> RecoveryReport:
        op = _op("recover")
        wanted = set(only) if only is not None else None
        report = RecoveryReport(dry_run=dry_run)
        entries, bad = self.backups.scan()
        report.unreadable = [b["file"] for b in bad]
        for entry in entries:
            if wanted is not None and entry.request_id not in wanted:
                continue
            if dry_run:
                report.imported.append(entry.request_id)
                continue
            if sha256_text(entry.content) != entry.sha256:
                report.unreadable.append(entry.file)  # the backup itself is damaged: keep it
                continue
            try:
                inserted = self._store_verified(op, entry.request_id, entry.user_id,
                                                entry.filename, entry.content, entry.sha256,
                                                ORIGIN_RECOVERY)
            except Conflict:
                report.conflicts.append(entry.request_id)
                continue
            self.faults.point(f"{op}.imported")
            self.backups.remove(entry.file)
            self.faults.point(f"{op}.removed")
            (report.imported if inserted else report.already_stored).append(entry.request_id)
        return report
