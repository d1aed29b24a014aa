"""The ``jobs`` invariants: pure functions over a :class:`Snapshot` and the operation history.

An *observation* is the job an acknowledged operation returned, or a row of the final snapshot
(taken after every operation finished). Checks are real-time aware: an observation ``P`` is known
to precede ``Q`` only when ``P`` finished before ``Q`` started; ``info`` / ``pending`` operations
may have applied, ``fail`` ones did not. States are ``(status, attempts)`` pairs (see
:mod:`harness.families.jobs.contract`): every state a valid path reaches, and every move between
two ordered observations, must be possible under the transition graph.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from harness.families.jobs.contract import (
    COMPLETED,
    FAILED,
    PENDING,
    PROCESSING,
    STATUSES,
    Snapshot,
)
from harness.history import OpRecord
from harness.invariants import STORE_READABLE, Finding, Invariant, run_invariants

JOB_TRANSITIONS_VALID = "job-transitions-valid"
JOB_UNIQUE = "job-unique"
JOB_SINGLE_CLAIM = "job-single-claim"
JOB_TIMESTAMPS = "job-timestamps"

#: Operation -> the statuses it may start from and the status it moves to.
ALLOWED_FROM: dict[str, frozenset[str]] = {
    "claim_next": frozenset({PENDING}),
    "mark_processing": frozenset({PENDING, FAILED}),
    "mark_completed": frozenset({PROCESSING}),
    "mark_failed": frozenset({PROCESSING}),
}
TARGET: dict[str, str] = {"claim_next": PROCESSING, "mark_processing": PROCESSING,
                          "mark_completed": COMPLETED, "mark_failed": FAILED}
#: Operations that change a job that exists (get_or_create only ever creates).
CHANGING_OPS = tuple(TARGET)

State = tuple[str, int]


@dataclass(frozen=True)
class Observation:
    """One job as an acknowledged operation returned it (``rec``) or as the final snapshot shows
    it (``rec`` None, ordered after everything)."""

    job: dict[str, Any]
    rec: OpRecord | None = None

    @property
    def label(self) -> str:
        return "the final snapshot" if self.rec is None else f"#{self.rec.index} {self.rec.op}"

    def before(self, other: Observation) -> bool:
        """This observation is known to precede ``other``."""
        if self.rec is None:
            return False
        return other.rec is None or self.rec.finished_before(other.rec)


# --------------------------------------------------------------------------- helpers


def _job_of(rec: OpRecord) -> dict[str, Any] | None:
    value = rec.result
    if rec.acknowledged and isinstance(value, dict) and isinstance(value.get("task_id"), str):
        return value
    return None


def _observations(snapshot: Snapshot, history: Sequence[OpRecord]) -> dict[str, list[Observation]]:
    out: dict[str, list[Observation]] = {}
    for rec in history:
        job = _job_of(rec)
        if job is not None:
            out.setdefault(job["task_id"], []).append(Observation(job, rec))
    for job in snapshot.jobs:
        out.setdefault(job.task_id, []).append(Observation(job.to_dict()))
    return out


def _duplicated(snapshot: Snapshot) -> set[str]:
    return {t for t, rows in snapshot.by_task().items() if len(rows) > 1}


def _state(job: dict[str, Any]) -> State | None:
    status, attempts = job.get("status"), job.get("attempts")
    if status not in STATUSES or not isinstance(attempts, int) or isinstance(attempts, bool):
        return None
    return status, attempts


def _show(state: State | None, job: dict[str, Any]) -> str:
    if state is None:
        return f"{job.get('status')!r}/{job.get('attempts')!r}"
    return f"{state[0]}/{state[1]}"


def incoherence(job: dict[str, Any]) -> str | None:
    """Why no valid path reaches this job's state (None: some path does, or the status is not in
    the enum, which ``job-timestamps`` reports)."""
    state = _state(job)
    if state is None:
        return None
    status, attempts = state
    if status == PENDING:
        if attempts != 0:
            return f"pending with attempts {attempts} (a job is pending only before its first claim)"
        if job.get("worker_id") is not None:
            return f"pending with worker {job.get('worker_id')!r}"
        return None
    if attempts < 1:
        return f"{status} with attempts {attempts} (it never entered processing)"
    if status == COMPLETED and job.get("result") is None:
        return "completed without a result"
    if status == FAILED and not job.get("error"):
        return "failed without an error"
    return None


def reachable(a: State, b: State) -> bool:
    """Whether valid transitions lead from state ``a`` to state ``b`` (zero or more steps)."""
    if a == b:
        return True
    (sa, na), (sb, nb) = a, b
    if sa == COMPLETED or sb == PENDING:
        return False
    if sa == PENDING:
        return nb >= 1
    if sa == PROCESSING:
        return nb > na or (nb == na and sb in (COMPLETED, FAILED))
    return nb > na  # failed: only a retry leaves it


def step_valid(op: str, pre: State, post: State) -> bool:
    """Whether ``op`` may move a job from ``pre`` to ``post`` in one step."""
    if pre[0] not in ALLOWED_FROM[op] or post[0] != TARGET[op]:
        return False
    return post[1] == pre[1] + (1 if TARGET[op] == PROCESSING else 0)


def _changers(history: Sequence[OpRecord]) -> tuple[dict[str, list[OpRecord]], list[OpRecord]]:
    """Operations that may have changed each task, and claims whose task is unknown (a
    ``claim_next`` that may have applied but returned nothing known)."""
    by_task: dict[str, list[OpRecord]] = {}
    unknown: list[OpRecord] = []
    for rec in history:
        if rec.op not in CHANGING_OPS or not rec.may_have_applied:
            continue
        if rec.op == "claim_next":
            job = _job_of(rec)
            if job is not None:
                by_task.setdefault(job["task_id"], []).append(rec)
            elif not rec.acknowledged:
                unknown.append(rec)
        elif isinstance(rec.args.get("task_id"), str):
            by_task.setdefault(rec.args["task_id"], []).append(rec)
    return by_task, unknown


def _predecessor(x: OpRecord, obs: list[Observation], changers: list[OpRecord]) -> Observation | None:
    """The observation whose state ``x`` certainly started from: the latest one finished before
    ``x`` started, with no other change that may fall between the two (None: ambiguous)."""
    earlier = [o for o in obs if o.rec is not None and o.rec is not x and o.rec.finished_before(x)]
    if not earlier:
        return None
    p = max(earlier, key=lambda o: (o.rec.end, o.rec.index))  # type: ignore[union-attr]
    assert p.rec is not None
    for w in changers:
        if w is x or w is p.rec:
            continue
        if not w.finished_before(p.rec) and not x.finished_before(w):
            return None
    return p


# --------------------------------------------------------------------------- the checks


def check_transitions_valid(snapshot: Snapshot, history: Sequence[OpRecord]) -> list[Finding]:
    """Every observed state is reachable, every acknowledged change is one valid transition from
    the state it started in, every later observation is reachable from every earlier one, and
    each attempt leaves ``processing`` at most once."""
    out: list[Finding] = []
    obs_by_task = _observations(snapshot, history)
    dup = _duplicated(snapshot)
    changers, unknown = _changers(history)
    for task in sorted(obs_by_task):
        obs = obs_by_task[task]
        for o in obs:
            why = incoherence(o.job)
            if why is not None:
                out.append(Finding(JOB_TRANSITIONS_VALID,
                                   f"task {task!r} in {o.label}: {why}", [task],
                                   [o.rec.index] if o.rec else []))
                break
        if task in dup:
            continue  # two rows of one task: job-unique reports it; states are not one line
        task_changers = changers.get(task, []) + unknown
        for o in obs:
            x = o.rec
            if x is None or x.op not in TARGET:
                continue
            post = _state(o.job)
            p = _predecessor(x, obs, task_changers)
            pre = _state(p.job) if p is not None else None
            if post is None or pre is None or p is None:
                continue
            if not step_valid(x.op, pre, post):
                out.append(Finding(
                    JOB_TRANSITIONS_VALID,
                    f"task {task!r}: acknowledged {x.op} (#{x.index}) moved it from "
                    f"{_show(pre, p.job)} ({p.label}) to {_show(post, o.job)}", [task],
                    [i for i in (p.rec.index if p.rec else None, x.index) if i is not None]))
                break
        done = False
        for p in obs:
            for q in obs:
                if done or p is q or not p.before(q):
                    continue
                a, b = _state(p.job), _state(q.job)
                if a is not None and b is not None and not reachable(a, b):
                    out.append(Finding(
                        JOB_TRANSITIONS_VALID,
                        f"task {task!r}: {_show(a, p.job)} in {p.label} then {_show(b, q.job)} in "
                        f"{q.label}: no valid path leads there", [task],
                        [r.index for r in (p.rec, q.rec) if r is not None]))
                    done = True
        exits: dict[int, list[OpRecord]] = {}
        for o in obs:
            if o.rec is not None and o.rec.op in ("mark_completed", "mark_failed"):
                state = _state(o.job)
                if state is not None:
                    exits.setdefault(state[1], []).append(o.rec)
        for attempt, recs in sorted(exits.items()):
            if len(recs) > 1:
                ops = ", ".join(f"#{r.index} {r.op}" for r in recs)
                out.append(Finding(JOB_TRANSITIONS_VALID,
                                   f"task {task!r}: attempt {attempt} left processing "
                                   f"{len(recs)} times ({ops})", [task], [r.index for r in recs]))
    return out


def check_unique(snapshot: Snapshot, history: Sequence[OpRecord]) -> list[Finding]:
    """At most one row per ``task_id``; acknowledged ``get_or_create`` calls of one task all
    return the same job."""
    out: list[Finding] = []
    for task, rows in sorted(snapshot.by_task().items()):
        if len(rows) > 1:
            out.append(Finding(JOB_UNIQUE, f"task {task!r} is stored {len(rows)} times", [task]))
    created: dict[str, dict[str | None, OpRecord]] = {}
    for rec in history:
        job = _job_of(rec)
        if rec.op == "get_or_create" and job is not None:
            created.setdefault(job["task_id"], {}).setdefault(job.get("created_at"), rec)
    for task, versions in sorted(created.items()):
        if len(versions) > 1:
            ops = sorted(r.index for r in versions.values())
            out.append(Finding(JOB_UNIQUE, f"task {task!r}: get_or_create returned "
                               f"{len(versions)} different jobs (ops {ops})", [task], ops))
    return out


def check_single_claim(snapshot: Snapshot, history: Sequence[OpRecord]) -> list[Finding]:
    """A job is pending once, so at most one acknowledged ``claim_next`` takes it; and each
    attempt enters ``processing`` through at most one acknowledged claim or ``mark_processing``."""
    out: list[Finding] = []
    claims: dict[str, list[OpRecord]] = {}
    entries: dict[tuple[str, Any], list[OpRecord]] = {}
    for rec in history:
        job = _job_of(rec)
        if job is None or rec.op not in ("claim_next", "mark_processing"):
            continue
        if rec.op == "claim_next":
            claims.setdefault(job["task_id"], []).append(rec)
        entries.setdefault((job["task_id"], job.get("attempts")), []).append(rec)
    for task, recs in sorted(claims.items()):
        if len(recs) > 1:
            who = ", ".join(f"#{r.index} by {r.args.get('worker_id')!r}" for r in recs)
            out.append(Finding(JOB_SINGLE_CLAIM, f"task {task!r} claimed {len(recs)} times: {who}",
                               [task], [r.index for r in recs]))
    for (task, attempt), recs in sorted(entries.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        if len(recs) > 1 and task not in {t for t, rs in claims.items() if len(rs) > 1}:
            who = ", ".join(f"#{r.index} {r.op}" for r in recs)
            out.append(Finding(JOB_SINGLE_CLAIM, f"task {task!r}: attempt {attempt} entered "
                               f"processing {len(recs)} times ({who})", [task],
                               [r.index for r in recs]))
    return out


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _timestamp_problem(job: dict[str, Any]) -> str | None:
    if job.get("status") not in STATUSES:
        return f"status {job.get('status')!r} is not one of {', '.join(STATUSES)}"
    created, updated = _parse(job.get("created_at")), _parse(job.get("updated_at"))
    if created is None:
        return f"created_at {job.get('created_at')!r} is not a timestamp"
    if updated is None:
        return f"updated_at {job.get('updated_at')!r} is not a timestamp"
    if created > updated:
        return f"created_at {job['created_at']} is after updated_at {job['updated_at']}"
    return None


def check_timestamps(snapshot: Snapshot, history: Sequence[OpRecord]) -> list[Finding]:
    """Status in the enum, ``created_at <= updated_at`` in every observation; across ordered
    observations of one task ``created_at`` never changes and ``updated_at`` never goes back."""
    out: list[Finding] = []
    dup = _duplicated(snapshot)
    for task, obs in sorted(_observations(snapshot, history).items()):
        for o in obs:
            why = _timestamp_problem(o.job)
            if why is not None:
                out.append(Finding(JOB_TIMESTAMPS, f"task {task!r} in {o.label}: {why}", [task],
                                   [o.rec.index] if o.rec else []))
                break
        if task in dup:
            continue
        done = False
        for p in obs:
            for q in obs:
                if done or p is q or not p.before(q):
                    continue
                pc, qc = _parse(p.job.get("created_at")), _parse(q.job.get("created_at"))
                pu, qu = _parse(p.job.get("updated_at")), _parse(q.job.get("updated_at"))
                ops = [r.index for r in (p.rec, q.rec) if r is not None]
                if pc is not None and qc is not None and pc != qc:
                    out.append(Finding(JOB_TIMESTAMPS, f"task {task!r}: created_at changed from "
                                       f"{p.job['created_at']} ({p.label}) to {q.job['created_at']} "
                                       f"({q.label})", [task], ops))
                    done = True
                elif pu is not None and qu is not None and qu < pu:
                    out.append(Finding(JOB_TIMESTAMPS, f"task {task!r}: updated_at went back from "
                                       f"{p.job['updated_at']} ({p.label}) to {q.job['updated_at']} "
                                       f"({q.label})", [task], ops))
                    done = True
    return out


# --------------------------------------------------------------------------- the registry

AUDIT_GET_OR_CREATE = "jobs audit Pattern 2 (query then insert)"
AUDIT_STATUS = "jobs audit Pattern 3 (unchecked status assignment)"

INVARIANTS: tuple[Invariant, ...] = (
    Invariant(JOB_TRANSITIONS_VALID, "pending->processing->completed|failed, failed->processing "
              "as a retry, completed terminal: every observed state and move is valid",
              (AUDIT_STATUS,), check_transitions_valid),
    Invariant(JOB_UNIQUE, "at most one job per task_id; concurrent get_or_create never "
              "duplicates", (AUDIT_GET_OR_CREATE,), check_unique),
    Invariant(JOB_SINGLE_CLAIM, "a pending job is claimed by exactly one worker; each attempt "
              "enters processing once", (AUDIT_GET_OR_CREATE, AUDIT_STATUS), check_single_claim),
    Invariant(JOB_TIMESTAMPS, "created_at <= updated_at, timestamps never go back, status in the "
              "enum", (AUDIT_STATUS,), check_timestamps),
    Invariant(STORE_READABLE, "after any fault the store opens and snapshot() succeeds",
              ("DB-007",), None),
)
INVARIANT_IDS: tuple[str, ...] = tuple(i.id for i in INVARIANTS)


def check_all(snapshot: Snapshot | None, history: Iterable[OpRecord], *,
              snapshot_error: str | None = None,
              only: Iterable[str] | None = None) -> list[Finding]:
    """Run every ``jobs`` invariant (or those in ``only``). With no snapshot, only
    ``store-readable`` runs."""
    return run_invariants(INVARIANTS, snapshot, history, snapshot_error=snapshot_error, only=only)
