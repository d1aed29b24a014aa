"""The reference model: an in-memory, obviously correct implementation of the whole contract.

It is the executable version of the :class:`~harness.contract.StorageAdapter` docstrings: the
conformance suite runs against it like against any backend, and scenarios compare backends with
it. Every operation runs under one lock on plain dicts of records; records are deep-copied on the
way in and out, so callers never alias stored state. It has no fault points and ignores its
location (it is not durable: re-opening starts empty).

Where the contract is silent, the model decides (and the correct adapters agree): a given id
that already exists is a ``Conflict``; ``update_resume`` checks the id before the fields;
``improved_data=None`` is ``InvalidData("improved_data")``; ``updated_at`` changes on every
record an operation changes (set_master: the old and the new master, unless already master);
deleting promotes a master only when the master was among the deleted resumes.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import Any

from harness.contract import (
    ATOMIC,
    THREAD_SAFE,
    UPDATABLE_RESUME_FIELDS,
    Confirmation,
    Conflict,
    Improvement,
    InvalidData,
    Job,
    NotFound,
    Resume,
    Snapshot,
    StorageAdapter,
    check_processed_data,
    new_id,
    now_iso,
)
from harness.faults import FaultController

COMPLETED, PENDING = "completed", "pending"


def _status_for(processed_data: Any) -> str:
    return COMPLETED if processed_data is not None else PENDING


def _creation_order(r: Resume) -> tuple[str, str]:
    return (r.created_at, r.resume_id)


class ReferenceModel(StorageAdapter):
    """The contract on three dicts (resumes, jobs, improvements keyed by request_id)."""

    name = "reference-model"
    guarantees = frozenset({ATOMIC, THREAD_SAFE})
    location_kind = "memory"

    def __init__(self, location: str = "", faults: FaultController | None = None) -> None:
        super().__init__(location, faults)
        self._lock = threading.RLock()
        self._state = Snapshot()

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> ReferenceModel:
        """A model holding (a deep copy of) ``snapshot``."""
        model = cls()
        model._state = copy.deepcopy(snapshot)
        return model

    # -- lifecycle
    def reset(self) -> None:
        with self._lock:
            self._state = Snapshot()

    def snapshot(self) -> Snapshot:
        with self._lock:
            return copy.deepcopy(self._state)

    # -- helpers (call with the lock held)
    def _resume(self, resume_id: str) -> Resume:
        try:
            return self._state.resumes[resume_id]
        except KeyError:
            raise NotFound(f"resume {resume_id!r}") from None

    def _job(self, job_id: str) -> Job:
        try:
            return self._state.jobs[job_id]
        except KeyError:
            raise NotFound(f"job {job_id!r}") from None

    def _new_resume_id(self, resume_id: str | None) -> str:
        resume_id = new_id() if resume_id is None else resume_id
        if resume_id in self._state.resumes:
            raise Conflict(f"resume {resume_id!r} already exists")
        return resume_id

    # -- resumes
    def upload_resume(self, content: str, content_type: str = "md", filename: str = "",
                      processed_data: dict[str, Any] | None = None, *,
                      resume_id: str | None = None) -> Resume:
        check_processed_data(processed_data)
        with self._lock:
            resume_id = self._new_resume_id(resume_id)
            now = now_iso()
            resume = Resume(
                resume_id=resume_id, content=content, content_type=content_type, filename=filename,
                is_master=not self._state.masters(), parent_id=None,
                processed_data=copy.deepcopy(processed_data),
                processing_status=_status_for(processed_data), created_at=now, updated_at=now)
            self._state.resumes[resume_id] = resume
            return copy.deepcopy(resume)

    def get_resume(self, resume_id: str) -> Resume:
        with self._lock:
            return copy.deepcopy(self._resume(resume_id))

    def list_resumes(self) -> list[Resume]:
        with self._lock:
            return copy.deepcopy(sorted(self._state.resumes.values(), key=_creation_order))

    def update_resume(self, resume_id: str, fields: Mapping[str, Any]) -> Resume:
        with self._lock:
            resume = self._resume(resume_id)
            for key in sorted(fields):
                if key not in UPDATABLE_RESUME_FIELDS:
                    raise InvalidData(key, "not a field update_resume may change")
            if "processed_data" in fields:
                check_processed_data(fields["processed_data"])
            for key, value in fields.items():
                setattr(resume, key, copy.deepcopy(value))
            if "processed_data" in fields and "processing_status" not in fields:
                resume.processing_status = _status_for(resume.processed_data)
            resume.updated_at = now_iso()
            return copy.deepcopy(resume)

    def set_master(self, resume_id: str) -> Resume:
        with self._lock:
            target = self._resume(resume_id)
            now = now_iso()
            for resume in self._state.resumes.values():
                is_master = resume is target
                if resume.is_master != is_master:
                    resume.is_master = is_master
                    resume.updated_at = now
            return copy.deepcopy(target)

    def delete_resume(self, resume_id: str) -> None:
        with self._lock:
            self._resume(resume_id)
            doomed = {resume_id}
            grew = True
            while grew:  # tailored descendants, to any depth
                children = {r.resume_id for r in self._state.resumes.values()
                            if r.parent_id in doomed} - doomed
                doomed |= children
                grew = bool(children)
            lost_master = any(self._state.resumes[i].is_master for i in doomed)
            for rid in doomed:
                del self._state.resumes[rid]
            for request_id, imp in list(self._state.improvements.items()):
                if imp.original_resume_id in doomed or imp.tailored_resume_id in doomed:
                    del self._state.improvements[request_id]
            if lost_master and not self._state.masters():
                candidates = [r for r in self._state.resumes.values() if not r.is_tailored]
                if candidates:
                    heir = min(candidates, key=_creation_order)
                    heir.is_master = True
                    heir.updated_at = now_iso()

    def _set_text(self, resume_id: str, field_name: str, text: str) -> Resume:
        with self._lock:
            resume = self._resume(resume_id)
            setattr(resume, field_name, text)
            resume.updated_at = now_iso()
            return copy.deepcopy(resume)

    def save_cover_letter(self, resume_id: str, text: str) -> Resume:
        return self._set_text(resume_id, "cover_letter", text)

    def save_outreach_message(self, resume_id: str, text: str) -> Resume:
        return self._set_text(resume_id, "outreach_message", text)

    # -- jobs
    def create_job(self, content: str, job_keywords: list[str] | None = None, *,
                   job_id: str | None = None) -> Job:
        with self._lock:
            job_id = new_id() if job_id is None else job_id
            if job_id in self._state.jobs:
                raise Conflict(f"job {job_id!r} already exists")
            now = now_iso()
            job = Job(job_id=job_id, content=content, preview_hashes={},
                      job_keywords=list(copy.deepcopy(job_keywords or [])),
                      created_at=now, updated_at=now)
            self._state.jobs[job_id] = job
            return copy.deepcopy(job)

    def get_job(self, job_id: str) -> Job:
        with self._lock:
            return copy.deepcopy(self._job(job_id))

    def record_preview(self, job_id: str, prompt_id: str, preview_hash: str) -> Job:
        with self._lock:
            job = self._job(job_id)
            job.preview_hashes[prompt_id] = preview_hash
            job.updated_at = now_iso()
            return copy.deepcopy(job)

    # -- improvements
    def confirm_improvement(self, resume_id: str, job_id: str, prompt_id: str, preview_hash: str,
                            improved_data: dict[str, Any], improvements: list[dict[str, Any]], *,
                            tailored_resume_id: str | None = None,
                            request_id: str | None = None) -> Confirmation:
        with self._lock:
            original = self._resume(resume_id)
            job = self._job(job_id)
            if job.preview_hashes.get(prompt_id) != preview_hash:
                raise Conflict(f"preview hash for job {job_id!r} prompt {prompt_id!r} does not match")
            if improved_data is None:
                raise InvalidData("improved_data", "required")
            check_processed_data(improved_data, "improved_data")
            tailored_resume_id = self._new_resume_id(tailored_resume_id)
            request_id = new_id() if request_id is None else request_id
            if request_id in self._state.improvements:
                raise Conflict(f"improvement {request_id!r} already exists")
            now = now_iso()
            tailored = Resume(
                resume_id=tailored_resume_id, content=original.content,
                content_type=original.content_type, filename=original.filename, is_master=False,
                parent_id=resume_id, processed_data=copy.deepcopy(improved_data),
                processing_status=COMPLETED, created_at=now, updated_at=now)
            improvement = Improvement(
                request_id=request_id, original_resume_id=resume_id,
                tailored_resume_id=tailored_resume_id, job_id=job_id,
                improvements=copy.deepcopy(list(improvements)), created_at=now)
            self._state.resumes[tailored_resume_id] = tailored
            self._state.improvements[request_id] = improvement
            return Confirmation(copy.deepcopy(tailored), copy.deepcopy(improvement))

    def get_improvement_by_tailored_resume(self, tailored_resume_id: str) -> Improvement:
        with self._lock:
            for imp in self._state.improvements.values():
                if imp.tailored_resume_id == tailored_resume_id:
                    return copy.deepcopy(imp)
            raise NotFound(f"no improvement for tailored resume {tailored_resume_id!r}")

