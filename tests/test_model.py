"""The reference model's own promises beyond the conformance suite: snapshots in and out,
no aliasing, thread safety, tie-breaks that need hand-made timestamps, duplicate ids."""

from __future__ import annotations

import threading

import pytest
from builders import improved_resume_data, valid_resume_data

from harness.contract import ATOMIC, THREAD_SAFE, Conflict, InvalidData, Resume, Snapshot
from harness.model import ReferenceModel


def resume(rid: str, created_at: str, **kw) -> Resume:
    return Resume(resume_id=rid, content=rid, created_at=created_at, updated_at=created_at, **kw)


def test_identity():
    assert ReferenceModel.name == "reference-model"
    assert ReferenceModel.guarantees == frozenset({ATOMIC, THREAD_SAFE})
    assert ReferenceModel.all_fault_points() == []


def test_from_snapshot_and_snapshot_round_trip_without_aliasing():
    model = ReferenceModel()
    model.upload_resume("a", processed_data=valid_resume_data(), resume_id="a")
    model.create_job("job", ["k"], job_id="j")
    model.record_preview("j", "p", "h")
    model.confirm_improvement("a", "j", "p", "h", improved_resume_data(), [{"x": 1}],
                              tailored_resume_id="t", request_id="q")
    snap = model.snapshot()
    copy = ReferenceModel.from_snapshot(snap)
    assert copy.snapshot() == snap
    snap.resumes["a"].processed_data["summary"] = "mutated"  # the snapshot is a copy ...
    snap.jobs["j"].preview_hashes.clear()
    assert model.snapshot().resumes["a"].processed_data["summary"] != "mutated"
    assert copy.snapshot().jobs["j"].preview_hashes == {"p": "h"}  # ... and so is from_snapshot's
    assert model.snapshot() == copy.snapshot()


def test_inputs_and_results_are_not_aliased():
    model = ReferenceModel()
    data = valid_resume_data()
    keywords = ["python"]
    r = model.upload_resume("a", processed_data=data, resume_id="a")
    job = model.create_job("job", keywords, job_id="j")
    data["summary"] = "changed by the caller"
    keywords.append("sql")
    r.processed_data["summary"] = "changed via the result"
    job.preview_hashes["p"] = "h"
    assert model.get_resume("a").processed_data == valid_resume_data()
    assert model.get_job("j").job_keywords == ["python"] and model.get_job("j").preview_hashes == {}


def test_promotion_breaks_created_at_ties_by_id_and_skips_tailored():
    ts = "2024-01-01T00:00:00.000000+00:00"
    later = "2024-01-02T00:00:00.000000+00:00"
    snap = Snapshot(resumes={
        "m": resume("m", ts, is_master=True),
        "t": resume("t", ts, parent_id="z"),  # tailored, oldest by id: never promoted
        "z": resume("z", ts),
        "y": resume("y", ts),
        "a": resume("a", later),
    })
    model = ReferenceModel.from_snapshot(snap)
    model.delete_resume("m")
    assert [r.resume_id for r in model.snapshot().masters()] == ["y"]
    model.delete_resume("y")
    assert [r.resume_id for r in model.snapshot().masters()] == ["z"]
    model.delete_resume("z")  # takes its tailored child t with it
    assert set(model.snapshot().resumes) == {"a"} and model.get_resume("a").is_master


def test_deleting_a_non_master_never_promotes():
    ts = "2024-01-01T00:00:00.000000+00:00"
    model = ReferenceModel.from_snapshot(Snapshot(resumes={"a": resume("a", ts), "b": resume("b", ts)}))
    model.delete_resume("a")  # a store with no master stays without (the invariant reports it)
    assert model.snapshot().masters() == []


def test_duplicate_ids_are_conflicts():
    model = ReferenceModel()
    model.upload_resume("a", resume_id="a")
    model.create_job("job", job_id="j")
    model.record_preview("j", "p", "h")
    model.confirm_improvement("a", "j", "p", "h", improved_resume_data(), [],
                              tailored_resume_id="t", request_id="q")
    before = model.snapshot()
    with pytest.raises(Conflict):
        model.upload_resume("again", resume_id="a")
    with pytest.raises(Conflict):
        model.create_job("again", job_id="j")
    with pytest.raises(Conflict):
        model.confirm_improvement("a", "j", "p", "h", improved_resume_data(), [],
                                  tailored_resume_id="a", request_id="q2")
    with pytest.raises(Conflict):
        model.confirm_improvement("a", "j", "p", "h", improved_resume_data(), [],
                                  tailored_resume_id="t2", request_id="q")
    assert model.snapshot() == before


def test_concurrent_operations_lose_nothing():
    model = ReferenceModel()
    model.create_job("job", job_id="j")
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        barrier.wait()
        for k in range(25):
            model.record_preview("j", f"p{i}-{k}", f"h{i}-{k}")
            model.upload_resume(f"r{i}-{k}", resume_id=f"r{i}-{k}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = model.snapshot()
    assert len(snap.jobs["j"].preview_hashes) == 200 and len(snap.resumes) == 200
    assert len(snap.masters()) == 1


def test_confirm_requires_improved_data():
    model = ReferenceModel()
    model.upload_resume("a", resume_id="a")
    model.create_job("job", job_id="j")
    model.record_preview("j", "p", "h")
    with pytest.raises(InvalidData) as exc:
        model.confirm_improvement("a", "j", "p", "h", None, [])  # type: ignore[arg-type]
    assert exc.value.field == "improved_data"
    assert len(model.snapshot().resumes) == 1


def test_upload_becomes_master_iff_no_master_exists():
    ts = "2024-01-01T00:00:00.000000+00:00"
    model = ReferenceModel.from_snapshot(Snapshot(resumes={"a": resume("a", ts)}))  # no master
    assert model.upload_resume("b", resume_id="b").is_master
    assert not model.upload_resume("c", resume_id="c").is_master
    assert [r.resume_id for r in model.snapshot().masters()] == ["b"]
