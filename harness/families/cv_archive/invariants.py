"""The cv-archive invariants: pure functions over a :class:`Snapshot` (rows and backups) and the
history. No I/O.

Nothing in the contract deletes a stored row, and a backup leaves only into a row, so presence
checks need no real-time reasoning beyond the outcome of each call: ``ok`` calls are
acknowledged, ``fail`` ones did not apply, ``info`` / ``pending`` ones may or may not have
applied. Contents are compared by SHA-256.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from harness.families.cv_archive.contract import (
    BACKED_UP,
    ORIGIN_RECOVERY,
    ORIGIN_SAVE,
    STORED,
    CvRow,
    Snapshot,
    sha256_text,
)
from harness.history import OK, OpRecord
from harness.invariants import STORE_READABLE, Finding, Invariant, run_invariants

CV_NO_LOSS = "cv-no-loss"
CV_RECOVERED_ONCE = "cv-recovered-once"
CV_NO_DUPLICATE_ON_RETRY = "cv-no-duplicate-on-retry"
CV_VERIFIED = "cv-verified"
#: The parts of the robust-persistence design (and of the audited code) each invariant covers.
AUDIT_BACKUP = "persistence: backup file when the store keeps failing"
AUDIT_RECOVERY = "persistence: recovery command"
AUDIT_RETRY = "persistence: retry with backoff; request id not unique"
AUDIT_VERIFY = "persistence: read-back verification"


def _saves(history: Sequence[OpRecord]) -> dict[str, list[OpRecord]]:
    out: dict[str, list[OpRecord]] = {}
    for r in history:
        if r.op == "save_cv" and isinstance(r.args.get("request_id"), str):
            out.setdefault(r.args["request_id"], []).append(r)
    return out


def _outcome(rec: OpRecord) -> str | None:
    return rec.result.get("outcome") if isinstance(rec.result, dict) else None


def _rows_by_request(snapshot: Snapshot) -> dict[str, list[CvRow]]:
    out: dict[str, list[CvRow]] = {}
    for row in snapshot.rows:
        out.setdefault(row.request_id, []).append(row)
    return out


def _ops(recs: Iterable[OpRecord]) -> list[int]:
    return sorted({r.index for r in recs})


def _recovers(history: Sequence[OpRecord]) -> list[OpRecord]:
    return [r for r in history if r.op == "recover" and not r.args.get("dry_run")]


def check_no_loss(snapshot: Snapshot, history: Sequence[OpRecord]) -> list[Finding]:
    """Every acknowledged save is in the store (``stored``: a row; ``backed-up``: a row or a
    backup), and every backup file parses (one that does not has lost what it held)."""
    out = [Finding(CV_NO_LOSS, f"backup file {u['file']} does not parse ({u['error']}): the CVs "
                   "it held cannot be recovered", [u["file"]]) for u in snapshot.unreadable]
    rows = {r.request_id for r in snapshot.rows}
    backed = {b.request_id for b in snapshot.backups}
    for rid, recs in _saves(history).items():
        for rec in recs:
            if rec.status != OK:
                continue
            outcome = _outcome(rec)
            if outcome == STORED and rid not in rows:
                out.append(Finding(CV_NO_LOSS, f"save_cv {rid} was acknowledged as stored but no "
                                   "row holds it", [rid], [rec.index]))
            elif outcome == BACKED_UP and rid not in rows and rid not in backed:
                out.append(Finding(CV_NO_LOSS, f"save_cv {rid} was acknowledged as backed up but "
                                   "it is neither stored nor in a backup", [rid], [rec.index]))
    return out


def check_no_duplicate_on_retry(snapshot: Snapshot,
                                history: Sequence[OpRecord] = ()) -> list[Finding]:
    """At most one row written by saves per request id (a retry, the service's own after an
    ambiguous commit or the client's, never adds a second row)."""
    saves = _saves(history)
    out = []
    for rid, rows in sorted(_rows_by_request(snapshot).items()):
        mine = [r for r in rows if r.origin == ORIGIN_SAVE]
        if len(mine) > 1:
            out.append(Finding(CV_NO_DUPLICATE_ON_RETRY,
                               f"request {rid} is stored {len(mine)} times by save_cv (rows "
                               f"{', '.join(str(r.row_id) for r in mine)})", [rid],
                               _ops(saves.get(rid, ()))))
    return out


def check_recovered_once(snapshot: Snapshot, history: Sequence[OpRecord] = ()) -> list[Finding]:
    """Recovery imports each backup exactly once: no request id gets a row from recovery next to
    another row (from recovery or from a save), whether recovery ran twice, concurrently, or
    again after an interruption; a dry run imports nothing."""
    recovers = _recovers(history)
    dry = [r for r in history if r.op == "recover" and r.args.get("dry_run")]
    out = []
    for rid, rows in sorted(_rows_by_request(snapshot).items()):
        imported = [r for r in rows if r.origin == ORIGIN_RECOVERY]
        if imported and len(rows) > 1:
            out.append(Finding(CV_RECOVERED_ONCE,
                               f"request {rid} has {len(imported)} row(s) imported by recovery "
                               f"among {len(rows)} rows", [rid], _ops(recovers)))
        elif imported and not recovers:
            out.append(Finding(CV_RECOVERED_ONCE, f"request {rid} was imported although only dry "
                               "runs of recover ran", [rid], _ops(dry)))
    return out


def check_verified(snapshot: Snapshot, history: Sequence[OpRecord]) -> list[Finding]:
    """What is stored (a row or a backup) for an acknowledged request hashes to what some save
    of that request sent."""
    out = []
    for rid, recs in sorted(_saves(history).items()):
        if not any(r.status == OK for r in recs):
            continue
        sent = {sha256_text(r.args["content"]) for r in recs
                if r.may_have_applied and isinstance(r.args.get("content"), str)}
        held: list[tuple[str, str]] = [(f"row {r.row_id}", r.content) for r in snapshot.rows
                                       if r.request_id == rid]
        held += [(f"backup {b.file}", b.content) for b in snapshot.backups if b.request_id == rid]
        for where, content in held:
            got = sha256_text(content)
            if got not in sent:
                out.append(Finding(CV_VERIFIED, f"{where} of acknowledged request {rid} hashes to "
                                   f"{got[:12]}, not to what was sent "
                                   f"({', '.join(sorted(s[:12] for s in sent))})", [rid],
                                   _ops(recs)))
    return out


INVARIANTS: tuple[Invariant, ...] = (
    Invariant(CV_NO_LOSS, "every acknowledged save_cv is stored (or, when backed up, stored or in "
              "a backup); every backup file parses", (AUDIT_BACKUP,), check_no_loss),
    Invariant(CV_RECOVERED_ONCE, "recovery imports every backup exactly once, even when run "
              "twice, concurrently or after an interruption", (AUDIT_RECOVERY,),
              check_recovered_once),
    Invariant(CV_NO_DUPLICATE_ON_RETRY, "a retry of a request (after an ambiguous commit, or the "
              "client's) creates no second row", (AUDIT_RETRY,), check_no_duplicate_on_retry),
    Invariant(CV_VERIFIED, "what is stored for an acknowledged request hashes (SHA-256) to what "
              "was sent", (AUDIT_VERIFY,), check_verified),
    Invariant(STORE_READABLE, "after any fault the store opens and snapshot() succeeds",
              ("DB-007",), None),
)
INVARIANT_IDS: tuple[str, ...] = tuple(i.id for i in INVARIANTS)


def check_all(snapshot: Snapshot | None, history: Iterable[OpRecord], *,
              snapshot_error: str | None = None,
              only: Iterable[str] | None = None) -> list[Finding]:
    """Run every invariant (or those in ``only``). With no snapshot, only store-readable runs."""
    return run_invariants(INVARIANTS, snapshot, history, snapshot_error=snapshot_error, only=only)


__all__: list[Any] = ["CV_NO_DUPLICATE_ON_RETRY", "CV_NO_LOSS", "CV_RECOVERED_ONCE",
                      "CV_VERIFIED", "INVARIANTS", "check_all"]
