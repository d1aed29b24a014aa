"""The invariants (DESIGN section 5): pure functions over a snapshot plus the history.

Each check takes the :class:`Snapshot` read from the store and the operation history and returns
:class:`Finding`s naming the offending ids and history entries. No I/O happens here.

Checks are real-time aware so that they hold for concurrent histories: a write can be the last
one applied to a field only if no acknowledged write to that field started after it completed.
``fail`` operations are taken as not applied; ``info`` and ``pending`` ones may have applied.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.contract import UPDATABLE_RESUME_FIELDS, WRITE_OPERATIONS, Snapshot
from harness.history import OK, OpRecord
from harness.schema import validate_resume_data

ONE_MASTER = "one-master"
NO_ORPHAN_IMPROVEMENTS = "no-orphan-improvements"
NO_LOST_PREVIEW_HASHES = "no-lost-preview-hashes"
ACKED_WRITES_DURABLE = "acked-writes-durable"
HONEST_RESULTS = "honest-results"
STORE_READABLE = "store-readable"
VALID_DATA = "valid-data"
REFERENTIAL_INTEGRITY = "referential-integrity"
#: Not one of the eight snapshot invariants: reported by the race explorer when every racing
#: thread is blocked inside the store.
NO_DEADLOCK = "no-deadlock"


@dataclass
class Finding:
    """One broken invariant: which, a one-line message, the offending record ids and ops."""

    invariant: str
    message: str
    ids: list[str] = field(default_factory=list)
    ops: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def digest(value: Any) -> str:
    """SHA-256 of the canonical JSON of ``value``."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- history helpers

RESUME_ID_OPS = ("get_resume", "update_resume", "set_master", "delete_resume", "save_cover_letter",
                 "save_outreach_message")
MASTER_OPS = ("upload_resume", "set_master", "delete_resume")


def _applied(rec: OpRecord) -> bool:
    return rec.may_have_applied


def _maybe_after(other: OpRecord, rec: OpRecord) -> bool:
    """``other`` may take effect after ``rec`` (it did not finish before ``rec`` started)."""
    return other.index != rec.index and not other.finished_before(rec)


def _tailored_parents(history: Sequence[OpRecord]) -> dict[str, str]:
    return {r.args["tailored_resume_id"]: r.args["resume_id"] for r in history
            if r.op == "confirm_improvement" and r.args.get("tailored_resume_id") and _applied(r)}


def _ancestry(resume_id: str, parents: Mapping[str, str]) -> list[str]:
    chain, seen = [resume_id], {resume_id}
    while chain[-1] in parents and parents[chain[-1]] not in seen:
        chain.append(parents[chain[-1]])
        seen.add(chain[-1])
    return chain


def _group_applied(history: Sequence[OpRecord],
                   key: Callable[[OpRecord], str | None]) -> dict[str, list[OpRecord]]:
    """Ops that may have applied, grouped by ``key(op)`` (ops whose key is None are left out)."""
    out: dict[str, list[OpRecord]] = {}
    for r in history:
        k = key(r)
        if k and _applied(r):
            out.setdefault(k, []).append(r)
    return out


def _created_resume(r: OpRecord) -> str | None:
    if r.op == "upload_resume":
        return r.args.get("resume_id") or (r.result or {}).get("resume_id")
    if r.op == "confirm_improvement":
        return r.args.get("tailored_resume_id")
    return None


def _created_job(r: OpRecord) -> str | None:
    return (r.args.get("job_id") or (r.result or {}).get("job_id")) if r.op == "create_job" else None


def _deleted_resume(r: OpRecord) -> str | None:
    return r.args.get("resume_id") if r.op == "delete_resume" else None


def _resume_creators(history: Sequence[OpRecord]) -> dict[str, list[OpRecord]]:
    return _group_applied(history, _created_resume)


def _job_creators(history: Sequence[OpRecord]) -> dict[str, list[OpRecord]]:
    return _group_applied(history, _created_job)


def _deletes_by_target(history: Sequence[OpRecord]) -> dict[str, list[OpRecord]]:
    return _group_applied(history, _deleted_resume)


