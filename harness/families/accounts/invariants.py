"""The accounts invariants: pure functions over an accounts :class:`Snapshot` and the history.

Real-time aware: ``fail`` operations did not apply; ``ok`` ones did; ``info`` / ``pending`` ones
may have. An operation that did not finish before another started may take effect after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from harness.families.accounts.contract import (
    CACHE_THRESHOLD,
    Snapshot,
    is_expired,
    normalize_email,
)
from harness.history import OK, OpRecord
from harness.invariants import STORE_READABLE, Finding, Invariant, run_invariants

FK_INTEGRITY = "fk-integrity"
EMAIL_UNIQUE = "email-unique"
TRANSFER_ATOMIC = "transfer-atomic"
CACHE_THRESHOLD_ID = "cache-threshold"
CLEANUP_PRECISE = "cleanup-precise"


def _applied(rec: OpRecord) -> bool:
    return rec.may_have_applied


def _end(rec: OpRecord) -> float:
    return rec.end if rec.end is not None else float("inf")


def _safe_expired(created_at: Any, days: Any, now: Any) -> bool | None:
    try:
        return is_expired(created_at, days, now)
    except Exception:  # noqa: BLE001 - malformed input: the adapter had to refuse it
        return None


def _user_flags(history: Sequence[OpRecord]) -> dict[str, bool]:
    """user_id -> could it be anonymous (per the create_user calls that may have applied)."""
    out: dict[str, bool] = {}
    for r in history:
        if r.op == "create_user" and _applied(r):
            uid = r.args.get("user_id")
            out[uid] = out.get(uid, False) or bool(r.args.get("is_anonymous", False))
    return out


def _deleted_users(history: Sequence[OpRecord]) -> dict[str, list[OpRecord]]:
    out: dict[str, list[OpRecord]] = {}
    for r in history:
        if r.op == "delete_user" and _applied(r):
            out.setdefault(r.args.get("user_id"), []).append(r)
    return out


# --------------------------------------------------------------------------- fk-integrity


def check_fk_integrity(snapshot: Snapshot, history: Sequence[OpRecord] = ()) -> list[Finding]:
    """Every session and every upload belongs to a user that exists."""
    out: list[Finding] = []
    deletes = _deleted_users(history)
    for s in sorted(snapshot.sessions.values(), key=lambda s: s.session_id):
        if s.user_id not in snapshot.users:
            why = " (its user was deleted)" if s.user_id in deletes else ""
            out.append(Finding(FK_INTEGRITY, f"session {s.session_id} belongs to missing user "
                               f"{s.user_id}{why}", [s.session_id, s.user_id],
                               [d.index for d in deletes.get(s.user_id, [])]))
    for u in sorted(snapshot.uploads, key=lambda u: (u.job_id, u.user_id)):
        if u.user_id not in snapshot.users:
            why = " (its user was deleted)" if u.user_id in deletes else ""
            out.append(Finding(FK_INTEGRITY, f"upload {u.job_id} belongs to missing user "
                               f"{u.user_id}{why}", [u.job_id, u.user_id],
                               [d.index for d in deletes.get(u.user_id, [])]))
    return out


# --------------------------------------------------------------------------- email-unique


def check_email_unique(snapshot: Snapshot, history: Sequence[OpRecord] = ()) -> list[Finding]:
    """No two users share an email (case-insensitively), in the store or ever at once: two
    acknowledged sign-ups with one email both succeeded while neither user could have been
    deleted in between."""
    out: list[Finding] = []
    by_email: dict[str, list[str]] = {}
    for u in snapshot.users.values():
        by_email.setdefault(normalize_email(u.email), []).append(u.user_id)
    for email, users in sorted(by_email.items()):
        if len(users) > 1:
            out.append(Finding(EMAIL_UNIQUE, f"users {', '.join(sorted(users))} share the email "
                               f"{email!r}", sorted(users)))
    reported = {frozenset(u) for u in by_email.values() if len(u) > 1}
    deletes = _deleted_users(history)
    signups: dict[str, list[OpRecord]] = {}
    for r in history:
        if r.op == "create_user" and r.status == OK and isinstance(r.args.get("email"), str):
            signups.setdefault(normalize_email(r.args["email"]), []).append(r)
    for email, recs in sorted(signups.items()):
        for i, a in enumerate(recs):
            for b in recs[i + 1:]:
                ua, ub = a.args.get("user_id"), b.args.get("user_id")
                if ua == ub or frozenset((ua, ub)) in reported:
                    continue
                first, second = (a, b) if a.start <= b.start else (b, a)
                gone = [d for d in deletes.get(first.args.get("user_id"), [])
                        if d.start < _end(second)]
                if not gone:
                    out.append(Finding(EMAIL_UNIQUE, f"sign-ups of {ua} (op #{a.index}) and {ub} "
                                       f"(op #{b.index}) both succeeded with the email {email!r}",
                                       [ua, ub], [a.index, b.index]))
    return out


# --------------------------------------------------------------------------- transfer-atomic


def _owner_writes(history: Sequence[OpRecord]) -> dict[str, list[OpRecord]]:
    """job_id -> create_upload and transfer calls that may have set its owner, in order."""
    out: dict[str, list[OpRecord]] = {}
    for r in history:
        if r.op in ("create_upload", "transfer_cv_ownership") and _applied(r):
            out.setdefault(r.args.get("job_id"), []).append(r)
    return out


def _owner_of(rec: OpRecord) -> str:
    return rec.args.get("user_id") if rec.op == "create_upload" else rec.args.get("new_user_id")


def _possible_owners_before(t: OpRecord, writes: Sequence[OpRecord]) -> list[OpRecord]:
    """The writes that may be the last one applied before ``t``: started before ``t`` ended,
    and no acknowledged write surely between them and ``t``."""
    before = [w for w in writes if w.index != t.index and w.start < _end(t)]
    return [w for w in before
            if not any(x.status == OK and x.index != w.index and w.finished_before(x)
                       and x.finished_before(t) for x in before)]


def _double_transfers(jid: str, writes: Sequence[OpRecord],
                      anonymous: dict[str, bool]) -> list[Finding]:
    """Two acknowledged transfers of one upload to two different registered users, with no
    transfer to a possibly anonymous user at all: whichever took effect second took it from a
    registered owner (however they overlapped)."""
    transfers = [w for w in writes if w.op == "transfer_cv_ownership"]
    if any(anonymous.get(_owner_of(w), True) for w in transfers):
        return []
    acked = [w for w in transfers if w.status == OK and _owner_of(w) in anonymous]
    for i, a in enumerate(acked):
        for b in acked[i + 1:]:
            if _owner_of(a) != _owner_of(b) and not (a.finished_before(b)
                                                     or b.finished_before(a)):
                return [Finding(TRANSFER_ATOMIC, f"concurrent transfers of upload {jid} to "
                                f"{_owner_of(a)} (op #{a.index}) and {_owner_of(b)} "
                                f"(op #{b.index}) both succeeded: one took it from a "
                                "non-anonymous owner", [jid, _owner_of(a), _owner_of(b)],
                                [a.index, b.index])]
    return []


def check_transfer_atomic(snapshot: Snapshot, history: Sequence[OpRecord]) -> list[Finding]:
    """Each upload belongs to exactly one user; one acknowledged as uploaded is never lost
    unless a user that may have owned it was deleted; its owner is the last transfer's target;
    no acknowledged transfer took it from an owner that was not anonymous."""
    out: list[Finding] = []
    stored: dict[str, list[str]] = {}
    for u in snapshot.uploads:
        stored.setdefault(u.job_id, []).append(u.user_id)
    for jid, owners in sorted(stored.items()):
        if len(owners) > 1:
            out.append(Finding(TRANSFER_ATOMIC, f"upload {jid} belongs to {len(owners)} users at "
                               f"once: {', '.join(sorted(owners))}", [jid, *sorted(owners)]))
    writes = _owner_writes(history)
    deletes = _deleted_users(history)
    anonymous = _user_flags(history)
    for jid, ws in sorted(writes.items(), key=lambda kv: str(kv[0])):
        created = [w for w in ws if w.op == "create_upload" and w.status == OK]
        if not created:
            continue
        ws = [w for w in ws if w.op == "transfer_cv_ownership" or w.status == OK]
        owners = {_owner_of(w) for w in ws}
        transfers = [w.index for w in ws if w.op == "transfer_cv_ownership"]
        if jid not in stored:
            if not any(o in deletes for o in owners):
                out.append(Finding(TRANSFER_ATOMIC, f"upload {jid} is lost: acknowledged by op "
                                   f"#{created[0].index}, never deleted, now owned by nobody"
                                   + (f" (transfers: {', '.join(f'#{i}' for i in transfers)})"
                                      if transfers else ""), [jid], [created[0].index, *transfers]))
            continue
        oks = [w for w in ws if w.status == OK]
        last_ok_start = max(w.start for w in oks)
        finals = [w for w in ws if w.end is None or not last_ok_start > w.end]
        for owner in stored[jid]:
            if owner not in {_owner_of(w) for w in finals}:
                out.append(Finding(TRANSFER_ATOMIC, f"upload {jid} belongs to {owner}, not to "
                                   f"the last acknowledged owner "
                                   f"{', '.join(sorted({str(_owner_of(w)) for w in finals}))}",
                                   [jid, owner], [w.index for w in finals]))
        out.extend(_double_transfers(jid, ws, anonymous))
        for t in ws:
            if t.op != "transfer_cv_ownership" or t.status != OK:
                continue
            prev = _possible_owners_before(t, ws)
            if t.args.get("new_user_id") in {_owner_of(w) for w in prev}:
                continue  # may be a transfer to its owner: a no-op
            if prev and not any(anonymous.get(_owner_of(w), True) for w in prev):
                names = ", ".join(sorted({str(_owner_of(w)) for w in prev}))
                out.append(Finding(TRANSFER_ATOMIC, f"transfer of upload {jid} to "
                                   f"{t.args.get('new_user_id')} (op #{t.index}) took it from "
                                   f"non-anonymous owner {names}", [jid, *sorted({
                                       str(_owner_of(w)) for w in prev})],
                                   [t.index, *(w.index for w in prev)]))
    return out


# --------------------------------------------------------------------------- cache-threshold


def check_cache_threshold(snapshot: Snapshot, history: Sequence[OpRecord]) -> list[Finding]:
    """Nothing is cached at or below the threshold; an acknowledged store above it is cached;
    an entry's access count equals its acknowledged reads (plus at most the reads whose
    outcome is unknown)."""
    out: list[Finding] = []
    for e in sorted(snapshot.cache.values(), key=lambda e: e.file_hash):
        if not e.confidence > CACHE_THRESHOLD:
            stores = [r.index for r in history if r.op == "cache_extraction" and _applied(r)
                      and r.args.get("file_hash") == e.file_hash
                      and not _above(r.args.get("confidence"))]
            out.append(Finding(CACHE_THRESHOLD_ID, f"extraction {e.file_hash} is cached with "
                               f"confidence {e.confidence}, not above {CACHE_THRESHOLD}",
                               [e.file_hash], stores))
    ok_reads: dict[str, list[int]] = {}
    maybe_reads: dict[str, int] = {}
    for r in history:
        h = r.args.get("file_hash")
        if r.op == "cache_extraction" and r.status == OK and _above(r.args.get("confidence")) \
                and h not in snapshot.cache:
            out.append(Finding(CACHE_THRESHOLD_ID, f"extraction {h} stored with confidence "
                               f"{r.args.get('confidence')} (op #{r.index}) is not cached",
                               [h], [r.index]))
        if r.op == "get_cached_extraction":
            if r.status == OK:
                ok_reads.setdefault(h, []).append(r.index)
            elif _applied(r):
                maybe_reads[h] = maybe_reads.get(h, 0) + 1
    for h, e in sorted(snapshot.cache.items()):
        acked = len(ok_reads.get(h, []))
        if not acked <= e.access_count <= acked + maybe_reads.get(h, 0):
            out.append(Finding(CACHE_THRESHOLD_ID, f"extraction {h} has access_count "
                               f"{e.access_count} after {acked} acknowledged reads", [h],
                               ok_reads.get(h, [])))
    return out


def _above(confidence: Any) -> bool:
    return isinstance(confidence, int | float) and not isinstance(confidence, bool) \
        and CACHE_THRESHOLD < confidence <= 1.0


# --------------------------------------------------------------------------- cleanup-precise


def check_cleanup_precise(snapshot: Snapshot, history: Sequence[OpRecord]) -> list[Finding]:
    """An acknowledged cleanup removed every session that was expired at its ``now`` and
    existed before it started, and no cleanup removed a session that was not expired (unless
    its user was deleted)."""
    out: list[Finding] = []
    creates: dict[str, list[OpRecord]] = {}
    for r in history:
        if r.op == "create_session" and _applied(r):
            creates.setdefault(r.args.get("session_id"), []).append(r)
    cleanups = [r for r in history if r.op == "cleanup_sessions" and _applied(r)]
    deletes = _deleted_users(history)
    for sid, made in sorted(creates.items(), key=lambda kv: str(kv[0])):
        acked = [c for c in made if c.status == OK]
        if len(made) != 1 or not acked:
            continue  # ids are never reused by the workloads; skip anything ambiguous
        s = acked[0]
        created_at, uid = s.args.get("created_at"), s.args.get("user_id")
        present = sid in snapshot.sessions
        later = [c for c in cleanups if not c.finished_before(s)]
        if present:
            for c in later:
                if c.status == OK and s.finished_before(c) and _safe_expired(
                        created_at, c.args.get("older_than_days"), c.args.get("now")):
                    out.append(Finding(CLEANUP_PRECISE, f"session {sid} (created {created_at}) "
                                       f"is still stored though cleanup older than "
                                       f"{c.args.get('older_than_days')} days at "
                                       f"{c.args.get('now')} (op #{c.index}) expired it",
                                       [sid], [s.index, c.index]))
                    break
            continue
        if uid in deletes or not later:
            continue  # gone with its user, or no cleanup could have removed it
        if any(_safe_expired(created_at, c.args.get("older_than_days"), c.args.get("now"))
               is not False for c in later):
            continue  # some cleanup that may have run after it expired it
        blamed = later[0]
        out.append(Finding(CLEANUP_PRECISE, f"session {sid} (created {created_at}) was removed "
                           f"though no cleanup expired it (e.g. older than "
                           f"{blamed.args.get('older_than_days')} days at "
                           f"{blamed.args.get('now')}, op #{blamed.index})", [sid],
                           [s.index, *(c.index for c in later)]))
    return out


# --------------------------------------------------------------------------- registry


INVARIANTS: tuple[Invariant, ...] = (
    Invariant(FK_INTEGRITY, "no session or upload without its user (deleting a user deletes "
              "them)", ("SCHEMA-FK",), check_fk_integrity),
    Invariant(EMAIL_UNIQUE, "no two users with one email (case-insensitive), also under "
              "concurrent sign-up", ("SCHEMA-EMAIL",), check_email_unique),
    Invariant(TRANSFER_ATOMIC, "an upload belongs to exactly one existing user before and after "
              "a transfer, is never lost mid-transfer, never taken from a non-anonymous owner",
              ("SCHEMA-TRANSFER",), check_transfer_atomic),
    Invariant(CACHE_THRESHOLD_ID, f"nothing cached at or below confidence {CACHE_THRESHOLD}; "
              "access_count equals acknowledged reads", ("SCHEMA-CACHE",), check_cache_threshold),
    Invariant(CLEANUP_PRECISE, "cleanup_sessions removes exactly the expired sessions",
              ("SCHEMA-CLEANUP",), check_cleanup_precise),
    Invariant(STORE_READABLE, "after any fault the store opens and snapshot() succeeds",
              ("DB-007",), None),
)
INVARIANT_IDS: tuple[str, ...] = tuple(i.id for i in INVARIANTS)


def check_all(snapshot: Snapshot | None, history: Iterable[OpRecord], *,
              snapshot_error: str | None = None,
              only: Iterable[str] | None = None) -> list[Finding]:
    """Run every accounts invariant (or those in ``only``). With no snapshot, only
    store-readable runs."""
    return run_invariants(INVARIANTS, snapshot, history, snapshot_error=snapshot_error, only=only)
