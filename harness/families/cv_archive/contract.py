"""The cv-archive contract: a persistence service in front of an archive store (DESIGN section 8).

An adapter of this family is a service + store composite. ``save_cv`` is acknowledged only when
the CV is either stored in the archive and verified by reading it back (SHA-256 of what was sent),
or, when the store keeps failing, written to a JSON backup file that ``recover`` later imports.
Records are plain dataclasses with ``to_dict()``; errors are those of :mod:`harness.errors`.
"""

from __future__ import annotations

import abc
import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from harness.errors import InvalidData
from harness.store import Store

FAMILY = "cv-archive"
STORED = "stored"
BACKED_UP = "backed-up"
#: Where a stored row came from.
ORIGIN_SAVE = "save"
ORIGIN_RECOVERY = "recovery"
OPERATIONS: tuple[str, ...] = ("save_cv", "get_cv", "list_cvs", "recover", "list_backups")
WRITE_OPERATIONS = frozenset({"save_cv", "recover"})
MAX_CONTENT_CHARS = 2_000_000


def sha256_text(text: str) -> str:
    """SHA-256 (hex) of ``text`` encoded as UTF-8: what read-back verification compares."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def validate_save(request_id: Any, user_id: Any, filename: Any, content: Any) -> None:
    """``InvalidData`` naming the first bad argument (non-empty strings, content bounded)."""
    for name, value in (("request_id", request_id), ("user_id", user_id), ("filename", filename)):
        if not isinstance(value, str) or not value.strip():
            raise InvalidData(name, "must be a non-empty string")
    if not isinstance(content, str) or not content:
        raise InvalidData("content", "must be a non-empty string")
    if len(content) > MAX_CONTENT_CHARS:
        raise InvalidData("content", f"longer than {MAX_CONTENT_CHARS} characters")


@dataclass
class CvRow:
    """One row of the archive table. ``sha256`` is the hash of what the service was sent."""

    row_id: int
    request_id: str
    user_id: str
    filename: str
    content: str
    sha256: str
    origin: str = ORIGIN_SAVE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Backup:
    """One CV held in a backup file (``file`` names the file, relative to the backup dir)."""

    file: str
    request_id: str
    user_id: str
    filename: str
    content: str
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SaveResult:
    """What an acknowledged ``save_cv`` did: ``outcome`` is ``stored`` or ``backed-up``."""

    request_id: str
    outcome: str
    sha256: str
    attempts: int
    backup_file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RecoveryReport:
    """What ``recover`` did (or, with ``dry_run``, would do), by request id."""

    dry_run: bool
    imported: list[str] = field(default_factory=list)
    already_stored: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Snapshot:
    """Every stored row, every parsed backup entry and every backup file that does not parse."""

    rows: list[CvRow] = field(default_factory=list)
    backups: list[Backup] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)  # {"file", "error"}

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [r.to_dict() for r in self.rows],
                "backups": [b.to_dict() for b in self.backups],
                "unreadable": [dict(u) for u in self.unreadable]}


class CvArchive(Store):
    """The cv-archive contract.

    - ``save_cv(request_id, user_id, filename, content) -> SaveResult``: ``InvalidData`` for bad
      input (never retried). Otherwise the service checks the store's health, stores the CV and
      reads it back, comparing SHA-256 with what it was sent; transient failures (StorageError,
      a failed verification) are retried with exponential backoff. Acknowledged means: stored
      and verified (``stored``), or, after the last attempt failed, written durably to a backup
      file (``backed-up``). ``request_id`` identifies one upload: a retry of the same request
      (the service's own or the client's) must not create a second row. ``Conflict`` when the
      request id is already stored with different content. ``StorageError`` when even the
      backup could not be written (outcome unknown).
    - ``get_cv(request_id) -> CvRow`` (``NotFound``), ``list_cvs(user_id=None) -> list[CvRow]``.
    - ``recover(dry_run=False, only=None) -> RecoveryReport``: import every backup (or those whose
      request id is in ``only``) into the store, verify it, then remove the backup; running it
      twice, concurrently, or again after an interruption imports each backup exactly once.
      ``dry_run`` changes nothing and reports what would be imported.
    - ``list_backups() -> list[Backup]``: the CVs waiting in backups (unparsable files skipped).
    """

    family: ClassVar[str] = FAMILY
    operations: ClassVar[tuple[str, ...]] = OPERATIONS
    write_operations: ClassVar[frozenset[str]] = WRITE_OPERATIONS
    #: Where this adapter keeps its backup files (a directory).
    backup_dir: str

    @abc.abstractmethod
    def save_cv(self, request_id: str, user_id: str, filename: str, content: str) -> SaveResult: ...

    @abc.abstractmethod
    def get_cv(self, request_id: str) -> CvRow: ...

    @abc.abstractmethod
    def list_cvs(self, user_id: str | None = None) -> list[CvRow]: ...

    @abc.abstractmethod
    def recover(self, dry_run: bool = False, only: list[str] | None = None) -> RecoveryReport: ...

    @abc.abstractmethod
    def list_backups(self) -> list[Backup]: ...

    @abc.abstractmethod
    def snapshot(self) -> Snapshot: ...