def _deleters(resume_id: str, deletes: Mapping[str, list[OpRecord]],
              parents: Mapping[str, str]) -> list[OpRecord]:
    """Deletes that may have removed ``resume_id`` (itself or an ancestor)."""
    return [d for rid in _ancestry(resume_id, parents) for d in deletes.get(rid, ())]


class _Latest:
    """Answers "does any of these ops, other than ``rec``, possibly take effect after ``rec``?"
    in O(1): keeps the two latest-ending ops (unfinished ones count as ending never)."""

    def __init__(self, ops: Iterable[OpRecord] = ()) -> None:
        self.top: list[tuple[float, int]] = []
        self.first_start = float("inf")
        for o in ops:
            self.add(o)

    def add(self, o: OpRecord) -> None:
        end = o.end if o.end is not None else float("inf")
        self.top = sorted([*self.top, (end, o.index)], reverse=True)[:2]
        self.first_start = min(self.first_start, o.start)

    def any_after(self, rec: OpRecord) -> bool:
        for end, index in self.top:
            if index != rec.index:
                return end >= rec.start
        return False


@dataclass(frozen=True)
class _Write:
    rec: OpRecord
    value: Any


def _final_candidates(writes: list[_Write]) -> list[_Write] | None:
    """The writes that may be the last applied one; None when no write was acknowledged."""
    oks = [w for w in writes if w.rec.status == OK]
    if not oks:
        return None
    last_ok_start = max(o.rec.start for o in oks)
    return [w for w in writes if w.rec.end is None or not last_ok_start > w.rec.end]


# --------------------------------------------------------------------------- the checks


def check_one_master(snapshot: Snapshot, history: Sequence[OpRecord] = ()) -> list[Finding]:
    """Never two masters; exactly one whenever a non-tailored resume exists."""
    masters = snapshot.masters()
    if len(masters) > 1:
        ids = [m.resume_id for m in masters]
        return [Finding(ONE_MASTER, f"{len(masters)} masters: {', '.join(ids)}", ids)]
    originals = sorted(r.resume_id for r in snapshot.resumes.values() if not r.is_tailored)
    if not masters and originals:
        shown = ", ".join(originals[:5]) + (" …" if len(originals) > 5 else "")
        return [Finding(ONE_MASTER, f"no master among {len(originals)} resumes ({shown})",
                        originals)]
    return []


def check_no_orphan_improvements(snapshot: Snapshot,
                                 history: Sequence[OpRecord] = ()) -> list[Finding]:
    """Every improvement points at existing resumes and job; every tailored resume has exactly
    one improvement."""
    out: list[Finding] = []
    by_tailored: dict[str, list[str]] = {}
    for imp in sorted(snapshot.improvements.values(), key=lambda i: i.request_id):
        by_tailored.setdefault(imp.tailored_resume_id, []).append(imp.request_id)
        missing = [f"{what} {ref}" for what, ref, table in (
            ("original resume", imp.original_resume_id, snapshot.resumes),
            ("tailored resume", imp.tailored_resume_id, snapshot.resumes),
            ("job", imp.job_id, snapshot.jobs)) if ref not in table]
        if missing:
            out.append(Finding(NO_ORPHAN_IMPROVEMENTS,
                               f"improvement {imp.request_id} points at missing {', '.join(missing)}",
                               [imp.request_id]))
    for r in sorted(snapshot.resumes.values(), key=lambda r: r.resume_id):
        if not r.is_tailored:
            continue
        n = len(by_tailored.get(r.resume_id, []))
        if n != 1:
            what = "no improvement record" if n == 0 else f"{n} improvement records"
            out.append(Finding(NO_ORPHAN_IMPROVEMENTS,
                               f"tailored resume {r.resume_id} has {what}",
                               [r.resume_id, *by_tailored.get(r.resume_id, [])]))
    return out


