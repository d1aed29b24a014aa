"""The ``jobs`` invariants fire on bad snapshots and histories and stay silent on good ones,
including concurrent histories and operations whose outcome is unknown."""

from __future__ import annotations

from typing import Any

import pytest

from harness.families.jobs.contract import Job, Snapshot
from harness.families.jobs.invariants import (
    INVARIANT_IDS,
    JOB_SINGLE_CLAIM,
    JOB_TIMESTAMPS,
    JOB_TRANSITIONS_VALID,
    JOB_UNIQUE,
    check_all,
    check_single_claim,
    check_timestamps,
    check_transitions_valid,
    check_unique,
    incoherence,
    reachable,
    step_valid,
)
from harness.history import FAIL, INFO, OK, OpRecord
from harness.invariants import STORE_READABLE

T0 = "2026-01-01T00:00:00.000000+00:00"


def ts(n: int) -> str:
    return f"2026-01-01T00:00:{n:02d}.000000+00:00"


def job(status: str = "pending", attempts: int = 0, *, task: str = "task-1", worker: str | None = None,
        result: Any = None, error: str | None = None, created: str = T0,
        updated: str | None = T0) -> dict[str, Any]:
    return Job(task_id=task, task_type="parse", input={"f": "cv.pdf"}, status=status,
               worker_id=worker, result=result, error=error, attempts=attempts,
               created_at=created, updated_at=updated).to_dict()


class H:
    """A history builder: each call takes one time unit unless ``start`` / ``end`` say otherwise."""

    def __init__(self) -> None:
        self.records: list[OpRecord] = []
        self.t = 0.0

    def add(self, op: str, args: dict[str, Any], result: Any = None, status: str = OK,
            start: float | None = None, end: float | None = None) -> OpRecord:
        start = self.t if start is None else start
        end = start + 1 if end is None else end
        self.t = max(self.t, end) + 1
        rec = OpRecord(index=len(self.records), process="p", op=op, args=args, start=start,
                       status=status, end=end, result=result)
        self.records.append(rec)
        return rec


def snap(*jobs: dict[str, Any]) -> Snapshot:
    return Snapshot(jobs=[Job(**j) for j in jobs])


def good_history() -> tuple[Snapshot, list[OpRecord]]:
    h = H()
    h.add("get_or_create", {"task_id": "task-1", "task_type": "parse", "input": {}}, job())
    h.add("claim_next", {"worker_id": "w1"}, job("processing", 1, worker="w1", updated=ts(1)))
    h.add("mark_failed", {"task_id": "task-1", "error": "x"},
          job("failed", 1, worker="w1", error="x", updated=ts(2)))
    h.add("mark_processing", {"task_id": "task-1", "worker_id": "w2"},
          job("processing", 2, worker="w2", error="x", updated=ts(3)))
    h.add("mark_completed", {"task_id": "task-1", "result": {"ok": 1}},
          job("completed", 2, worker="w2", error="x", result={"ok": 1}, updated=ts(4)))
    h.add("mark_processing", {"task_id": "task-1"}, status=FAIL)  # Conflict: not applied
    h.add("claim_next", {"worker_id": "w1"}, None)
    h.add("get", {"task_id": "task-1"},
          job("completed", 2, worker="w2", error="x", result={"ok": 1}, updated=ts(4)))
    final = snap(job("completed", 2, worker="w2", error="x", result={"ok": 1}, updated=ts(4)))
    return final, h.records


def ids(findings) -> set[str]:
    return {f.invariant for f in findings}


# --------------------------------------------------------------------------- the state line


def test_reachable_and_step_valid() -> None:
    assert reachable(("pending", 0), ("completed", 3))
    assert reachable(("processing", 1), ("failed", 1))
    assert reachable(("failed", 1), ("completed", 2))
    assert not reachable(("completed", 1), ("processing", 2))
    assert not reachable(("processing", 1), ("pending", 0))
    assert not reachable(("failed", 2), ("failed", 1))
    assert not reachable(("processing", 2), ("completed", 1))
    assert step_valid("claim_next", ("pending", 0), ("processing", 1))
    assert step_valid("mark_processing", ("failed", 1), ("processing", 2))
    assert not step_valid("mark_processing", ("processing", 1), ("processing", 2))
    assert not step_valid("mark_completed", ("pending", 0), ("completed", 0))
    assert not step_valid("claim_next", ("failed", 1), ("processing", 2))
    assert incoherence(job("completed", 1)) == "completed without a result"
    assert incoherence(job("processing", 0)) is not None
    assert incoherence(job("pending", 0, worker="w")) is not None
    assert incoherence(job("failed", 1, error="e")) is None


