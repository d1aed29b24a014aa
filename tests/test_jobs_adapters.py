"""Conformance of the three ``jobs`` adapters to the contract, with the legacy adapter's audited
deviations asserted as such (they must keep failing the contract, or the harness has nothing to
find)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from harness.families.jobs.contract import (
    Conflict,
    InvalidData,
    JobStore,
    NotFound,
    Snapshot,
    StorageError,
)
from harness.families.jobs.invariants import check_all
from harness.faults import FaultController, FaultRule

LEGACY = "jobs-legacy"
CORRECT = ("jobs-sqlite", pytest.param("jobs-postgres", marks=pytest.mark.postgres))
ALL = (LEGACY, *CORRECT)


def _create(store: JobStore, task_id: str = "task-1", **kw: Any) -> Any:
    return store.get_or_create(task_id, kw.get("task_type", "parse_resume"),
                               kw.get("input", {"filename": "Zoë Ångström – CV.pdf", "pages": 2}))


@pytest.fixture(params=ALL)
def store(request, make_adapter) -> JobStore:
    return make_adapter(request.param)


@pytest.fixture(params=CORRECT)
def good(request, make_adapter) -> JobStore:
    return make_adapter(request.param)


@pytest.fixture
def legacy(make_adapter) -> JobStore:
    return make_adapter(LEGACY)


# --------------------------------------------------------------------------- every adapter


def test_get_or_create_creates_once(store: JobStore) -> None:
    first = _create(store)
    assert (first.status, first.attempts, first.worker_id) == ("pending", 0, None)
    assert first.input == {"filename": "Zoë Ångström – CV.pdf", "pages": 2}
    again = _create(store, task_type="other", input={"x": 1})
    assert again.to_dict() == first.to_dict()
    assert store.get("task-1").to_dict() == first.to_dict()
    assert [j.task_id for j in store.snapshot().jobs] == ["task-1"]


def test_claim_next_takes_the_oldest_pending_job(store: JobStore) -> None:
    assert store.claim_next("w1") is None
    for t in ("task-b", "task-a", "task-c"):
        _create(store, t)
    got = [store.claim_next(f"w{i}") for i in range(4)]
    assert [j.task_id if j else None for j in got] == ["task-b", "task-a", "task-c", None]
    assert (got[0].status, got[0].worker_id, got[0].attempts) == ("processing", "w0", 1)


def test_lifecycle_with_a_retry(store: JobStore) -> None:
    _create(store)
    store.claim_next("w1")
    error = "TimeoutError: model did not answer"
    failed = store.mark_failed("task-1", error)
    assert (failed.status, failed.error, failed.attempts) == ("failed", error, 1)
    retry = store.mark_processing("task-1", worker_id="w2")
    assert (retry.status, retry.worker_id, retry.attempts) == ("processing", "w2", 2)
    done = store.mark_completed("task-1", {"keywords": ["python", "sql"], "score": 0.8})
    assert (done.status, done.result, done.attempts) == ("completed", {"keywords": ["python", "sql"],
                                                                       "score": 0.8}, 2)
    assert store.get("task-1").to_dict() == done.to_dict()


def test_missing_task_is_not_found(store: JobStore) -> None:
    for call in (lambda: store.get("nope"), lambda: store.mark_processing("nope"),
                 lambda: store.mark_completed("nope", {"r": 1}), lambda: store.mark_failed("nope", "e")):
        with pytest.raises(NotFound):
            call()
    assert store.snapshot().jobs == []


def test_reset_and_snapshot(store: JobStore) -> None:
    _create(store, "task-1")
    _create(store, "task-2")
    snap = store.snapshot()
    assert isinstance(snap, Snapshot) and sorted(j.task_id for j in snap.jobs) == ["task-1", "task-2"]
    assert snap.to_dict()["jobs"][0]["task_id"] in ("task-1", "task-2")
    store.reset()
    assert store.snapshot().jobs == []


def test_every_named_fault_point_is_passed(store: JobStore) -> None:
    faults = FaultController(tracing=True)
    store.faults = faults
    _create(store)
    store.claim_next("w")
    store.mark_failed("task-1", "e")
    store.mark_processing("task-1")
    store.mark_completed("task-1", {"ok": True})
    _create(store, "task-2")
    store.mark_processing("task-2")
    store.mark_failed("task-2", "e")
    declared = set(type(store).all_fault_points())
    assert declared and declared <= set(faults.trace)


# --------------------------------------------------------------------------- correct adapters


@pytest.mark.parametrize(("setup", "call"), [
    ([], "mark_completed"),                               # pending -> completed
    ([], "mark_failed"),                                  # pending -> failed
    (["claim"], "mark_processing"),                       # processing -> processing
    (["claim", "complete"], "mark_processing"),           # completed is terminal
    (["claim", "complete"], "mark_failed"),
    (["claim", "fail"], "mark_completed"),                # failed -> completed
])
def test_invalid_transitions_conflict_and_change_nothing(good: JobStore, setup: list[str],
                                                         call: str) -> None:
    _create(good)
    for step in setup:
        {"claim": lambda: good.claim_next("w"), "complete": lambda: good.mark_completed("task-1", 1),
         "fail": lambda: good.mark_failed("task-1", "e")}[step]()
    before = good.get("task-1").to_dict()
    args = {"mark_completed": ({"r": 1},), "mark_failed": ("e",), "mark_processing": ()}[call]
    with pytest.raises(Conflict):
        getattr(good, call)("task-1", *args)
    assert good.get("task-1").to_dict() == before


def test_result_and_error_are_required(good: JobStore) -> None:
    _create(good)
    good.claim_next("w")
    with pytest.raises(InvalidData):
        good.mark_completed("task-1", None)
    with pytest.raises(InvalidData):
        good.mark_failed("task-1", "")
    assert good.get("task-1").status == "processing"


def test_timestamps_set_and_ordered(good: JobStore) -> None:
    made = _create(good)
    assert made.created_at == made.updated_at and made.created_at.endswith("+00:00")
    claimed = good.claim_next("w")
    assert claimed.created_at == made.created_at and claimed.updated_at >= made.updated_at


@pytest.mark.parametrize("sql", [
    "UPDATE processing_jobs SET status = 'done'",
    "UPDATE processing_jobs SET updated_at = '2000-01-01T00:00:00.000000+00:00'",
    "UPDATE processing_jobs SET status = 'completed'",    # completed without a result
    "INSERT INTO processing_jobs (task_id, task_type, status, attempts, created_at, updated_at) "
    "SELECT task_id, task_type, status, attempts, created_at, updated_at FROM processing_jobs",
])
def test_schema_refuses_what_the_contract_forbids(good: JobStore, sql: str) -> None:
    _create(good)
    with pytest.raises(IntegrityError), good.engine.begin() as conn:
        conn.execute(text(sql))
    assert check_all(good.snapshot(), []) == []


def test_an_error_mid_operation_rolls_back(good: JobStore) -> None:
    _create(good)
    good.claim_next("w")
    good.faults = FaultController([FaultRule(point="mark_completed.after_update", action="error")])
    with good.faults.operation("mark_completed"), pytest.raises(StorageError):
        good.mark_completed("task-1", {"r": 1})
    job = good.get("task-1")
    assert (job.status, job.result) == ("processing", None)


def test_reopen_keeps_acknowledged_jobs(good: JobStore, make_adapter) -> None:
    _create(good)
    done = good.claim_next("w")
    again = make_adapter(type(good).name, location=good.location)
    assert again.get("task-1").to_dict() == done.to_dict()


# --------------------------------------------------------------------------- legacy deviations


def test_legacy_accepts_invalid_transitions(legacy: JobStore) -> None:
    """Pattern 3: status assignment without a check (what job-transitions-valid catches)."""
    _create(legacy)
    done = legacy.mark_completed("task-1", {"r": 1})          # pending -> completed
    assert (done.status, done.attempts) == ("completed", 0)
    back = legacy.mark_processing("task-1")                   # completed -> processing
    assert (back.status, back.attempts) == ("processing", 1)


def test_legacy_stores_updated_at_null_and_any_status(legacy: JobStore) -> None:
    made = _create(legacy)
    assert made.updated_at is None                            # onupdate without a default
    with legacy.engine.begin() as conn:                       # no CHECK on status
        conn.execute(text("UPDATE processing_jobs SET status = 'done'"))
    assert legacy.get("task-1").status == "done"


def test_legacy_has_no_unique_task_id(legacy: JobStore) -> None:
    _create(legacy)
    with legacy.engine.begin() as conn:
        conn.execute(text("INSERT INTO processing_jobs (task_id, status, attempts) "
                          "VALUES ('task-1', 'pending', 0)"))
    assert len(legacy.snapshot().jobs) == 2


def test_legacy_half_made_transition_after_an_error(legacy: JobStore) -> None:
    """Separate commits: an error between them leaves ``completed`` without a result."""
    _create(legacy)
    legacy.claim_next("w")
    legacy.faults = FaultController([FaultRule(point="mark_completed.after_status_commit",
                                               action="error")])
    with legacy.faults.operation("mark_completed"), pytest.raises(StorageError):
        legacy.mark_completed("task-1", {"r": 1})
    job = legacy.get("task-1")
    assert (job.status, job.result) == ("completed", None)


def _claim_all(name: str, location: str, worker: str, conn: Any) -> None:
    from harness.registry import resolve

    store = resolve(name)(location)
    claimed = []
    try:
        while (job := store.claim_next(worker)) is not None:
            claimed.append(job.task_id)
    finally:
        store.close()
    conn.send(claimed)
    conn.close()


def test_worker_processes_never_claim_one_job_twice(good: JobStore) -> None:
    """``process-safe``: three forked workers drain 30 pending jobs; each job is claimed once."""
    import multiprocessing

    tasks = [f"task-{n:03d}" for n in range(30)]
    for t in tasks:
        _create(good, t)
    ctx = multiprocessing.get_context("fork")
    pipes, procs = [], []
    for w in range(3):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_claim_all, args=(type(good).name, good.location, f"w{w}", child))
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    claimed = [t for p in pipes for t in p.recv()]
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    assert sorted(claimed) == tasks
    snap = good.snapshot()
    assert {j.status for j in snap.jobs} == {"processing"} and check_all(snap, []) == []
