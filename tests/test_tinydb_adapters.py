"""The two TinyDB adapters: legacy reproduces the audited bugs, locked fixes what it claims.

Faults are injected with real rules through the recording client (so automatic ``write#k``
points get the operation name), races use real threads, crashes a real forked child.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from adapters.tinydb_legacy import TinyDBLegacyAdapter
from adapters.tinydb_locked import TinyDBLockedAdapter
from harness.client import RecordingClient
from harness.contract import Snapshot, StorageAdapter
from harness.faults import CRASH_EXIT_CODE, FaultController, FaultRule
from harness.history import FAIL, INFO, OK
from harness.schema import is_valid_resume_data

VALID = {"personalInfo": {"name": "Ada Lovelace"}, "summary": "Analyst"}
INVALID = {"personalInfo": {"title": "no name"}}
CLASSES = {"tinydb-legacy": TinyDBLegacyAdapter, "tinydb-locked": TinyDBLockedAdapter}


# --------------------------------------------------------------------------- helpers


def problems(snap: Snapshot) -> list[str]:
    """Invariant checks over a snapshot (one-master, no-orphans, references, valid data)."""
    out: list[str] = []
    masters = snap.masters()
    if len(masters) > 1 or (not masters and any(not r.is_tailored for r in snap.resumes.values())):
        out.append(f"{len(masters)} masters")
    for imp in snap.improvements.values():
        for rid in (imp.original_resume_id, imp.tailored_resume_id):
            if rid not in snap.resumes:
                out.append(f"improvement {imp.request_id} -> missing resume {rid}")
        if imp.job_id not in snap.jobs:
            out.append(f"improvement {imp.request_id} -> missing job {imp.job_id}")
    for r in snap.resumes.values():
        if r.parent_id is not None and r.parent_id not in snap.resumes:
            out.append(f"resume {r.resume_id} -> missing parent {r.parent_id}")
        if r.is_tailored:
            n = sum(i.tailored_resume_id == r.resume_id for i in snap.improvements.values())
            if n != 1:
                out.append(f"tailored {r.resume_id} has {n} improvements")
        if r.processed_data is not None and not is_valid_resume_data(r.processed_data):
            out.append(f"resume {r.resume_id} has invalid data")
    return out


def seed(client: RecordingClient) -> None:
    """r1 (master), r2, job j1, tailored t1 from r1 and t2 from t1 (with improvements q1, q2)."""
    calls = [
        ("upload_resume", dict(content="# Ada", processed_data=VALID, resume_id="r1")),
        ("upload_resume", dict(content="# Bob", filename="bob.md", resume_id="r2")),
        ("create_job", dict(content="Engineer", job_keywords=["python"], job_id="j1")),
        ("record_preview", dict(job_id="j1", prompt_id="p1", preview_hash="h1")),
        ("confirm_improvement", dict(resume_id="r1", job_id="j1", prompt_id="p1", preview_hash="h1",
                                     improved_data=VALID, improvements=[{"s": 1}],
                                     tailored_resume_id="t1", request_id="q1")),
        ("record_preview", dict(job_id="j1", prompt_id="p2", preview_hash="h2")),
        ("confirm_improvement", dict(resume_id="t1", job_id="j1", prompt_id="p2", preview_hash="h2",
                                     improved_data=VALID, improvements=[], tailored_resume_id="t2",
                                     request_id="q2")),
    ]
    for op, args in calls:
        rec = client.call(op, **args)
        assert rec.status == OK, (op, rec.error)


#: One operation per multi-step flow, run on a seeded store: (setup calls, the call).
CASES = {
    "set_master": ([], ("set_master", dict(resume_id="r2"))),
    "confirm_improvement": (
        [("record_preview", dict(job_id="j1", prompt_id="p3", preview_hash="h3"))],
        ("confirm_improvement", dict(resume_id="r2", job_id="j1", prompt_id="p3", preview_hash="h3",
                                     improved_data=VALID, improvements=[{"k": "v"}],
                                     tailored_resume_id="t3", request_id="q3"))),
    "delete_resume": ([], ("delete_resume", dict(resume_id="r1"))),
    "upload_resume": ([], ("upload_resume", dict(content="# Cy", processed_data=VALID,
                                                  resume_id="r3"))),
}


def prepared(make_adapter, name: str, case: str, faults: FaultController | None = None):
    """An adapter seeded for ``case``, its client, and the call to make."""
    adapter = make_adapter(name, faults=faults)
    client = RecordingClient(adapter)
    seed(client)
    setup, call = CASES[case]
    for op, args in setup:
        assert client.call(op, **args).status == OK
    return adapter, client, call


def points_of(make_adapter, name: str, case: str) -> list[str]:
    """Every point (named and write#k) the case's operation passes when no fault fires."""
    ctrl = FaultController(tracing=True)
    adapter, client, (op, args) = prepared(make_adapter, name, case, ctrl)
    ctrl.trace.clear()
    assert client.call(op, **args).status == OK
    return [p for p in ctrl.trace if p.startswith(f"{op}.")]


def run_with(make_adapter, name: str, case: str, *rules: FaultRule):
    ctrl = FaultController()
    adapter, client, (op, args) = prepared(make_adapter, name, case, ctrl)
    before = adapter.snapshot()
    for rule in rules:
        ctrl.arm(rule)
    rec = client.call(op, **args)
    return adapter, rec, before, adapter.snapshot()


def preview_race(adapters: list[StorageAdapter], ctrl: FaultController) -> dict[str, str]:
    """Two threads record previews for different prompts of one job, the read-write window of
    each widened by a delay; returns the hashes stored afterwards."""
    adapters[0].create_job(content="Engineer", job_id="j")
    ctrl.arm(FaultRule("record_preview.after_read", "delay", count=None, delay_s=0.25))
    results = []

    def preview(adapter: StorageAdapter, prompt: str) -> None:
        results.append(RecordingClient(adapter).call(
            "record_preview", job_id="j", prompt_id=prompt, preview_hash=f"hash-{prompt}"))

    threads = [threading.Thread(target=preview, args=(adapters[i % len(adapters)], p))
               for i, p in enumerate(("a", "b"))]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join(10)
    assert [r.status for r in results] == [OK, OK]
    return adapters[0].snapshot().jobs["j"].preview_hashes


def in_child(location: str, rule: FaultRule, op: str, **args) -> int:
    """Run one operation of ``tinydb-locked`` in a forked child armed with ``rule``; its exit code."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns into pytest
        code = 0
        try:
            ctrl = FaultController(rules=[rule], crash_exits=True)
            RecordingClient(TinyDBLockedAdapter(location, ctrl)).call(op, **args)
        except BaseException:  # noqa: BLE001 - anything here is a test failure in the parent
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


# --------------------------------------------------------------------------- both


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_listed_fault_points_are_the_ones_passed(make_adapter, name):
    ctrl = FaultController(tracing=True)
    adapter = make_adapter(name, faults=ctrl)
    client = RecordingClient(adapter)
    seed(client)
    for op, args in [("update_resume", dict(resume_id="r2", fields={"filename": "b.md"})),
                     ("save_cover_letter", dict(resume_id="r2", text="Dear")),
                     ("save_outreach_message", dict(resume_id="r2", text="Hi")),
                     ("set_master", dict(resume_id="r2")), ("set_master", dict(resume_id="r1")),
                     ("delete_resume", dict(resume_id="r1"))]:
        assert client.call(op, **args).status == OK
    named = [p for p in ctrl.trace if "#" not in p]
    assert set(named) == set(adapter.all_fault_points())
    for op, listed in adapter.fault_points.items():
        passed = [p for p in dict.fromkeys(named) if p.startswith(f"{op}.")]
        assert passed == list(listed)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_happy_path_returns_what_is_stored(make_adapter, name):
    adapter = make_adapter(name)
    client = RecordingClient(adapter)
    seed(client)
    snap = adapter.snapshot()
    assert problems(snap) == []
    assert [r.resume_id for r in adapter.list_resumes()] == ["r1", "r2", "t1", "t2"]
    assert snap.resumes["t2"].parent_id == "t1" and snap.resumes["t2"].content == "# Ada"
    assert snap.jobs["j1"].preview_hashes == {"p1": "h1", "p2": "h2"}
    assert adapter.get_improvement_by_tailored_resume("t1").request_id == "q1"
    updated = adapter.update_resume("r2", {"processed_data": VALID})
    assert updated == adapter.get_resume("r2") and updated.processing_status == "completed"
    adapter.reset()
    assert adapter.snapshot() == Snapshot()


# --------------------------------------------------------------------------- legacy


@pytest.mark.parametrize("point", ["set_master.after_unset_old", "set_master.write#2"])
def test_legacy_set_master_error_between_writes_leaves_no_master(make_adapter, point):
    _, rec, _, after = run_with(make_adapter, "tinydb-legacy", "set_master", FaultRule(point, "error"))
    assert rec.status == INFO
    assert after.masters() == []


def test_legacy_confirm_error_leaves_tailored_resume_without_improvement(make_adapter):
    _, rec, _, after = run_with(make_adapter, "tinydb-legacy", "confirm_improvement",
                                FaultRule("confirm_improvement.after_tailored_insert", "error"))
    assert rec.status == INFO
    assert "t3" in after.resumes and "q3" not in after.improvements
    assert "tailored t3 has 0 improvements" in problems(after)


def test_legacy_missing_ids_are_silent_successes(make_adapter):
    adapter = make_adapter("tinydb-legacy")
    client = RecordingClient(adapter)
    seed(client)
    for op, args in [("record_preview", dict(job_id="nope", prompt_id="p", preview_hash="h")),
                     ("update_resume", dict(resume_id="nope", fields={"filename": "x"})),
                     ("save_cover_letter", dict(resume_id="nope", text="Dear")),
                     ("save_outreach_message", dict(resume_id="nope", text="Hi")),
                     ("delete_resume", dict(resume_id="nope"))]:
        assert client.call(op, **args).status == OK, op
    assert client.call("get_resume", resume_id="nope").status == FAIL
    snap = adapter.snapshot()
    assert "nope" not in snap.resumes and "nope" not in snap.jobs
    assert client.call("set_master", resume_id="nope").status == OK
    assert adapter.snapshot().masters() == []


def test_legacy_stores_invalid_data(make_adapter):
    adapter = make_adapter("tinydb-legacy")
    client = RecordingClient(adapter)
    seed(client)
    assert client.call("upload_resume", content="x", processed_data=INVALID, resume_id="bad").status == OK
    assert client.call("update_resume", resume_id="r2",
                       fields={"processed_data": {"oops": 1}, "is_master": True}).status == OK
    assert client.call("record_preview", job_id="j1", prompt_id="p9", preview_hash="h9").status == OK
    assert client.call("confirm_improvement", resume_id="r2", job_id="j1", prompt_id="p9",
                       preview_hash="h9", improved_data=INVALID, improvements=[],
                       tailored_resume_id="t9").status == OK
    snap = adapter.snapshot()
    assert snap.resumes["bad"].processed_data == INVALID
    assert snap.resumes["t9"].processed_data == INVALID
    assert len(snap.masters()) == 2  # update_resume let is_master through
    assert any("invalid data" in p for p in problems(snap))


def test_legacy_delete_neither_cascades_nor_promotes(make_adapter):
    adapter = make_adapter("tinydb-legacy")
    client = RecordingClient(adapter)
    seed(client)
    assert client.call("delete_resume", resume_id="r1").status == OK
    snap = adapter.snapshot()
    assert snap.masters() == []
    assert {"t1", "t2"} <= set(snap.resumes) and {"q1", "q2"} == set(snap.improvements)
    assert "resume t1 -> missing parent r1" in problems(snap)


def test_legacy_concurrent_previews_lose_a_hash(make_adapter):
    ctrl = FaultController()
    hashes = preview_race([make_adapter("tinydb-legacy", faults=ctrl)], ctrl)
    assert len(hashes) == 1


# --------------------------------------------------------------------------- locked


@pytest.mark.parametrize("case,point", [
    ("set_master", "set_master.after_unset_old"),
    ("set_master", "set_master.write#2"),
    ("confirm_improvement", "confirm_improvement.after_tailored_insert"),
])
def test_locked_error_between_writes_is_rolled_back(make_adapter, case, point):
    _, rec, before, after = run_with(make_adapter, "tinydb-locked", case, FaultRule(point, "error"))
    assert rec.status == INFO
    assert after == before
    assert len(after.masters()) == 1 and problems(after) == []


@pytest.mark.parametrize("case", sorted(CASES))
def test_locked_error_at_every_point_leaves_store_unchanged(make_adapter, case):
    points = points_of(make_adapter, "tinydb-locked", case)
    assert any("#" in p for p in points) and any("#" not in p for p in points)
    for point in points:
        _, rec, before, after = run_with(make_adapter, "tinydb-locked", case,
                                         FaultRule(point, "error"))
        assert rec.status == INFO, point
        assert after == before, point
        assert problems(after) == [], point


def test_locked_rollback_survives_errors_in_its_own_writes(make_adapter):
    # write#3 fails (the delete's 3rd step), then the rollback's first two writes fail too.
    _, rec, before, after = run_with(make_adapter, "tinydb-locked", "delete_resume",
                                     FaultRule("delete_resume.write#*", "error", after=2, count=3))
    assert rec.status == INFO
    assert after == before and problems(after) == []


def test_locked_contract_errors(make_adapter):
    adapter = make_adapter("tinydb-locked")
    client = RecordingClient(adapter)
    seed(client)
    before = adapter.snapshot()
    fails = [("get_resume", dict(resume_id="nope")), ("get_job", dict(job_id="nope")),
             ("update_resume", dict(resume_id="nope", fields={"filename": "x"})),
             ("update_resume", dict(resume_id="r2", fields={"is_master": True})),
             ("update_resume", dict(resume_id="r2", fields={"processed_data": INVALID})),
             ("upload_resume", dict(content="x", processed_data=INVALID)),
             ("set_master", dict(resume_id="nope")), ("delete_resume", dict(resume_id="nope")),
             ("save_cover_letter", dict(resume_id="nope", text="x")),
             ("save_outreach_message", dict(resume_id="nope", text="x")),
             ("record_preview", dict(job_id="nope", prompt_id="p", preview_hash="h")),
             ("get_improvement_by_tailored_resume", dict(tailored_resume_id="r1")),
             ("confirm_improvement", dict(resume_id="r2", job_id="j1", prompt_id="p1",
                                          preview_hash="wrong", improved_data=VALID, improvements=[])),
             ("confirm_improvement", dict(resume_id="r2", job_id="j1", prompt_id="p1",
                                          preview_hash="h1", improved_data=INVALID, improvements=[]))]
    for op, args in fails:
        rec = client.call(op, **args)
        assert rec.status == FAIL, (op, args, rec.error)
    assert adapter.snapshot() == before
    errors = [r.error_type for r in client.history.records[-len(fails):]]
    assert errors[-2:] == ["Conflict", "InvalidData"]


def test_locked_delete_cascades_and_promotes_the_oldest(make_adapter):
    adapter = make_adapter("tinydb-locked")
    client = RecordingClient(adapter)
    seed(client)
    assert client.call("upload_resume", content="# Cy", resume_id="r3").status == OK
    assert client.call("delete_resume", resume_id="r1").status == OK
    snap = adapter.snapshot()
    assert set(snap.resumes) == {"r2", "r3"} and snap.improvements == {}
    assert [m.resume_id for m in snap.masters()] == ["r2"]
    assert problems(snap) == []


def test_locked_concurrent_previews_keep_both_hashes(make_adapter):
    ctrl = FaultController()
    first = make_adapter("tinydb-locked", faults=ctrl)
    second = make_adapter("tinydb-locked", faults=ctrl, location=first.location)
    for adapters in ([first], [first, second]):  # one instance; two instances on one file
        first.reset()
        assert preview_race(adapters, ctrl) == {"a": "hash-a", "b": "hash-b"}
        ctrl.clear()


def test_locked_crash_between_writes_leaves_no_master(make_adapter):
    adapter = make_adapter("tinydb-locked")
    seed(RecordingClient(adapter))
    adapter.close()
    code = in_child(adapter.location, FaultRule("set_master.after_unset_old", "crash"),
                    "set_master", resume_id="r2")
    assert code == CRASH_EXIT_CODE
    after = make_adapter("tinydb-locked", location=adapter.location).snapshot()
    assert after.masters() == [] and "0 masters" in problems(after)


def test_locked_torn_write_leaves_an_unreadable_file(make_adapter):
    adapter = make_adapter("tinydb-locked")
    adapter.close()
    code = in_child(adapter.location, FaultRule("upload_resume.write#1", "torn-write"),
                    "upload_resume", content="# Ada", resume_id="r1")
    assert code == CRASH_EXIT_CODE
    with pytest.raises(ValueError):  # json.JSONDecodeError
        make_adapter("tinydb-locked", location=adapter.location).snapshot()
