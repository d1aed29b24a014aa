"""The resume storage contract: records, snapshot, errors, guarantees and the adapter interface.

Every storage backend the harness drives implements :class:`StorageAdapter`. Records are plain
dataclasses so that snapshots compare and hash the same whatever the backend. Ids are chosen by
the caller (the harness passes seeded ids so that runs replay exactly); an adapter generates one
only when none is given.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from harness.errors import (  # noqa: F401 - re-exported as part of the contract
    Conflict,
    ContractError,
    InvalidData,
    NotFound,
    StorageError,
)
from harness.schema import validate_resume_data

# --------------------------------------------------------------------------- guarantees
# Defined in harness.store for every family; re-exported here as part of the resume contract.
from harness.store import (  # noqa: E402, F401
    ATOMIC,
    CONTRACT,
    CRASH_SAFE,
    DURABLE,
    GUARANTEES,
    PROCESS_SAFE,
    THREAD_SAFE,
    Store,
)

# --------------------------------------------------------------------------- errors

# Re-exported from harness.errors: ContractError, NotFound, Conflict, InvalidData, StorageError.

# --------------------------------------------------------------------------- records


def now_iso() -> str:
    """UTC timestamp with microseconds, the format every adapter stores."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Resume:
    resume_id: str
    content: str
    content_type: str = "md"
    filename: str = ""
    is_master: bool = False
    parent_id: str | None = None
    processed_data: dict[str, Any] | None = None
    processing_status: str = "pending"
    cover_letter: str | None = None
    outreach_message: str | None = None
    created_at: str = ""
    updated_at: str = ""

    @property
    def is_tailored(self) -> bool:
        return self.parent_id is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Job:
    job_id: str
    content: str
    preview_hashes: dict[str, str] = field(default_factory=dict)
    job_keywords: list[str] = field(default_factory=list)
    created_at: str = ""
    updated_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Improvement:
    request_id: str
    original_resume_id: str
    tailored_resume_id: str
    job_id: str
    improvements: list[dict[str, Any]] = field(default_factory=list)
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Confirmation:
    """What ``confirm_improvement`` returns: the tailored resume and its improvement record."""

    resume: Resume
    improvement: Improvement

    def to_dict(self) -> dict[str, Any]:
        return {"resume": self.resume.to_dict(), "improvement": self.improvement.to_dict()}


@dataclass
class Snapshot:
    """Every record of every table, read consistently."""

    resumes: dict[str, Resume] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    improvements: dict[str, Improvement] = field(default_factory=dict)

    def masters(self) -> list[Resume]:
        return sorted((r for r in self.resumes.values() if r.is_master), key=lambda r: r.resume_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "resumes": {k: v.to_dict() for k, v in sorted(self.resumes.items())},
            "jobs": {k: v.to_dict() for k, v in sorted(self.jobs.items())},
            "improvements": {k: v.to_dict() for k, v in sorted(self.improvements.items())},
        }


def resume_from_dict(d: Mapping[str, Any]) -> Resume:
    names = Resume.__dataclass_fields__
    return Resume(**{k: v for k, v in d.items() if k in names})


def job_from_dict(d: Mapping[str, Any]) -> Job:
    names = Job.__dataclass_fields__
    return Job(**{k: v for k, v in d.items() if k in names})


def improvement_from_dict(d: Mapping[str, Any]) -> Improvement:
    names = Improvement.__dataclass_fields__
    return Improvement(**{k: v for k, v in d.items() if k in names})


#: Fields ``update_resume`` may change.
UPDATABLE_RESUME_FIELDS = frozenset({"content", "content_type", "filename", "processed_data",
                                     "processing_status"})


def check_processed_data(data: Mapping[str, Any] | None, field_prefix: str = "processed_data") -> None:
    """Raise :class:`InvalidData` naming the field when ``data`` fails the ResumeData schema."""
    if data is None:
        return
    problem = validate_resume_data(data)
    if problem is not None:
        path, message = problem
        raise InvalidData(f"{field_prefix}.{path}" if path else field_prefix, message)


# --------------------------------------------------------------------------- the adapter


#: The contract operations, in the order the app's flows use them; ``WRITE_OPERATIONS`` change state.
OPERATIONS: tuple[str, ...] = (
    "upload_resume", "get_resume", "list_resumes", "update_resume", "set_master",
    "delete_resume", "save_cover_letter", "save_outreach_message", "create_job", "get_job",
    "record_preview", "confirm_improvement", "get_improvement_by_tailored_resume",
)
WRITE_OPERATIONS: frozenset[str] = frozenset({
    "upload_resume", "update_resume", "set_master", "delete_resume", "save_cover_letter",
    "save_outreach_message", "create_job", "record_preview", "confirm_improvement",
})


