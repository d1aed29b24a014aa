"""What the two TinyDB adapters truly share: the JSON file, the record documents, the snapshot.

Both adapters store the same file format (``<location>/database.json``, tables ``resumes``,
``jobs`` and ``improvements``, TinyDB's default ``JSONStorage``: every operation re-reads the
whole file and every write rewrites it, flushes and fsyncs). Nothing here locks, validates or
compensates; that is the difference between the two adapters and lives in each of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from tinydb import TinyDB
from tinydb.storages import JSONStorage

from harness.contract import (
    Resume,
    Snapshot,
    improvement_from_dict,
    job_from_dict,
    resume_from_dict,
)

DB_FILENAME = "database.json"
RESUMES, JOBS, IMPROVEMENTS = "resumes", "jobs", "improvements"
TABLES: tuple[str, ...] = (RESUMES, JOBS, IMPROVEMENTS)
#: The business id of the documents of each table (TinyDB's own doc ids are internal).
ID_KEYS: dict[str, str] = {RESUMES: "resume_id", JOBS: "job_id", IMPROVEMENTS: "request_id"}


def db_path(location: str) -> str:
    return os.path.join(location, DB_FILENAME)


def open_db(location: str, db_class: type[TinyDB] = TinyDB) -> TinyDB:
    """Open (creating if needed) the TinyDB JSON file in the ``location`` directory."""
    os.makedirs(location, exist_ok=True)
    return db_class(db_path(location), storage=JSONStorage, encoding="utf-8")


def status_for(processed_data: Any) -> str:
    return "completed" if processed_data is not None else "pending"


def resume_updates(fields: Mapping[str, Any], now: str) -> dict[str, Any]:
    """The fields an update writes: the given ones, the derived status, a fresh ``updated_at``."""
    updates = dict(fields)
    if "processed_data" in updates and "processing_status" not in updates:
        updates["processing_status"] = status_for(updates["processed_data"])
    updates["updated_at"] = now
    return updates


def resume_doc(resume_id: str, content: str, content_type: str, filename: str,
               processed_data: Any, now: str, *, is_master: bool,
               parent_id: str | None = None) -> dict[str, Any]:
    return {
        "resume_id": resume_id, "content": content, "content_type": content_type,
        "filename": filename, "is_master": is_master, "parent_id": parent_id,
        "processed_data": processed_data, "processing_status": status_for(processed_data),
        "cover_letter": None, "outreach_message": None, "created_at": now, "updated_at": now,
    }


def tailored_doc(original: Mapping[str, Any], tailored_resume_id: str, improved_data: Any,
                 now: str) -> dict[str, Any]:
    """The tailored resume a confirm creates: content copied from ``original``, not master."""
    return resume_doc(tailored_resume_id, original["content"], original.get("content_type", "md"),
                      original.get("filename", ""), improved_data, now, is_master=False,
                      parent_id=original["resume_id"])


def job_doc(job_id: str, content: str, job_keywords: Iterable[str] | None, now: str) -> dict[str, Any]:
    return {"job_id": job_id, "content": content, "preview_hashes": {},
            "job_keywords": list(job_keywords or []), "created_at": now, "updated_at": now}


def improvement_doc(request_id: str, original_resume_id: str, tailored_resume_id: str, job_id: str,
                    improvements: Iterable[Any], now: str) -> dict[str, Any]:
    return {"request_id": request_id, "original_resume_id": original_resume_id,
            "tailored_resume_id": tailored_resume_id, "job_id": job_id,
            "improvements": list(improvements), "created_at": now}


def sorted_resumes(docs: Iterable[Mapping[str, Any]]) -> list[Resume]:
    """Resumes ordered by ``(created_at, resume_id)``, as ``list_resumes`` returns them."""
    return sorted((resume_from_dict(d) for d in docs), key=lambda r: (r.created_at, r.resume_id))


def read_snapshot(db: TinyDB) -> Snapshot:
    """Every record of the three tables from ONE read of the file.

    A file that is not valid JSON (torn write, two writers) raises here: the harness'
    ``store-readable`` invariant must see the store as unreadable.
    """
    data = db.storage.read() or {}
    snap = Snapshot()
    for doc in data.get(RESUMES, {}).values():
        snap.resumes[doc["resume_id"]] = resume_from_dict(doc)
    for doc in data.get(JOBS, {}).values():
        snap.jobs[doc["job_id"]] = job_from_dict(doc)
    for doc in data.get(IMPROVEMENTS, {}).values():
        snap.improvements[doc["request_id"]] = improvement_from_dict(doc)
    return snap


def truncate_all(db: TinyDB) -> None:
    for name in TABLES:
        db.table(name).truncate()
