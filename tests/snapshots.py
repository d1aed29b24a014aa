"""Small builders for hand-made snapshots and histories (tests of harness/invariants.py).

Records get deterministic defaults that agree with the history builders: ``resume("A")`` holds
the content ``upload("A")`` writes, ``job("J")`` the content ``create_job("J")`` writes, and so on,
so that a good case only spells out what it is about.
"""

from __future__ import annotations

from typing import Any

from builders import improved_resume_data

from harness.contract import Improvement, Job, Resume, Snapshot
from harness.history import FAIL, INFO, OK, PENDING, OpRecord

__all__ = ["FAIL", "INFO", "OK", "PENDING", "Hist", "improvement", "job", "resume", "snap", "tailored"]


def resume(rid: str, *, master: bool = False, parent: str | None = None, **kw: Any) -> Resume:
    """A resume; ``processing_status`` follows ``processed_data`` as the contract says."""
    kw.setdefault("content", f"text of {rid}")
    kw.setdefault("processing_status", "pending" if kw.get("processed_data") is None else "completed")
    return Resume(resume_id=rid, is_master=master, parent_id=parent, **kw)


def tailored(tid: str, parent: str, **kw: Any) -> Resume:
    """A tailored resume as ``Hist.confirm`` creates it (its processed_data is the default
    ``improved_resume_data()``)."""
    kw.setdefault("processed_data", improved_resume_data())
    return resume(tid, parent=parent, **kw)


def job(jid: str, hashes: dict[str, str] | None = None, **kw: Any) -> Job:
    kw.setdefault("content", f"job {jid}")
    return Job(job_id=jid, preview_hashes=dict(hashes or {}), **kw)


def improvement(rq: str, original: str, tailored: str, job_id: str, **kw: Any) -> Improvement:
    kw.setdefault("improvements", [{"section": "summary", "request": rq}])
    return Improvement(request_id=rq, original_resume_id=original, tailored_resume_id=tailored,
                       job_id=job_id, **kw)


def snap(*records: Resume | Job | Improvement) -> Snapshot:
    """A snapshot holding ``records`` (each goes to its table by type)."""
    s = Snapshot()
    for r in records:
        if isinstance(r, Resume):
            s.resumes[r.resume_id] = r
        elif isinstance(r, Job):
            s.jobs[r.job_id] = r
        else:
            s.improvements[r.request_id] = r
    return s


class Hist:
    """A history under construction; ``records`` is what the checks take.

    Every builder takes ``start`` and optional ``end`` (default ``start + 1``; always None for
    ``pending``), ``status`` (default ok), ``result``, ``error_type`` and ``process``, and returns
    the :class:`OpRecord` it appended (indexes count from 0 in append order).
    """

    def __init__(self) -> None:
        self.records: list[OpRecord] = []

    def add(self, op: str, start: float, end: float | None = None, status: str = OK, *,
            result: Any = None, error_type: str | None = None, process: str = "p0",
            **args: Any) -> OpRecord:
        if status == PENDING:
            end = None
        elif end is None:
            end = start + 1
        if error_type is None and status == FAIL:
            error_type = "NotFound"
        if error_type is None and status == INFO:
            error_type = "StorageError"
        rec = OpRecord(index=len(self.records), process=process, op=op, args=args, start=start,
                       status=status, end=end, result=result, error_type=error_type,
                       error=f"{error_type}: injected" if error_type else None)
        self.records.append(rec)
        return rec

    # -- shortcuts with the defaults the record builders use
    def upload(self, rid: str, start: float, end: float | None = None, status: str = OK,
               **kw: Any) -> OpRecord:
        kw.setdefault("content", f"text of {rid}")
        return self.add("upload_resume", start, end, status, resume_id=rid, **kw)

    def update(self, rid: str, start: float, end: float | None = None, status: str = OK, *,
               fields: dict[str, Any], **kw: Any) -> OpRecord:
        return self.add("update_resume", start, end, status, resume_id=rid, fields=fields, **kw)

    def delete(self, rid: str, start: float, end: float | None = None, status: str = OK,
               **kw: Any) -> OpRecord:
        return self.add("delete_resume", start, end, status, resume_id=rid, **kw)

    def create_job(self, jid: str, start: float, end: float | None = None, status: str = OK,
                   **kw: Any) -> OpRecord:
        kw.setdefault("content", f"job {jid}")
        kw.setdefault("job_keywords", [])
        return self.add("create_job", start, end, status, job_id=jid, **kw)

    def preview(self, jid: str, prompt: str, value: str, start: float, end: float | None = None,
                status: str = OK, **kw: Any) -> OpRecord:
        return self.add("record_preview", start, end, status, job_id=jid, prompt_id=prompt,
                        preview_hash=value, **kw)

    def confirm(self, rid: str, jid: str, tid: str, rq: str, start: float, end: float | None = None,
                status: str = OK, *, prompt: str = "p1", value: str = "h1",
                improved_data: Any = None, **kw: Any) -> OpRecord:
        kw.setdefault("improvements", [{"section": "summary", "request": rq}])
        if improved_data is None:
            improved_data = improved_resume_data()
        return self.add("confirm_improvement", start, end, status, resume_id=rid, job_id=jid,
                        prompt_id=prompt, preview_hash=value, improved_data=improved_data,
                        tailored_resume_id=tid, request_id=rq, **kw)