class StorageAdapter(Store):
    """One storage backend behind the resume contract (DESIGN section 3).

    Subclasses set ``name``, ``guarantees`` and ``fault_points`` (operation -> the named fault
    points it passes, in order, each named ``"<operation>.<step>"``) and implement the
    operations, each one unit of work. They call ``self.faults.point(name)`` at every step
    boundary of a multi-step operation. ``location`` is a directory for file stores and a DSN
    for servers; opening a new instance on the same location is how a restart after a crash is
    simulated.

    Semantics every correct adapter follows (the reference model, :mod:`harness.model`, is the
    executable version):

    - Ids given by the caller are used as they are; one is generated only when none is given.
    - Timestamps are :func:`now_iso` strings and read back exactly as stored.
    - Errors: a missing id raises ``NotFound`` and changes nothing; input failing ResumeData
      raises ``InvalidData`` (``field`` = ``processed_data.<path>`` or ``improved_data.<path>``,
      or the name of a field ``update_resume`` may not change) and changes nothing; a wrong
      preview hash raises ``Conflict``; a store failure raises ``StorageError``. ``NotFound`` is
      checked before ``InvalidData``; creating a record whose id already exists is ``Conflict``.
    - ``set_master`` accepts any existing resume, tailored ones included.
    - What an operation returns equals what is stored right after it.
    - ``processing_status`` is ``"completed"`` when ``processed_data`` is set, else ``"pending"``
      unless ``update_resume`` sets it explicitly.
    """

    family: ClassVar[str] = "resumes"
    operations: ClassVar[tuple[str, ...]] = OPERATIONS
    write_operations: ClassVar[frozenset[str]] = WRITE_OPERATIONS

    @abc.abstractmethod
    def snapshot(self) -> Snapshot:
        """Every record of every table, read consistently."""

    # -- resumes
    @abc.abstractmethod
    def upload_resume(self, content: str, content_type: str = "md", filename: str = "",
                      processed_data: dict[str, Any] | None = None, *,
                      resume_id: str | None = None) -> Resume:
        """Store a new non-tailored resume; it becomes master iff there is no master yet.
        ``processed_data`` (may be None) is validated first."""

    @abc.abstractmethod
    def get_resume(self, resume_id: str) -> Resume:
        """The stored resume, or ``NotFound``."""

    @abc.abstractmethod
    def list_resumes(self) -> list[Resume]:
        """Every resume, ordered by ``(created_at, resume_id)``."""

    @abc.abstractmethod
    def update_resume(self, resume_id: str, fields: Mapping[str, Any]) -> Resume:
        """Change fields among ``UPDATABLE_RESUME_FIELDS`` (any other key: ``InvalidData`` naming
        it); ``processed_data`` is validated; ``updated_at`` is refreshed."""

    @abc.abstractmethod
    def set_master(self, resume_id: str) -> Resume:
        """Make ``resume_id`` the master; the old master is unset in the same unit of work.
        Returns the new master."""

    @abc.abstractmethod
    def delete_resume(self, resume_id: str) -> None:
        """Delete a resume, its improvements and its tailored descendants; deleting the master
        promotes the oldest remaining non-tailored resume (by ``created_at``, then id)."""

    @abc.abstractmethod
    def save_cover_letter(self, resume_id: str, text: str) -> Resume:
        """Set ``cover_letter``; returns the updated resume."""

    @abc.abstractmethod
    def save_outreach_message(self, resume_id: str, text: str) -> Resume:
        """Set ``outreach_message``; returns the updated resume."""

    # -- jobs
    @abc.abstractmethod
    def create_job(self, content: str, job_keywords: list[str] | None = None, *,
                   job_id: str | None = None) -> Job:
        """Store a job description with no preview hashes."""

    @abc.abstractmethod
    def get_job(self, job_id: str) -> Job:
        """The stored job, or ``NotFound``."""

    @abc.abstractmethod
    def record_preview(self, job_id: str, prompt_id: str, preview_hash: str) -> Job:
        """Record (or replace) the preview hash for one prompt without losing other prompts'
        hashes; ``NotFound`` for a missing job. Returns the job as stored after the change."""

    # -- improvements
    @abc.abstractmethod
    def confirm_improvement(self, resume_id: str, job_id: str, prompt_id: str, preview_hash: str,
                            improved_data: dict[str, Any], improvements: list[dict[str, Any]], *,
                            tailored_resume_id: str | None = None,
                            request_id: str | None = None) -> Confirmation:
        """Checks in this order: resume and job exist (``NotFound``), the hash recorded for
        ``prompt_id`` equals ``preview_hash`` (``Conflict``), ``improved_data`` is valid
        (``InvalidData``). Then creates, as one unit, the tailored resume (``parent_id`` =
        ``resume_id``, not master, content / content_type / filename copied from the original,
        ``processed_data`` = ``improved_data``, status ``"completed"``) and its improvement
        record. ``improved_data`` is required: None is ``InvalidData``."""

    @abc.abstractmethod
    def get_improvement_by_tailored_resume(self, tailored_resume_id: str) -> Improvement:
        """The improvement whose tailored resume is ``tailored_resume_id``, or ``NotFound``."""

