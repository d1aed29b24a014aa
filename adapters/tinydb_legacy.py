"""``tinydb-legacy``: the audited Resume-Matcher-style TinyDB ``database.py``, reproduced faithfully.

Every flow makes the same TinyDB calls, in the same order, as the audited code, bugs included;
each docstring cites the audit finding it reproduces (DB-001 ... API-013). It claims no
guarantee: the harness is expected to find every one of these bugs here. Do not fix them.

Common to all flows (DB-007): one ``TinyDB`` on a JSON file with the default ``JSONStorage``, no
``CachingMiddleware``, no lock of any kind. Every call re-reads the whole file and every write
rewrites it, so two writers (threads or processes) lose each other's writes, and a crash in the
middle of a write leaves a truncated, unreadable file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tinydb import Query
from tinydb.table import Document

from adapters.tinydb_common import (
    IMPROVEMENTS,
    JOBS,
    RESUMES,
    improvement_doc,
    job_doc,
    open_db,
    read_snapshot,
    resume_doc,
    resume_updates,
    sorted_resumes,
    tailored_doc,
    truncate_all,
)
from harness.contract import (
    Confirmation,
    Conflict,
    Improvement,
    Job,
    NotFound,
    Resume,
    Snapshot,
    StorageAdapter,
    improvement_from_dict,
    job_from_dict,
    new_id,
    now_iso,
    resume_from_dict,
)
from harness.faults import FaultController


def _built_resume(resume_id: str, fields: Mapping[str, Any]) -> Resume:
    """What the flow returns when ``update_resume`` found nothing: the dict it built (API-001)."""
    return resume_from_dict({"content": "", **fields, "resume_id": resume_id})


class TinyDBLegacyAdapter(StorageAdapter):
    """The audited TinyDB storage layer. Claims nothing."""

    name = "tinydb-legacy"
    guarantees = frozenset()
    fault_points = {
        "upload_resume": ("upload_resume.after_master_check",),
        "set_master": ("set_master.after_unset_old",),
        "record_preview": ("record_preview.after_read",),
        "confirm_improvement": ("confirm_improvement.after_tailored_insert",),
    }

    def __init__(self, location: str, faults: FaultController | None = None) -> None:
        super().__init__(location, faults)
        self.db = open_db(location)
        self.resumes = self.db.table(RESUMES)
        self.jobs = self.db.table(JOBS)
        self.improvements = self.db.table(IMPROVEMENTS)

    # -- lifecycle
    def close(self) -> None:
        self.db.close()

    def reset(self) -> None:
        truncate_all(self.db)

    def snapshot(self) -> Snapshot:
        return read_snapshot(self.db)

    # -- database.py helpers, as audited: a search, the first hit or None
    def _find_resume(self, resume_id: str) -> Document | None:
        result = self.resumes.search(Query().resume_id == resume_id)
        return result[0] if result else None

    def _find_master(self) -> Document | None:
        result = self.resumes.search(Query().is_master == True)  # noqa: E712 - TinyDB query
        return result[0] if result else None

    def _find_job(self, job_id: str) -> Document | None:
        result = self.jobs.search(Query().job_id == job_id)
        return result[0] if result else None

    def _update_resume(self, resume_id: str, updates: dict[str, Any]) -> Document | None:
        """DB-002: ``update`` on a missing id matches nothing and nobody checks; returns None."""
        self.resumes.update(updates, Query().resume_id == resume_id)
        return self._find_resume(resume_id)

    def _update_job(self, job_id: str, updates: dict[str, Any]) -> Document | None:
        self.jobs.update(updates, Query().job_id == job_id)
        return self._find_job(job_id)

    # -- resumes
    def upload_resume(self, content: str, content_type: str = "md", filename: str = "",
                      processed_data: dict[str, Any] | None = None, *,
                      resume_id: str | None = None) -> Resume:
        """API-002: "is there a master?" is a read, the insert is a later write; two concurrent
        first uploads both see none and both become master. DB-008: ``processed_data`` is not
        validated. DB-003: returns the dict it built, never reads it back."""
        is_master = self._find_master() is None
        self.faults.point("upload_resume.after_master_check")
        doc = resume_doc(resume_id or new_id(), content, content_type, filename, processed_data,
                         now_iso(), is_master=is_master)
        self.resumes.insert(doc)
        return resume_from_dict(doc)

    def get_resume(self, resume_id: str) -> Resume:
        """Conformant: the API layer turned None into 404."""
        doc = self._find_resume(resume_id)
        if doc is None:
            raise NotFound(f"resume {resume_id}")
        return resume_from_dict(doc)

    def list_resumes(self) -> list[Resume]:
        return sorted_resumes(self.resumes.all())

    def update_resume(self, resume_id: str, fields: Mapping[str, Any]) -> Resume:
        """API-001 / API-011: a missing id updates nothing, returns None and the flow carries on
        (silent success). DB-008: no validation of ``processed_data``, no check of which fields
        may change."""
        updates = resume_updates(fields, now_iso())
        doc = self._update_resume(resume_id, updates)
        return resume_from_dict(doc) if doc is not None else _built_resume(resume_id, updates)

    def set_master(self, resume_id: str) -> Resume:
        """DB-006: two writes, unset every master then set the new one; a failure or crash in
        between leaves no master, a concurrent upload or set_master in between two. API-001: a
        missing id unsets the old master, sets nothing, and reports success."""
        now = now_iso()
        self.resumes.update({"is_master": False, "updated_at": now},
                            Query().is_master == True)  # noqa: E712 - TinyDB query
        self.faults.point("set_master.after_unset_old")
        doc = self._update_resume(resume_id, {"is_master": True, "updated_at": now})
        if doc is None:
            return _built_resume(resume_id, {"is_master": True, "updated_at": now})
        return resume_from_dict(doc)

    def delete_resume(self, resume_id: str) -> None:
        """API-003: removes the one document only: no new master is promoted. DB-005: its
        improvements and tailored resumes stay behind as orphans. API-001: silent on a missing id."""
        self.resumes.remove(Query().resume_id == resume_id)

    def save_cover_letter(self, resume_id: str, text: str) -> Resume:
        """API-001 / API-011: silent success on a missing id."""
        updates = {"cover_letter": text, "updated_at": now_iso()}
        doc = self._update_resume(resume_id, updates)
        return resume_from_dict(doc) if doc is not None else _built_resume(resume_id, updates)

    def save_outreach_message(self, resume_id: str, text: str) -> Resume:
        """API-001 / API-011: silent success on a missing id."""
        updates = {"outreach_message": text, "updated_at": now_iso()}
        doc = self._update_resume(resume_id, updates)
        return resume_from_dict(doc) if doc is not None else _built_resume(resume_id, updates)

    # -- jobs
    def create_job(self, content: str, job_keywords: list[str] | None = None, *,
                   job_id: str | None = None) -> Job:
        """DB-003: returns the dict it built, never reads it back."""
        doc = job_doc(job_id or new_id(), content, job_keywords, now_iso())
        self.jobs.insert(doc)
        return job_from_dict(doc)

    def get_job(self, job_id: str) -> Job:
        doc = self._find_job(job_id)
        if doc is None:
            raise NotFound(f"job {job_id}")
        return job_from_dict(doc)

    def record_preview(self, job_id: str, prompt_id: str, preview_hash: str) -> Job:
        """DB-001: read-modify-write of the whole ``preview_hashes`` dict with no lock; a
        concurrent preview for another prompt between the read and the write is lost.
        API-001: a missing job updates nothing and the flow reports success."""
        job = self.jobs.get(Query().job_id == job_id)
        self.faults.point("record_preview.after_read")
        hashes = dict(job["preview_hashes"]) if job is not None else {}
        hashes[prompt_id] = preview_hash
        updates = {"preview_hashes": hashes, "updated_at": now_iso()}
        doc = self._update_job(job_id, updates)
        if doc is None:
            return Job(job_id=job_id, content="", preview_hashes=hashes,
                       updated_at=updates["updated_at"])
        return job_from_dict(doc)

    # -- improvements
    def confirm_improvement(self, resume_id: str, job_id: str, prompt_id: str, preview_hash: str,
                            improved_data: dict[str, Any], improvements: list[dict[str, Any]], *,
                            tailored_resume_id: str | None = None,
                            request_id: str | None = None) -> Confirmation:
        """API-010 (conformant): compares the hash recorded for this prompt. API-013 / DB-008:
        ``improved_data`` is not validated. DB-004 / DB-005: the tailored resume and its
        improvement record are two inserts; a failure between them leaves a tailored resume
        with no improvement and nothing is undone. DB-003: returns the dicts it built."""
        original = self._find_resume(resume_id)
        if original is None:
            raise NotFound(f"resume {resume_id}")
        job = self._find_job(job_id)
        if job is None:
            raise NotFound(f"job {job_id}")
        if job.get("preview_hashes", {}).get(prompt_id) != preview_hash:
            raise Conflict(f"preview hash for prompt {prompt_id} does not match")
        now = now_iso()
        tailored = tailored_doc(original, tailored_resume_id or new_id(), improved_data, now)
        self.resumes.insert(tailored)
        self.faults.point("confirm_improvement.after_tailored_insert")
        record = improvement_doc(request_id or new_id(), resume_id, tailored["resume_id"], job_id,
                                 improvements, now)
        self.improvements.insert(record)
        return Confirmation(resume_from_dict(tailored), improvement_from_dict(record))

    def get_improvement_by_tailored_resume(self, tailored_resume_id: str) -> Improvement:
        result = self.improvements.search(Query().tailored_resume_id == tailored_resume_id)
        if not result:
            raise NotFound(f"improvement for tailored resume {tailored_resume_id}")
        return improvement_from_dict(result[0])