def check_referential_integrity(snapshot: Snapshot,
                                history: Sequence[OpRecord] = ()) -> list[Finding]:
    """``parent_id`` and every id reference exist, and an improvement's original resume is its
    tailored resume's parent."""
    out: list[Finding] = []
    for r in sorted(snapshot.resumes.values(), key=lambda r: r.resume_id):
        if r.parent_id is not None and r.parent_id not in snapshot.resumes:
            out.append(Finding(REFERENTIAL_INTEGRITY,
                               f"resume {r.resume_id} has missing parent {r.parent_id}",
                               [r.resume_id, r.parent_id]))
    for imp in sorted(snapshot.improvements.values(), key=lambda i: i.request_id):
        tailored = snapshot.resumes.get(imp.tailored_resume_id)
        if tailored is not None and tailored.parent_id != imp.original_resume_id:
            out.append(Finding(REFERENTIAL_INTEGRITY,
                               f"improvement {imp.request_id}: original {imp.original_resume_id} "
                               f"is not the parent ({tailored.parent_id}) of {tailored.resume_id}",
                               [imp.request_id, tailored.resume_id]))
        for what, ref, table in (("original resume", imp.original_resume_id, snapshot.resumes),
                                 ("tailored resume", imp.tailored_resume_id, snapshot.resumes),
                                 ("job", imp.job_id, snapshot.jobs)):
            if ref not in table:
                out.append(Finding(REFERENTIAL_INTEGRITY,
                                   f"improvement {imp.request_id} references missing {what} {ref}",
                                   [imp.request_id, ref]))
    return out


#: Resume fields every creation sets to None.
_CREATED_EMPTY = ("cover_letter", "outreach_message")


def _resume_field_writes(history: Sequence[OpRecord]) -> dict[tuple[str, str, str], list[_Write]]:
    writes: dict[tuple[str, str, str], list[_Write]] = {}

    def add(table: str, rid: str | None, fld: str, value: Any, rec: OpRecord) -> None:
        if rid:
            writes.setdefault((table, rid, fld), []).append(_Write(rec, value))

    for r in history:
        if not _applied(r):
            continue
        a = r.args
        if r.op == "upload_resume":
            rid = a.get("resume_id") or (r.result or {}).get("resume_id")
            add("resume", rid, "content", a.get("content"), r)
            add("resume", rid, "content_type", a.get("content_type", "md"), r)
            add("resume", rid, "filename", a.get("filename", ""), r)
            add("resume", rid, "processed_data", a.get("processed_data"), r)
            add("resume", rid, "processing_status",
                "completed" if a.get("processed_data") is not None else "pending", r)
            for fld in _CREATED_EMPTY:  # a re-upload after a delete starts them afresh
                add("resume", rid, fld, None, r)
        elif r.op == "update_resume":
            for fld, value in (a.get("fields") or {}).items():
                if fld in UPDATABLE_RESUME_FIELDS:
                    add("resume", a.get("resume_id"), fld, value, r)
            flds = a.get("fields") or {}
            if "processed_data" in flds and "processing_status" not in flds:
                add("resume", a.get("resume_id"), "processing_status",
                    "completed" if flds["processed_data"] is not None else "pending", r)
        elif r.op == "save_cover_letter":
            add("resume", a.get("resume_id"), "cover_letter", a.get("text"), r)
        elif r.op == "save_outreach_message":
            add("resume", a.get("resume_id"), "outreach_message", a.get("text"), r)
        elif r.op == "create_job":
            jid = a.get("job_id") or (r.result or {}).get("job_id")
            add("job", jid, "content", a.get("content"), r)
            add("job", jid, "job_keywords", list(a.get("job_keywords") or []), r)
        elif r.op == "confirm_improvement":
            tid = a.get("tailored_resume_id")
            add("resume", tid, "processed_data", a.get("improved_data"), r)
            add("resume", tid, "parent_id", a.get("resume_id"), r)
            add("resume", tid, "processing_status", "completed", r)
            for fld in _CREATED_EMPTY:
                add("resume", tid, fld, None, r)
            rq = a.get("request_id")
            add("improvement", rq, "original_resume_id", a.get("resume_id"), r)
            add("improvement", rq, "tailored_resume_id", tid, r)
            add("improvement", rq, "job_id", a.get("job_id"), r)
            add("improvement", rq, "improvements", a.get("improvements"), r)
    return writes


