"""``tinydb-locked``: the audit's proposed fixes, on the same TinyDB JSON file as ``tinydb-legacy``.

The fixes: one re-entrant lock per store path around every operation (plus a per-job lock
around the preview read-modify-write), compensating rollback of multi-step flows, read-back of
every record written, full ``ResumeData`` validation, ``NotFound`` for every missing id, and a
delete that cascades and promotes a new master.

What it does NOT fix, by design: it is still several TinyDB writes per flow, with named fault
points between them. The locks are in-process only (not ``process-safe``: two processes on one
file still lose writes or corrupt it) and compensation runs only while the process lives (not
``crash-safe``: a crash between steps leaves the broken intermediate state, and a torn write an
unreadable file).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from tinydb import Query, TinyDB
from tinydb.table import Document, Table

from adapters.tinydb_common import (
    ID_KEYS,
    IMPROVEMENTS,
    JOBS,
    RESUMES,
    db_path,
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
from adapters.tinydb_rollback import Rollback, normalized
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
    StorageError,
    check_processed_data,
    improvement_from_dict,
    job_from_dict,
    new_id,
    now_iso,
    resume_from_dict,
)
from harness.faults import FaultController

# --------------------------------------------------------------------------- in-process locks

_registry_lock = threading.Lock()
_locks: dict[tuple[str, ...], threading.RLock] = {}


def _lock_for(*key: str) -> threading.RLock:
    """The one lock of ``key`` in this process, shared by every adapter instance."""
    with _registry_lock:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = threading.RLock()
        return lock


def _forget_locks_in_child() -> None:
    # A forked child must not inherit a lock some other parent thread was holding.
    global _registry_lock
    _registry_lock = threading.Lock()
    _locks.clear()


os.register_at_fork(after_in_child=_forget_locks_in_child)


class _FreshTable(Table):
    """A table that trusts nothing it cached: another adapter instance on the same file may have
    written since (no query cache, next doc id recomputed from the file on every insert)."""

    default_query_cache_capacity = 0

    def _get_next_id(self) -> int:
        self._next_id = None
        return super()._get_next_id()


class _FreshTinyDB(TinyDB):
    table_class = _FreshTable


def _is_master() -> Any:
    return Query().is_master == True  # noqa: E712 - TinyDB query


# --------------------------------------------------------------------------- the adapter


class TinyDBLockedAdapter(StorageAdapter):
    """The audited TinyDB layer with the audit's fixes: atomic and thread-safe in one process."""

    name = "tinydb-locked"
    guarantees = frozenset({ATOMIC, THREAD_SAFE})
    fault_points = {
        "upload_resume": ("upload_resume.after_master_check", "upload_resume.after_insert"),
        "update_resume": ("update_resume.after_update",),
        "set_master": ("set_master.after_unset_old", "set_master.after_set_new"),
        "delete_resume": ("delete_resume.after_remove_improvements", "delete_resume.after_cascade",
                          "delete_resume.after_remove", "delete_resume.after_promote"),
        "save_cover_letter": ("save_cover_letter.after_update",),
        "save_outreach_message": ("save_outreach_message.after_update",),
        "create_job": ("create_job.after_insert",),
        "record_preview": ("record_preview.after_read", "record_preview.after_update"),
        "confirm_improvement": ("confirm_improvement.after_tailored_insert",
                                "confirm_improvement.after_improvement_insert"),
    }

    def __init__(self, location: str, faults: FaultController | None = None) -> None:
        super().__init__(location, faults)
        self._key = os.path.realpath(db_path(location))
        with self._serial():
            self.db = open_db(location, _FreshTinyDB)

    # -- plumbing
    def _serial(self) -> threading.RLock:
        return _lock_for(self._key)

    def _table(self, name: str) -> Table:
        return self.db.table(name)

    @contextmanager
    def _unit(self) -> Iterator[Rollback]:
        """One unit of work: if any step raises, undo every write made so far, then re-raise.

        Only ``Exception`` triggers the rollback: a simulated crash (a ``BaseException``) must
        leave the intermediate state, as a real crash would.
        """
        rollback = Rollback(self.db)
        try:
            yield rollback
        except Exception as exc:
            failure = rollback.restore()
            if failure is not None:
                raise StorageError(f"{exc}; rollback incomplete: {failure}") from exc
            raise

    def _doc(self, table: str, key: str) -> Document | None:
        return self._table(table).get(Query()[ID_KEYS[table]] == key)

    def _resume_doc(self, resume_id: str) -> Document:
        doc = self._doc(RESUMES, resume_id)
        if doc is None:
            raise NotFound(f"resume {resume_id}")
        return doc

    def _job_doc(self, job_id: str) -> Document:
        doc = self._doc(JOBS, job_id)
        if doc is None:
            raise NotFound(f"job {job_id}")
        return doc

    def _insert(self, rollback: Rollback, table: str, doc: dict[str, Any]) -> dict[str, Any]:
        """Insert ``doc``, then read it back: a mismatch is a ``StorageError`` (DB-002/003)."""
        key = doc[ID_KEYS[table]]
        rollback.remember(table, key, None)
        self._table(table).insert(doc)
        stored = self._doc(table, key)
        if stored is None or dict(stored) != normalized(doc):
            raise StorageError(f"{table} {key}: read-back differs from what was written")
        return dict(stored)

    def _update(self, rollback: Rollback, table: str, cond: Any, fields: Mapping[str, Any]) -> None:
        t = self._table(table)
        for doc in t.search(cond):
            rollback.remember(table, doc[ID_KEYS[table]], doc)
        t.update(dict(fields), cond)

    def _remove(self, rollback: Rollback, table: str, cond: Any) -> None:
        t = self._table(table)
        for doc in t.search(cond):
            rollback.remember(table, doc[ID_KEYS[table]], doc)
        t.remove(cond)

    def _absent(self, table: str, key: str) -> None:
        if self._doc(table, key) is not None:
            raise Conflict(f"{table} {key} already exists")

    # -- lifecycle
    def close(self) -> None:
        with self._serial():
            self.db.close()

    def reset(self) -> None:
        with self._serial():
            truncate_all(self.db)

    def snapshot(self) -> Snapshot:
        with self._serial():
            return read_snapshot(self.db)

    # -- resumes
    def upload_resume(self, content: str, content_type: str = "md", filename: str = "",
                      processed_data: dict[str, Any] | None = None, *,
                      resume_id: str | None = None) -> Resume:
        check_processed_data(processed_data)
        resume_id = resume_id or new_id()
        with self._serial(), self._unit() as rollback:
            self._absent(RESUMES, resume_id)
            is_master = not self._table(RESUMES).contains(_is_master())
            self.faults.point("upload_resume.after_master_check")
            doc = self._insert(rollback, RESUMES, resume_doc(
                resume_id, content, content_type, filename, processed_data, now_iso(),
                is_master=is_master))
            self.faults.point("upload_resume.after_insert")
            return resume_from_dict(doc)

    def get_resume(self, resume_id: str) -> Resume:
        with self._serial():
            return resume_from_dict(self._resume_doc(resume_id))

    def list_resumes(self) -> list[Resume]:
        with self._serial():
            return sorted_resumes(self._table(RESUMES).all())

    def _update_resume(self, op: str, resume_id: str, fields: Mapping[str, Any]) -> Resume:
        with self._serial(), self._unit() as rollback:
            self._resume_doc(resume_id)
            self._update(rollback, RESUMES, Query().resume_id == resume_id,
                         resume_updates(fields, now_iso()))
            self.faults.point(f"{op}.after_update")
            return resume_from_dict(self._resume_doc(resume_id))

    def update_resume(self, resume_id: str, fields: Mapping[str, Any]) -> Resume:
        with self._serial():
            self._resume_doc(resume_id)
            for name in sorted(fields):
                if name not in UPDATABLE_RESUME_FIELDS:
                    raise InvalidData(name, "this field may not be changed by update_resume")
            if "processed_data" in fields:
                check_processed_data(fields["processed_data"])
            return self._update_resume("update_resume", resume_id, fields)

    def set_master(self, resume_id: str) -> Resume:
        with self._serial(), self._unit() as rollback:
            self._resume_doc(resume_id)
            now, target = now_iso(), Query().resume_id == resume_id
            # Two writes, as audited, but each touches only what changes (updated_at included).
            self._update(rollback, RESUMES, _is_master() & ~target,
                         {"is_master": False, "updated_at": now})
            self.faults.point("set_master.after_unset_old")
            self._update(rollback, RESUMES, target & ~_is_master(),
                         {"is_master": True, "updated_at": now})
            self.faults.point("set_master.after_set_new")
            return resume_from_dict(self._resume_doc(resume_id))

    def delete_resume(self, resume_id: str) -> None:
        with self._serial(), self._unit() as rollback:
            self._resume_doc(resume_id)
            everything = self._table(RESUMES).all()
            doomed = _with_descendants(resume_id, everything)
            descendants = sorted(doomed - {resume_id})
            q = Query()
            self._remove(rollback, IMPROVEMENTS, q.original_resume_id.one_of(sorted(doomed))
                         | q.tailored_resume_id.one_of(sorted(doomed)))
            self.faults.point("delete_resume.after_remove_improvements")
            self._remove(rollback, RESUMES, q.resume_id.one_of(descendants))
            self.faults.point("delete_resume.after_cascade")
            self._remove(rollback, RESUMES, q.resume_id == resume_id)
            self.faults.point("delete_resume.after_remove")
            remaining = [d for d in everything if d["resume_id"] not in doomed]
            lost_master = any(d.get("is_master") for d in everything if d["resume_id"] in doomed)
            if not lost_master or any(d.get("is_master") for d in remaining):
                return
            candidates = sorted((d for d in remaining if d.get("parent_id") is None),
                                key=lambda d: (d["created_at"], d["resume_id"]))
            if candidates:
                self._update(rollback, RESUMES, q.resume_id == candidates[0]["resume_id"],
                             {"is_master": True, "updated_at": now_iso()})
                self.faults.point("delete_resume.after_promote")

    def save_cover_letter(self, resume_id: str, text: str) -> Resume:
        return self._update_resume("save_cover_letter", resume_id, {"cover_letter": text})

    def save_outreach_message(self, resume_id: str, text: str) -> Resume:
        return self._update_resume("save_outreach_message", resume_id, {"outreach_message": text})

    # -- jobs
    def create_job(self, content: str, job_keywords: list[str] | None = None, *,
                   job_id: str | None = None) -> Job:
        job_id = job_id or new_id()
        with self._serial(), self._unit() as rollback:
            self._absent(JOBS, job_id)
            doc = self._insert(rollback, JOBS, job_doc(job_id, content, job_keywords, now_iso()))
            self.faults.point("create_job.after_insert")
            return job_from_dict(doc)

    def get_job(self, job_id: str) -> Job:
        with self._serial():
            return job_from_dict(self._job_doc(job_id))

    def record_preview(self, job_id: str, prompt_id: str, preview_hash: str) -> Job:
        job_lock = _lock_for(self._key, "job", job_id)
        with self._serial(), job_lock, self._unit() as rollback:
            job = self._job_doc(job_id)
            self.faults.point("record_preview.after_read")
            hashes = dict(job["preview_hashes"])
            hashes[prompt_id] = preview_hash
            self._update(rollback, JOBS, Query().job_id == job_id,
                         {"preview_hashes": hashes, "updated_at": now_iso()})
            self.faults.point("record_preview.after_update")
            return job_from_dict(self._job_doc(job_id))

    # -- improvements
    def confirm_improvement(self, resume_id: str, job_id: str, prompt_id: str, preview_hash: str,
                            improved_data: dict[str, Any], improvements: list[dict[str, Any]], *,
                            tailored_resume_id: str | None = None,
                            request_id: str | None = None) -> Confirmation:
        tailored_resume_id = tailored_resume_id or new_id()
        request_id = request_id or new_id()
        with self._serial():
            original = self._resume_doc(resume_id)
            job = self._job_doc(job_id)
            if job["preview_hashes"].get(prompt_id) != preview_hash:
                raise Conflict(f"preview hash for prompt {prompt_id} does not match")
            if improved_data is None:
                raise InvalidData("improved_data", "required")
            check_processed_data(improved_data, "improved_data")
            self._absent(RESUMES, tailored_resume_id)
            self._absent(IMPROVEMENTS, request_id)
            with self._unit() as rollback:
                now = now_iso()
                tailored = self._insert(rollback, RESUMES, tailored_doc(
                    original, tailored_resume_id, improved_data, now))
                self.faults.point("confirm_improvement.after_tailored_insert")
                record = self._insert(rollback, IMPROVEMENTS, improvement_doc(
                    request_id, resume_id, tailored_resume_id, job_id, improvements, now))
                self.faults.point("confirm_improvement.after_improvement_insert")
                return Confirmation(resume_from_dict(tailored), improvement_from_dict(record))

    def get_improvement_by_tailored_resume(self, tailored_resume_id: str) -> Improvement:
        with self._serial():
            doc = self._table(IMPROVEMENTS).get(Query().tailored_resume_id == tailored_resume_id)
            if doc is None:
                raise NotFound(f"improvement for tailored resume {tailored_resume_id}")
            return improvement_from_dict(doc)


def _with_descendants(resume_id: str, docs: list[Document]) -> set[str]:
    """``resume_id`` and every tailored resume derived from it, directly or not."""
    children: dict[str, list[str]] = {}
    for d in docs:
        if d.get("parent_id") is not None:
            children.setdefault(d["parent_id"], []).append(d["resume_id"])
    found, todo = {resume_id}, [resume_id]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found