def test_good_history_is_silent() -> None:
    final, history = good_history()
    assert check_all(final, history) == []


# --------------------------------------------------------------------------- transitions


def test_transition_from_the_wrong_status_fires() -> None:
    h = H()
    h.add("get_or_create", {"task_id": "task-1"}, job())
    h.add("mark_processing", {"task_id": "task-1"}, job("processing", 1))
    h.add("mark_processing", {"task_id": "task-1"}, job("processing", 2, updated=ts(2)))
    findings = check_transitions_valid(snap(job("processing", 2, updated=ts(2))), h.records)
    assert findings and findings[0].invariant == JOB_TRANSITIONS_VALID
    assert "acknowledged mark_processing (#2)" in findings[0].message
    assert findings[0].ops == [1, 2]


def test_completed_is_terminal_in_the_final_snapshot() -> None:
    h = H()
    h.add("get_or_create", {"task_id": "task-1"}, job())
    h.add("claim_next", {"worker_id": "w"}, job("processing", 1, worker="w"))
    h.add("mark_completed", {"task_id": "task-1", "result": 1}, job("completed", 1, worker="w", result=1))
    findings = check_transitions_valid(snap(job("failed", 1, worker="w", result=1, error="e")), h.records)
    assert any("no valid path" in f.message and "final snapshot" in f.message for f in findings)


def test_half_made_state_fires() -> None:
    findings = check_transitions_valid(snap(job("completed", 1, worker="w")), [])
    assert [f.message for f in findings] == [
        "task 'task-1' in the final snapshot: completed without a result"]
    assert check_transitions_valid(snap(job("processing", 0)), [])


def test_two_exits_of_one_attempt_fire_even_when_concurrent() -> None:
    h = H()
    h.add("get_or_create", {"task_id": "task-1"}, job())
    h.add("claim_next", {"worker_id": "w"}, job("processing", 1, worker="w"))
    h.add("mark_completed", {"task_id": "task-1"}, job("completed", 1, result=1, worker="w"),
          start=10, end=13)
    h.add("mark_failed", {"task_id": "task-1"}, job("failed", 1, error="e", worker="w"),
          start=11, end=12)
    findings = check_transitions_valid(snap(job("completed", 1, result=1, worker="w")), h.records)
    assert any("attempt 1 left processing 2 times" in f.message for f in findings)


def test_concurrent_and_unknown_operations_are_not_false_alarms() -> None:
    h = H()
    h.add("get_or_create", {"task_id": "task-1"}, job())
    # outcome unknown: it may have moved the job to processing
    h.add("mark_processing", {"task_id": "task-1"}, status=INFO)
    h.add("mark_completed", {"task_id": "task-1", "result": 1}, job("completed", 1, result=1))
    # a read overlapping a write may see either state
    h.add("mark_processing", {"task_id": "task-2"}, status=FAIL)
    assert check_transitions_valid(snap(job("completed", 1, result=1)), h.records) == []
    h2 = H()
    h2.add("get_or_create", {"task_id": "task-1"}, job())
    h2.add("claim_next", {"worker_id": "w"}, job("processing", 1, worker="w"), start=5, end=9)
    h2.add("get", {"task_id": "task-1"}, job(), start=6, end=7)  # read before the claim applied
    assert check_all(snap(job("processing", 1, worker="w")), h2.records) == []


def test_unknown_claim_makes_the_predecessor_ambiguous() -> None:
    h = H()
    h.add("get_or_create", {"task_id": "task-1"}, job())
    h.add("claim_next", {"worker_id": "w"}, status=INFO)  # may have claimed task-1
    h.add("mark_failed", {"task_id": "task-1", "error": "e"}, job("failed", 1, worker="w", error="e"))
    assert check_transitions_valid(snap(job("failed", 1, worker="w", error="e")), h.records) == []


# --------------------------------------------------------------------------- unique


def test_duplicate_rows_fire_job_unique() -> None:
    h = H()
    h.add("get_or_create", {"task_id": "task-1"}, job(created=ts(1), updated=ts(1)), start=0, end=3)
    h.add("get_or_create", {"task_id": "task-1"}, job(created=ts(2), updated=ts(2)), start=1, end=2)
    final = snap(job(created=ts(1), updated=ts(1)), job(created=ts(2), updated=ts(2)))
    findings = check_unique(final, h.records)
    assert [f.invariant for f in findings] == [JOB_UNIQUE, JOB_UNIQUE]
    assert "stored 2 times" in findings[0].message
    assert "returned 2 different jobs" in findings[1].message
    # the duplicates are not misread as bad transitions
    assert check_transitions_valid(final, h.records) == []