def check_acked_writes_durable(snapshot: Snapshot, history: Sequence[OpRecord]) -> list[Finding]:
    """Every acknowledged write reads back identical (SHA-256 of canonical JSON) unless a write
    or delete that may have come after it replaced it."""
    out: list[Finding] = []
    parents = _tailored_parents(history)
    deletes = _deletes_by_target(history)
    resume_creators, job_creators = _resume_creators(history), _job_creators(history)
    imp_targets = {r.args.get("request_id"): r.args for r in history
                   if r.op == "confirm_improvement" and r.args.get("request_id")}
    reported: set[tuple[str, str]] = set()
    for (table, rid, fld), writes in sorted(_resume_field_writes(history).items(),
                                            key=lambda kv: kv[0]):
        if not any(w.rec.status == OK for w in writes):
            continue
        if table == "resume":
            if rid not in resume_creators:
                continue  # never created: honest-results' business
            stored_rec = snapshot.resumes.get(rid)
            deleters = _deleters(rid, deletes, parents)
        elif table == "job":
            if rid not in job_creators:
                continue
            stored_rec = snapshot.jobs.get(rid)
            deleters = []
        else:
            stored_rec = snapshot.improvements.get(rid)
            tgt = imp_targets.get(rid, {})
            deleters = [d for ref in (tgt.get("resume_id"), tgt.get("tailored_resume_id")) if ref
                        for d in _deleters(ref, deletes, parents)]
        acked = [w.rec.index for w in writes if w.rec.status == OK]
        if stored_rec is None:
            if not deleters and (table, rid) not in reported:
                reported.add((table, rid))
                out.append(Finding(ACKED_WRITES_DURABLE,
                                   f"{table} {rid} is gone though its write (op #{acked[0]}) was "
                                   "acknowledged and nothing deleted it", [rid], acked))
            continue
        if deleters:  # present again after a delete: only writes after that delete count
            writes = [w for w in writes
                      if not any(w.rec.end is not None and d.start > w.rec.end for d in deleters)]
        candidates = _final_candidates(writes)
        if candidates is None:
            continue
        stored = getattr(stored_rec, fld)
        if digest(stored) not in {digest(w.value) for w in candidates}:
            out.append(Finding(ACKED_WRITES_DURABLE,
                               f"{table} {rid} field {fld}: stored value (sha256 "
                               f"{digest(stored)[:12]}) is none of the acknowledged or possible "
                               f"last writes (ops {', '.join(f'#{w.rec.index}' for w in candidates)})",
                               [rid], [w.rec.index for w in candidates]))
    children: dict[str, list[str]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    for d in history:
        if d.op != "delete_resume" or d.status != OK:
            continue
        stack, doomed = [d.args.get("resume_id")], []
        while stack:
            x = stack.pop()
            doomed.append(x)
            stack.extend(c for c in children.get(x, []) if c not in doomed)
        for x in doomed:
            if x in snapshot.resumes and not any(_maybe_after(c, d) for c in resume_creators.get(x, [])):
                out.append(Finding(ACKED_WRITES_DURABLE, f"resume {x} is still stored though delete "
                                   f"(op #{d.index}) was acknowledged", [x], [d.index]))
    return out


def check_no_lost_preview_hashes(snapshot: Snapshot,
                                 history: Sequence[OpRecord]) -> list[Finding]:
    """Every acknowledged ``record_preview`` is still stored unless a later one for the same
    (job, prompt) replaced it, and ``confirm_improvement`` accepts it."""
    out: list[Finding] = []
    writes: dict[tuple[str, str], list[_Write]] = {}
    for r in history:
        if r.op == "record_preview" and _applied(r):
            key = (r.args.get("job_id"), r.args.get("prompt_id"))
            writes.setdefault(key, []).append(_Write(r, r.args.get("preview_hash")))
    for (jid, prompt), ws in sorted(writes.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
        candidates = _final_candidates(ws)
        job = snapshot.jobs.get(jid)
        if candidates is None or job is None:
            continue
        stored = job.preview_hashes.get(prompt)
        if stored not in {w.value for w in candidates}:
            acked = [w.rec.index for w in ws if w.rec.status == OK]
            what = "missing" if stored is None else f"{stored!r}"
            last_ok = [w for w in ws if w.rec.status == OK][-1]
            out.append(Finding(NO_LOST_PREVIEW_HASHES,
                               f"job {jid} prompt {prompt}: hash is {what}, acknowledged by "
                               f"op #{acked[-1]} as {last_ok.value!r}", [jid, prompt],
                               [w.rec.index for w in candidates]))
    confirms_by_ref: dict[str, _Latest] = {}
    for o in history:
        if o.op == "confirm_improvement" and _applied(o):
            for ref in {o.args.get("tailored_resume_id"), o.args.get("request_id")} - {None}:
                confirms_by_ref.setdefault(ref, _Latest()).add(o)
    for c in history:
        if c.op != "confirm_improvement" or c.status == OK or c.error_type != "Conflict":
            continue
        if any(_started_before_end(confirms_by_ref.get(ref), c)
               for ref in (c.args.get("tailored_resume_id"), c.args.get("request_id"))):
            continue  # a retry of a confirm that may have applied: Conflict on the ids
        key = (c.args.get("job_id"), c.args.get("prompt_id"))
        ws = writes.get(key, [])
        for w in ws:
            if (w.rec.status == OK and w.value == c.args.get("preview_hash")
                    and w.rec.finished_before(c)
                    and not any(o is not w and not o.rec.finished_before(w.rec)
                                and o.rec.start < (c.end or float("inf")) for o in ws)):
                out.append(Finding(NO_LOST_PREVIEW_HASHES,
                                   f"confirm (op #{c.index}) rejected hash {w.value!r} for job "
                                   f"{key[0]} prompt {key[1]} acknowledged by op #{w.rec.index}",
                                   [str(key[0]), str(key[1])], [w.rec.index, c.index]))
                break
    return out


_TARGETS: dict[str, tuple[tuple[str, str], ...]] = {
    **{op: (("resume", "resume_id"),) for op in RESUME_ID_OPS},
    "get_job": (("job", "job_id"),),
    "record_preview": (("job", "job_id"),),
    "confirm_improvement": (("resume", "resume_id"), ("job", "job_id")),
    "get_improvement_by_tailored_resume": (("resume", "tailored_resume_id"),),
}
_CRASH_OR_STORAGE = {"StorageError", "InjectedFault", "SimulatedCrash"}


def _started_before_end(ops: _Latest | None, rec: OpRecord) -> bool:
    """Some op among ``ops`` (applied ones, so never ``rec`` itself) started before ``rec`` ended."""
    return ops is not None and ops.first_start < (rec.end if rec.end is not None else float("inf"))


def _certainly_missing(kind: str, ident: str, rec: OpRecord, deletes: Mapping[str, list[OpRecord]],
                       creators: Mapping[str, list[OpRecord]],
                       parents: Mapping[str, str]) -> bool:
    made = [c for c in creators.get(ident, []) if c.start < (rec.end or float("inf"))]
    if not made:
        return True
    if kind == "resume":
        gone = [d for d in _deleters(ident, deletes, parents) if d.status == OK and d.finished_before(rec)]
        # deleted before rec, unless created again (ids reused) after that delete
        return any(not any(c.end is None or c.end >= d.start for c in made) for d in gone)
    return False


def _index_by_id(history: Sequence[OpRecord], parents: Mapping[str, str]) -> dict[str, _Latest]:
    """Applied write operations by every id they may change (deletes: every descendant and the
    improvements going with them too)."""
    children: dict[str, list[str]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    requests_of: dict[str, set[str]] = {}
    for r in history:
        if r.op == "confirm_improvement" and r.args.get("request_id"):
            for ref in (r.args.get("resume_id"), r.args.get("tailored_resume_id")):
                requests_of.setdefault(ref, set()).add(r.args["request_id"])
    by_id: dict[str, _Latest] = {}
    for o in history:
        if not _applied(o) or o.op not in WRITE_OPERATIONS:
            continue
        ids = {o.args.get(k) for k in ("resume_id", "tailored_resume_id", "job_id", "request_id")}
        if o.op == "delete_resume":
            stack = [o.args.get("resume_id")]
            while stack:
                for c in children.get(stack.pop(), []):
                    if c not in ids:
                        ids.add(c)
                        stack.append(c)
            ids |= {q for rid in list(ids) for q in requests_of.get(rid, ())}
        for i in ids - {None}:
            by_id.setdefault(i, _Latest()).add(o)
    return by_id


def check_honest_results(snapshot: Snapshot, history: Sequence[OpRecord]) -> list[Finding]:
    """What an operation returns equals what is stored; operations on missing ids raise
    ``NotFound``, never silent success; errors are the contract's."""
    out: list[Finding] = []
    parents = _tailored_parents(history)
    creators = {"resume": _resume_creators(history), "job": _job_creators(history)}
    deletes = _deletes_by_target(history)
    by_id = _index_by_id(history, parents)
    master_ops = _Latest(o for o in history if o.op in MASTER_OPS and _applied(o))
    previews = _Latest(o for o in history if o.op == "record_preview" and _applied(o))
    for rec in history:
        if rec.status == OK:
            for kind, arg in _TARGETS.get(rec.op, ()):
                ident = rec.args.get(arg)
                if ident and _certainly_missing(kind, ident, rec, deletes, creators[kind], parents):
                    out.append(Finding(HONEST_RESULTS,
                                       f"{rec.op} (op #{rec.index}) succeeded on missing {kind} "
                                       f"{ident} instead of raising NotFound", [ident], [rec.index]))
                    break
            else:
                out.extend(_returned_matches_stored(rec, snapshot, by_id, master_ops, previews))
        elif rec.status == "info" and rec.error_type not in _CRASH_OR_STORAGE:
            out.append(Finding(HONEST_RESULTS,
                               f"{rec.op} (op #{rec.index}) raised {rec.error_type} instead of a "
                               f"contract error: {(rec.error or '')[:120]}", [], [rec.index]))
    return out


def _returned_matches_stored(rec: OpRecord, snapshot: Snapshot, by_id: Mapping[str, _Latest],
                             master_ops: _Latest, previews: _Latest) -> list[Finding]:
    returned = rec.result
    if not isinstance(returned, dict):
        return []
    pairs: list[tuple[str, dict[str, Any], Any]] = []
    if rec.op == "confirm_improvement":
        res, imp = returned.get("resume") or {}, returned.get("improvement") or {}
        pairs.append((res.get("resume_id"), res, snapshot.resumes.get(res.get("resume_id"))))
        pairs.append((imp.get("request_id"), imp, snapshot.improvements.get(imp.get("request_id"))))
    elif "resume_id" in returned:
        pairs.append((returned["resume_id"], returned, snapshot.resumes.get(returned["resume_id"])))
    elif "request_id" in returned:
        pairs.append((returned["request_id"], returned, snapshot.improvements.get(returned["request_id"])))
    elif "job_id" in returned and "preview_hashes" in returned:
        pairs.append((returned["job_id"], returned, snapshot.jobs.get(returned["job_id"])))
    out: list[Finding] = []
    for ident, ret, stored in pairs:
        if not ident:
            continue
        latest = by_id.get(ident)
        if latest is not None and latest.any_after(rec):
            continue  # something after it may have changed the record legitimately
        if stored is None:
            out.append(Finding(HONEST_RESULTS, f"{rec.op} (op #{rec.index}) returned {ident} "
                               "but nothing with that id is stored", [ident], [rec.index]))
            continue
        stored_d = stored.to_dict()
        ignore = {"is_master", "updated_at"} if master_ops.any_after(rec) else set()
        if previews.any_after(rec):
            ignore.add("preview_hashes")
        diff = sorted(k for k in stored_d if k not in ignore and k in ret and ret[k] != stored_d[k])
        if diff:
            out.append(Finding(HONEST_RESULTS, f"{rec.op} (op #{rec.index}) returned {ident} with "
                               f"{', '.join(diff)} differing from what is stored", [ident],
                               [rec.index]))
    return out


def _invalid_input(rec: OpRecord) -> str | None:
    a = rec.args
    if rec.op == "upload_resume" and a.get("processed_data") is not None:
        problem = validate_resume_data(a["processed_data"])
        return f"processed_data.{problem[0]}" if problem else None
    if rec.op == "update_resume":
        fields = a.get("fields") or {}
        bad = sorted(set(fields) - UPDATABLE_RESUME_FIELDS)
        if bad:
            return bad[0]
        if fields.get("processed_data") is not None:
            problem = validate_resume_data(fields["processed_data"])
            return f"processed_data.{problem[0]}" if problem else None
    if rec.op == "confirm_improvement":
        problem = validate_resume_data(a.get("improved_data"))
        return f"improved_data.{problem[0]}" if problem else None
    return None


def check_valid_data(snapshot: Snapshot, history: Sequence[OpRecord] = ()) -> list[Finding]:
    """Nothing stored fails ResumeData; bad input gets ``InvalidData`` and changes nothing."""
    out: list[Finding] = []
    for r in sorted(snapshot.resumes.values(), key=lambda r: r.resume_id):
        if r.processed_data is not None:
            problem = validate_resume_data(r.processed_data)
            if problem:
                out.append(Finding(VALID_DATA, f"resume {r.resume_id} stores invalid processed_data "
                                   f"({problem[0] or 'root'}: {problem[1]})", [r.resume_id]))
    for rec in history:
        if rec.status == OK:
            bad = _invalid_input(rec)
            if bad:
                out.append(Finding(VALID_DATA, f"{rec.op} (op #{rec.index}) accepted invalid "
                                   f"{bad} instead of raising InvalidData", [], [rec.index]))
    return out


def check_store_readable(snapshot_error: str | None) -> list[Finding]:
    """After any fault the store opens and ``snapshot()`` succeeds."""
    if snapshot_error is None:
        return []
    return [Finding(STORE_READABLE, f"store cannot be read: {snapshot_error[:200]}")]


# --------------------------------------------------------------------------- the registry

Check = Callable[[Snapshot, Sequence[OpRecord]], list[Finding]]


@dataclass(frozen=True)
class Invariant:
    id: str
    holds_when: str
    audit_refs: tuple[str, ...]
    check: Check | None  # None: store-readable, checked from the snapshot error


INVARIANTS: tuple[Invariant, ...] = (
    Invariant(ONE_MASTER, "never two masters; exactly one whenever a non-tailored resume exists",
              ("DB-006", "API-002", "API-003"), check_one_master),
    Invariant(NO_ORPHAN_IMPROVEMENTS, "every improvement points at existing resumes and job; every "
              "tailored resume has exactly one improvement", ("DB-004", "DB-005"),
              check_no_orphan_improvements),
    Invariant(NO_LOST_PREVIEW_HASHES, "every acknowledged record_preview is still stored unless "
              "replaced by a later one; confirm accepts it", ("DB-001", "API-010"),
              check_no_lost_preview_hashes),
    Invariant(ACKED_WRITES_DURABLE, "every acknowledged write reads back identical (SHA-256 of "
              "canonical JSON), also after re-open", ("DB-002", "DB-003"), check_acked_writes_durable),
    Invariant(HONEST_RESULTS, "what an operation returns equals what is stored; missing ids raise "
              "NotFound", ("DB-003", "API-001", "API-011"), check_honest_results),
    Invariant(STORE_READABLE, "after any fault the store opens and snapshot() succeeds",
              ("DB-007",), None),
    Invariant(VALID_DATA, "nothing stored fails ResumeData; bad input gets InvalidData",
              ("DB-008", "API-013"), check_valid_data),
    Invariant(REFERENTIAL_INTEGRITY, "parent_id and every id reference exist",
              ("DB-005",), check_referential_integrity),
)
INVARIANT_IDS: tuple[str, ...] = tuple(i.id for i in INVARIANTS)


def run_invariants(invariants: Sequence[Invariant], snapshot: Any, history: Iterable[OpRecord], *,
                   snapshot_error: str | None = None,
                   only: Iterable[str] | None = None) -> list[Finding]:
    """Run ``invariants`` (or those of them in ``only``) over a snapshot and the history; every
    family's ``check_all`` is this over its own invariants. With no snapshot, only
    store-readable runs."""
    wanted = set(only) if only is not None else {inv.id for inv in invariants}
    hist = list(history)
    if snapshot is None:
        err = snapshot_error or "snapshot unavailable"
        return check_store_readable(err) if STORE_READABLE in wanted else []
    out: list[Finding] = []
    for inv in invariants:
        if inv.id in wanted and inv.check is not None:
            out.extend(inv.check(snapshot, hist))
    return out


def check_all(snapshot: Snapshot | None, history: Iterable[OpRecord], *,
              snapshot_error: str | None = None,
              only: Iterable[str] | None = None) -> list[Finding]:
    """Run every resume invariant (or those in ``only``). With no snapshot, only store-readable
    runs."""
    return run_invariants(INVARIANTS, snapshot, history, snapshot_error=snapshot_error, only=only)