def test_same_job_returned_twice_is_unique() -> None:
    h = H()
    h.add("get_or_create", {"task_id": "task-1"}, job(), start=0, end=3)
    h.add("get_or_create", {"task_id": "task-1"}, job(), start=1, end=2)
    assert check_unique(snap(job()), h.records) == []


# --------------------------------------------------------------------------- single claim


def test_two_claims_of_one_job_fire() -> None:
    h = H()
    h.add("get_or_create", {"task_id": "task-1"}, job())
    h.add("claim_next", {"worker_id": "w1"}, job("processing", 1, worker="w1"), start=10, end=14)
    h.add("claim_next", {"worker_id": "w2"}, job("processing", 1, worker="w2"), start=11, end=13)
    findings = check_single_claim(snap(job("processing", 1, worker="w2")), h.records)
    assert [f.invariant for f in findings] == [JOB_SINGLE_CLAIM]
    assert "'w1'" in findings[0].message and "'w2'" in findings[0].message


def test_two_entries_of_one_attempt_fire() -> None:
    h = H()
    h.add("mark_processing", {"task_id": "task-1"}, job("processing", 2, error="e"), start=0, end=3)
    h.add("mark_processing", {"task_id": "task-1"}, job("processing", 2, error="e"), start=1, end=2)
    findings = check_single_claim(snap(job("processing", 2, error="e")), h.records)
    assert findings and "attempt 2 entered processing 2 times" in findings[0].message


def test_claim_and_empty_claim_are_single() -> None:
    h = H()
    h.add("get_or_create", {"task_id": "task-1"}, job())
    h.add("claim_next", {"worker_id": "w1"}, job("processing", 1, worker="w1"), start=10, end=14)
    h.add("claim_next", {"worker_id": "w2"}, None, start=11, end=13)
    h.add("mark_failed", {"task_id": "task-1"}, job("failed", 1, worker="w1", error="e"))
    h.add("mark_processing", {"task_id": "task-1"}, job("processing", 2, worker="w1", error="e"))
    assert check_single_claim(snap(job("processing", 2, worker="w1", error="e")), h.records) == []


# --------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(("bad", "text"), [
    (job(status="done"), "status 'done' is not one of"),
    (job(updated=None), "updated_at None is not a timestamp"),
    (job(created="yesterday"), "created_at 'yesterday' is not a timestamp"),
    (job(created=ts(5), updated=ts(4)), "is after updated_at"),
])
def test_bad_timestamps_or_status_fire(bad: dict[str, Any], text: str) -> None:
    findings = check_timestamps(snap(bad), [])
    assert len(findings) == 1 and findings[0].invariant == JOB_TIMESTAMPS
    assert text in findings[0].message


def test_timestamps_may_not_go_back_or_change() -> None:
    h = H()
    h.add("get_or_create", {"task_id": "task-1"}, job())
    h.add("claim_next", {"worker_id": "w"}, job("processing", 1, worker="w", updated=ts(5)))
    back = check_timestamps(snap(job("processing", 1, worker="w", updated=ts(3))), h.records)
    assert back and "updated_at went back" in back[0].message
    moved = check_timestamps(snap(job("processing", 1, worker="w", created=ts(1), updated=ts(5))),
                             h.records)
    assert moved and "created_at changed" in moved[0].message
    assert check_timestamps(snap(job("processing", 1, worker="w", updated=ts(5))), h.records) == []


def test_naive_and_aware_timestamps_compare() -> None:
    naive = job(created="2026-01-01T00:00:00.000000", updated="2026-01-01T00:00:01.000000")
    assert check_timestamps(snap(naive), []) == []


# --------------------------------------------------------------------------- check_all


def test_check_all_without_a_snapshot_is_store_readable_only() -> None:
    findings = check_all(None, [], snapshot_error="OperationalError: file is not a database")
    assert [f.invariant for f in findings] == [STORE_READABLE]
    assert check_all(None, [], only=[JOB_UNIQUE]) == []


def test_check_all_only_selects() -> None:
    bad = snap(job(status="done"), job(status="done"))
    assert ids(check_all(bad, [])) == {JOB_TIMESTAMPS, JOB_UNIQUE}
    assert ids(check_all(bad, [], only=[JOB_UNIQUE])) == {JOB_UNIQUE}
    assert set(INVARIANT_IDS) == {JOB_TRANSITIONS_VALID, JOB_UNIQUE, JOB_SINGLE_CLAIM,
                                  JOB_TIMESTAMPS, STORE_READABLE}
