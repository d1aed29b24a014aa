"""Unit tests of the invariants (harness/invariants.py, DESIGN section 5) on hand-built snapshots
and histories: each check fires on a broken case, naming the offending ids and ops, and stays
silent on the matching good one, including the real-time rules for concurrent histories."""

from __future__ import annotations

import hashlib
import json

import pytest
from builders import INVALID_RESUME_DATA, valid_resume_data
from snapshots import FAIL, INFO, OK, PENDING, Hist, improvement, job, resume, snap, tailored

from harness.contract import Snapshot
from harness.invariants import (
    ACKED_WRITES_DURABLE,
    HONEST_RESULTS,
    INVARIANT_IDS,
    INVARIANTS,
    NO_LOST_PREVIEW_HASHES,
    NO_ORPHAN_IMPROVEMENTS,
    ONE_MASTER,
    REFERENTIAL_INTEGRITY,
    STORE_READABLE,
    VALID_DATA,
    Finding,
    check_acked_writes_durable,
    check_all,
    check_honest_results,
    check_no_lost_preview_hashes,
    check_no_orphan_improvements,
    check_one_master,
    check_referential_integrity,
    check_store_readable,
    check_valid_data,
    digest,
)


def one(findings: list[Finding], invariant: str) -> Finding:
    """The only finding, which must be of ``invariant``."""
    assert len(findings) == 1, findings
    assert findings[0].invariant == invariant
    return findings[0]


def fires_or_silent(findings: list[Finding], expected_ops: list[int] | None, invariant: str,
                    ids: list[str], text: str) -> None:
    if expected_ops is None:
        assert findings == []
    else:
        f = one(findings, invariant)
        assert (f.ids, f.ops) == (ids, expected_ops)
        assert text in f.message


def with_improvement() -> tuple[Hist, list]:
    """Original A (master), job J with a preview, and A tailored to T by request q: the history
    and the records a correct store holds after it."""
    h = Hist()
    h.upload("A", 0)
    h.create_job("J", 2)
    h.preview("J", "p1", "h1", 4)
    h.confirm("A", "J", "T", "q", 6, value="h1")
    return h, [resume("A", master=True), job("J", {"p1": "h1"}), tailored("T", "A", content="text of A"),
               improvement("q", "A", "T", "J")]


def without(records: list, ident: str) -> list:
    """``records`` less the resume, job or improvement whose own id is ``ident``."""
    return [r for r in records
            if (getattr(r, "resume_id", None) or getattr(r, "request_id", None) or r.job_id) != ident]


# --------------------------------------------------------------------------- one-master


def test_one_master_fires_on_two_masters():
    f = one(check_one_master(snap(resume("B", master=True), resume("A", master=True), resume("C"))),
            ONE_MASTER)
    assert f.ids == ["A", "B"] and f.ops == []
    assert f.message == "2 masters: A, B"


def test_one_master_fires_when_no_original_is_master():
    f = one(check_one_master(snap(resume("B"), resume("A"), tailored("T", "A"))), ONE_MASTER)
    assert f.ids == ["A", "B"]  # tailored resumes do not need a master
    assert f.message == "no master among 2 resumes (A, B)"


def test_one_master_message_shows_five_ids_but_ids_lists_all():
    f = one(check_one_master(snap(*(resume(f"r{i}") for i in range(7)))), ONE_MASTER)
    assert f.ids == [f"r{i}" for i in range(7)]
    assert "r4" in f.message and "r5" not in f.message and "…" in f.message


@pytest.mark.parametrize("records", [
    pytest.param([], id="empty"),
    pytest.param([resume("A", master=True)], id="single-master"),
    pytest.param([resume("A"), resume("B", master=True), tailored("T", "B")], id="master-others"),
    pytest.param([tailored("T", "A")], id="only-tailored"),
])
def test_one_master_silent(records):
    assert check_one_master(snap(*records)) == []


# --------------------------------------------------------------------------- no-orphan-improvements


@pytest.mark.parametrize(("drop", "what"), [
    ("A", "original resume A"), ("T", "tailored resume T"), ("J", "job J")])
def test_no_orphan_fires_on_improvement_pointing_at_missing(drop, what):
    _, records = with_improvement()
    kept = without(records, drop)
    f = one(check_no_orphan_improvements(snap(*kept)), NO_ORPHAN_IMPROVEMENTS)
    assert f.ids == ["q"]
    assert f.message == f"improvement q points at missing {what}"


def test_no_orphan_fires_on_tailored_resume_without_improvement():
    f = one(check_no_orphan_improvements(snap(resume("A", master=True), tailored("T", "A"))),
            NO_ORPHAN_IMPROVEMENTS)
    assert f.ids == ["T"] and f.message == "tailored resume T has no improvement record"


def test_no_orphan_fires_on_tailored_resume_with_two_improvements():
    _, records = with_improvement()
    f = one(check_no_orphan_improvements(snap(*records, improvement("q2", "A", "T", "J"))),
            NO_ORPHAN_IMPROVEMENTS)
    assert f.ids == ["T", "q", "q2"] and f.message == "tailored resume T has 2 improvement records"


def test_no_orphan_silent_on_consistent_store():
    _, records = with_improvement()
    assert check_no_orphan_improvements(snap(*records, resume("B"))) == []
    assert check_no_orphan_improvements(Snapshot()) == []


# --------------------------------------------------------------------------- referential-integrity


def test_referential_integrity_fires_on_missing_parent():
    f = one(check_referential_integrity(snap(resume("A", master=True), tailored("T", "X"))),
            REFERENTIAL_INTEGRITY)
    assert f.ids == ["T", "X"] and f.message == "resume T has missing parent X"


def test_referential_integrity_fires_when_original_is_not_the_parent():
    _, records = with_improvement()
    records[-1] = improvement("q", "B", "T", "J")
    f = one(check_referential_integrity(snap(*records, resume("B"))), REFERENTIAL_INTEGRITY)
    assert f.ids == ["q", "T"]
    assert f.message == "improvement q: original B is not the parent (A) of T"


@pytest.mark.parametrize(("drop", "what"), [
    ("A", "original resume A"), ("T", "tailored resume T"), ("J", "job J")])
def test_referential_integrity_fires_on_missing_reference(drop, what):
    _, records = with_improvement()
    kept = without(records, drop)
    found = check_referential_integrity(snap(*kept))
    assert {f.invariant for f in found} == {REFERENTIAL_INTEGRITY}
    assert Finding(REFERENTIAL_INTEGRITY, f"improvement q references missing {what}",
                   ["q", drop]) in found
    if drop == "A":  # T's parent is gone too
        assert Finding(REFERENTIAL_INTEGRITY, "resume T has missing parent A", ["T", "A"]) in found


def test_referential_integrity_silent_on_consistent_store():
    _, records = with_improvement()
    assert check_referential_integrity(snap(*records)) == []


# --------------------------------------------------------------------------- race table

#: Three writes to one field: op 0 is acknowledged at [0, 1] and writes "v0"; ops 1 and 2 write
#: "v1" and "v2" with (status, start, end). Then the stored value and the candidate ops the
#: finding reports (None: no finding).
RACES = [
    pytest.param((OK, 2, 5), (OK, 3, 6), "v1", None, id="overlapping-acks-first-stored"),
    pytest.param((OK, 2, 5), (OK, 3, 6), "v2", None, id="overlapping-acks-second-stored"),
    pytest.param((OK, 2, 5), (OK, 3, 6), "v0", [1, 2], id="overlapping-acks-both-lost"),
    pytest.param((OK, 2, 3), (OK, 4, 5), "v2", None, id="sequential-last-stored"),
    pytest.param((OK, 2, 3), (OK, 4, 5), "v1", [2], id="sequential-superseded-stored"),
    pytest.param((OK, 2, 3), (INFO, 4, 5), "v2", None, id="info-after-ack-applied"),
    pytest.param((OK, 2, 3), (INFO, 4, 5), "v1", None, id="info-after-ack-not-applied"),
    pytest.param((INFO, 2, 3), (OK, 4, 5), "v1", [2], id="info-superseded-by-later-ack"),
    pytest.param((INFO, 2, 4.5), (OK, 4, 5), "v1", None, id="info-overlapping-ack"),
    pytest.param((PENDING, 2, None), (OK, 4, 5), "v1", None, id="pending-may-apply-late"),
    pytest.param((OK, 2, 3), (FAIL, 4, 5), "v2", [1], id="fail-taken-as-not-applied"),
    pytest.param((OK, 2, 3), (FAIL, 4, 5), "v1", None, id="fail-ignored"),
    pytest.param((INFO, 2, 3), (INFO, 4, 5), "v0", None, id="only-infos-after-ack"),
    pytest.param((INFO, 2, 3), (INFO, 4, 5), "v9", [0, 1, 2], id="only-infos-unknown-value"),
]


# --------------------------------------------------------------------------- acked-writes-durable


@pytest.mark.parametrize(("w1", "w2", "stored", "expected"), RACES)
def test_durable_real_time_rules(w1, w2, stored, expected):
    h = Hist()
    h.upload("A", 0, content="v0")
    for value, (status, start, end) in (("v1", w1), ("v2", w2)):
        h.update("A", start, end, status, fields={"content": value})
    found = check_acked_writes_durable(snap(resume("A", master=True, content=stored)), h.records)
    fires_or_silent(found, expected, ACKED_WRITES_DURABLE, ["A"], "resume A field content: stored value")


def test_durable_silent_when_stored_matches_and_compares_canonical_json():
    h = Hist()
    data = valid_resume_data()
    h.upload("A", 0, processed_data=data, filename="cv.md", content_type="md")
    h.add("save_cover_letter", 2, resume_id="A", text="Dear hiring manager")
    reordered = json.loads(json.dumps(dict(reversed(list(data.items())))))
    stored = resume("A", master=True, processed_data=reordered, filename="cv.md",
                    cover_letter="Dear hiring manager")
    assert check_acked_writes_durable(snap(stored), h.records) == []


@pytest.mark.parametrize(("op", "fld", "stored"), [
    ("save_cover_letter", "cover_letter", {"cover_letter": None}),
    ("save_outreach_message", "outreach_message", {"outreach_message": "older"}),
    ("upload_resume", "filename", {"filename": "renamed.md"}),
    ("upload_resume", "processed_data", {"processed_data": valid_resume_data(n=1)}),
])
def test_durable_fires_on_lost_field(op, fld, stored):
    h = Hist()
    h.upload("A", 0, filename="cv.md", processed_data=valid_resume_data())
    if op != "upload_resume":
        h.add(op, 2, resume_id="A", text="new text")
    kept = {"filename": "cv.md", "processed_data": valid_resume_data(),
            "cover_letter": "new text" if op == "save_cover_letter" else None,
            "outreach_message": "new text" if op == "save_outreach_message" else None} | stored
    f = one(check_acked_writes_durable(snap(resume("A", master=True, **kept)), h.records),
            ACKED_WRITES_DURABLE)
    last = len(h.records) - 1
    assert f.ids == ["A"] and f.ops == [last]
    assert f.message.startswith(f"resume A field {fld}: stored value (sha256 {digest(stored[fld])[:12]})")
    assert f.message.endswith(f"(ops #{last})")


def test_durable_reupload_after_delete_starts_texts_afresh():
    """A cover letter saved concurrently with a delete, then a re-upload of the same id: the
    re-created resume has no cover letter, and that is not a lost write."""
    h = Hist()
    h.upload("A", 0)
    h.add("save_cover_letter", 2, 12, resume_id="A", text="Dear team")  # overlaps the delete
    h.delete("A", 3)
    h.upload("A", 20)
    assert check_acked_writes_durable(snap(resume("A", master=True)), h.records) == []
    # ... but a text on a fresh upload that nobody saved is caught
    found = check_acked_writes_durable(snap(resume("A", master=True, outreach_message="ghost")),
                                       h.records)
    assert [f.invariant for f in found] == [ACKED_WRITES_DURABLE]


def test_durable_fires_once_when_acked_resume_is_gone():
    h = Hist()
    h.upload("A", 0)
    h.update("A", 2, fields={"content": "v1", "filename": "f.md"})
    f = one(check_acked_writes_durable(Snapshot(), h.records), ACKED_WRITES_DURABLE)
    assert f.ids == ["A"] and f.ops == [0, 1]
    assert f.message == ("resume A is gone though its write (op #0) was acknowledged and nothing "
                         "deleted it")


@pytest.mark.parametrize(("status", "expected"), [
    (OK, None), (INFO, None), (PENDING, None), (FAIL, [0])])
def test_durable_deleted_resume_is_not_lost(status, expected):
    h = Hist()
    h.upload("A", 0)
    h.delete("A", 2, status=status)
    fires_or_silent(check_acked_writes_durable(Snapshot(), h.records), expected,
                    ACKED_WRITES_DURABLE, ["A"], "resume A is gone")


@pytest.mark.parametrize("deleted", ["A", "T", None])
def test_durable_tailored_resume_and_improvement_of_deleted_original(deleted):
    h, records = with_improvement()
    if deleted:
        h.delete(deleted, 8)
    kept = [records[1]] if deleted != "T" else records[:2]  # the job (and A when T is deleted)
    found = check_acked_writes_durable(snap(*kept), h.records)
    if deleted:
        assert found == []
    else:  # nothing deleted them: all three are lost
        assert [(f.invariant, f.ids, f.ops) for f in found] == [
            (ACKED_WRITES_DURABLE, ["q"], [3]), (ACKED_WRITES_DURABLE, ["A"], [0]),
            (ACKED_WRITES_DURABLE, ["T"], [3])]
        assert "improvement q is gone" in found[0].message


def test_durable_fires_on_changed_improvement_and_tailored_data():
    h, records = with_improvement()
    records[2] = tailored("T", "A", processed_data=valid_resume_data(n=5))
    records[3] = improvement("q", "A", "T", "J", improvements=[])
    found = check_acked_writes_durable(snap(*records), h.records)
    assert [(f.ids, f.ops) for f in found] == [(["q"], [3]), (["T"], [3])]
    assert found[0].message.startswith("improvement q field improvements: stored value")
    assert found[1].message.startswith("resume T field processed_data: stored value")


def test_durable_jobs():
    h = Hist()
    h.create_job("J", 0, job_keywords=["python", "sql"])
    good = job("J", job_keywords=["python", "sql"])
    assert check_acked_writes_durable(snap(good), h.records) == []
    f = one(check_acked_writes_durable(snap(job("J", job_keywords=["python"])), h.records),
            ACKED_WRITES_DURABLE)
    assert (f.ids, f.ops) == (["J"], [0]) and f.message.startswith("job J field job_keywords")
    f = one(check_acked_writes_durable(Snapshot(), h.records), ACKED_WRITES_DURABLE)
    assert (f.ids, f.ops) == (["J"], [0]) and f.message.startswith("job J is gone")


def test_durable_ignores_unacknowledged_creation_and_never_created_records():
    h = Hist()
    h.upload("A", 0, status=INFO)
    h.create_job("J", 0, status=FAIL, error_type="Conflict")
    h.update("X", 2, fields={"content": "v"})  # X was never created: honest-results' business
    h.add("save_cover_letter", 2, resume_id="X", text="t")
    assert check_acked_writes_durable(Snapshot(), h.records) == []
    assert {tuple(f.ids) for f in check_honest_results(Snapshot(), h.records)} == {("X",)}


def test_durable_processing_status_recomputed_by_processed_data_update():
    h = Hist()
    h.upload("A", 0)
    h.update("A", 2, fields={"processing_status": "failed"})
    h.update("A", 4, fields={"processed_data": valid_resume_data()})
    stored = resume("A", master=True, processed_data=valid_resume_data(),
                    processing_status="completed")  # what the reference model stores
    assert check_acked_writes_durable(snap(stored), h.records) == []


def test_durable_fires_on_resume_back_after_acknowledged_delete():
    h = Hist()
    h.upload("A", 0)
    h.delete("A", 2)
    found = check_all(snap(resume("A", master=True)), h.records)
    assert [(f.invariant, f.ids, f.ops) for f in found] == [(ACKED_WRITES_DURABLE, ["A"], [1])]


# --------------------------------------------------------------------------- no-lost-preview-hashes


@pytest.mark.parametrize(("w1", "w2", "stored", "expected"), RACES)
def test_preview_hashes_real_time_rules(w1, w2, stored, expected):
    h = Hist()
    h.preview("J", "p1", "v0", 0)
    for value, (status, start, end) in (("v1", w1), ("v2", w2)):
        h.preview("J", "p1", value, start, end, status)
    h.create_job("J", -3)
    found = check_no_lost_preview_hashes(snap(job("J", {"p1": stored})), h.records)
    fires_or_silent(found, expected, NO_LOST_PREVIEW_HASHES, ["J", "p1"],
                    f"job J prompt p1: hash is {stored!r}")


def test_preview_hash_missing_fires_naming_job_prompt_and_op():
    h = Hist()
    h.create_job("J", 0)
    h.preview("J", "p1", "h1", 2)
    h.preview("J", "p2", "h2", 4)
    f = one(check_no_lost_preview_hashes(snap(job("J", {"p2": "h2"})), h.records),
            NO_LOST_PREVIEW_HASHES)
    assert (f.ids, f.ops) == (["J", "p1"], [1])
    assert f.message == "job J prompt p1: hash is missing, acknowledged by op #1 as 'h1'"
    assert check_no_lost_preview_hashes(snap(job("J", {"p1": "h1", "p2": "h2"})), h.records) == []


def test_preview_hashes_on_missing_job_left_to_other_checks():
    h = Hist()
    h.create_job("J", 0)
    h.preview("J", "p1", "h1", 2)
    h.preview("K", "p1", "h1", 2)  # never created
    assert check_no_lost_preview_hashes(Snapshot(), h.records) == []
    assert check_no_lost_preview_hashes(snap(job("J", {"p1": "h1"})), h.records) == []


def confirm_after_preview(other=None, *, confirm_status=FAIL, error_type="Conflict",
                          value="h1", preview=(OK, 2, 3)):
    """Job J, an acknowledged preview h1 for p1 (op 1), a confirm with ``value`` (op 2) at [4, 5]
    and optionally another preview ``(prompt, hash, status, start, end)`` (op 3)."""
    h = Hist()
    h.create_job("J", 0)
    status, start, end = preview
    h.preview("J", "p1", "h1", start, end, status)
    h.confirm("A", "J", "T", "q", 4, 5, confirm_status, value=value, error_type=error_type)
    stored = {"p1": "h1"}
    if other:
        prompt, value2, status2, start2, end2 = other
        h.preview("J", prompt, value2, start2, end2, status2)
        stored[prompt] = value2
    return h, snap(job("J", stored))


def test_confirm_conflict_on_acknowledged_hash_fires():
    h, s = confirm_after_preview()
    f = one(check_no_lost_preview_hashes(s, h.records), NO_LOST_PREVIEW_HASHES)
    assert (f.ids, f.ops) == (["J", "p1"], [1, 2])
    assert f.message == "confirm (op #2) rejected hash 'h1' for job J prompt p1 acknowledged by op #1"


@pytest.mark.parametrize(("kw", "fires"), [
    pytest.param({"other": ("p1", "h2", OK, 3.5, 4.5)}, False, id="concurrent-preview-same-prompt"),
    pytest.param({"other": ("p1", "h2", INFO, 3.5, 6)}, False, id="concurrent-info-preview"),
    pytest.param({"other": ("p1", "h2", OK, 7, 8)}, True, id="preview-after-confirm-no-excuse"),
    pytest.param({"other": ("p2", "h2", OK, 3.5, 4.5)}, True, id="concurrent-preview-other-prompt"),
    pytest.param({"value": "hX"}, False, id="confirm-with-other-hash"),
    pytest.param({"preview": (OK, 2, 4.5)}, False, id="preview-overlaps-confirm"),
    pytest.param({"preview": (INFO, 2, 3)}, False, id="preview-not-acknowledged"),
    pytest.param({"error_type": "NotFound"}, False, id="confirm-not-found"),
    pytest.param({"confirm_status": INFO, "error_type": "StorageError"}, False, id="confirm-info"),
])
def test_confirm_conflict_real_time_rules(kw, fires):
    h, s = confirm_after_preview(**kw)
    found = check_no_lost_preview_hashes(s, h.records)
    assert [f.ops for f in found] == ([[1, 2]] if fires else [])


def test_confirm_conflict_on_duplicate_ids_is_not_a_rejected_hash():
    h, records = with_improvement()
    h.confirm("A", "J", "T", "q", 8, None, FAIL, value="h1", error_type="Conflict")  # a retry
    assert check_no_lost_preview_hashes(snap(*records), h.records) == []


def test_preview_message_names_the_acknowledged_hash():
    h = Hist()
    h.create_job("J", 0)
    h.preview("J", "p1", "h1", 2)
    h.preview("J", "p1", "h2", 4, status=INFO)
    f = one(check_no_lost_preview_hashes(snap(job("J", {"p1": "h3"})), h.records),
            NO_LOST_PREVIEW_HASHES)
    assert (f.ids, f.ops) == (["J", "p1"], [1, 2])
    assert f.message == "job J prompt p1: hash is 'h3', acknowledged by op #1 as 'h1'"


# --------------------------------------------------------------------------- honest-results

MISSING_TARGETS = [
    ("get_resume", {"resume_id": "X"}, "resume"),
    ("update_resume", {"resume_id": "X", "fields": {"content": "c"}}, "resume"),
    ("set_master", {"resume_id": "X"}, "resume"),
    ("delete_resume", {"resume_id": "X"}, "resume"),
    ("save_cover_letter", {"resume_id": "X", "text": "t"}, "resume"),
    ("save_outreach_message", {"resume_id": "X", "text": "t"}, "resume"),
    ("get_job", {"job_id": "X"}, "job"),
    ("record_preview", {"job_id": "X", "prompt_id": "p1", "preview_hash": "h"}, "job"),
    ("confirm_improvement", {"resume_id": "X", "job_id": "J", "prompt_id": "p1",
                             "preview_hash": "h1", "tailored_resume_id": "T"}, "resume"),
    ("confirm_improvement", {"resume_id": "A", "job_id": "X", "prompt_id": "p1",
                             "preview_hash": "h1", "tailored_resume_id": "T"}, "job"),
    ("get_improvement_by_tailored_resume", {"tailored_resume_id": "X"}, "resume"),
]


@pytest.mark.parametrize(("op", "args", "kind"), MISSING_TARGETS)
@pytest.mark.parametrize("status", [OK, FAIL])
def test_honest_ok_on_never_created_id(op, args, kind, status):
    h = Hist()
    h.upload("A", 0)
    h.create_job("J", 0)
    h.add(op, 2, None, status, **args)
    found = check_honest_results(snap(resume("A", master=True), job("J")), h.records)
    if status == FAIL:  # NotFound: the honest answer
        assert found == []
    else:
        f = one(found, HONEST_RESULTS)
        assert (f.ids, f.ops) == (["X"], [2])
        assert f.message == f"{op} (op #2) succeeded on missing {kind} X instead of raising NotFound"


@pytest.mark.parametrize(("delete", "fires"), [
    pytest.param((OK, 2, 3), True, id="completed-acked-delete"),
    pytest.param((OK, 2, 4.5), False, id="delete-overlapping"),
    pytest.param((INFO, 2, 3), False, id="info-delete"),
    pytest.param((FAIL, 2, 3), False, id="failed-delete"),
    pytest.param((OK, 6, 7), False, id="delete-after"),
])
def test_honest_ok_on_deleted_id(delete, fires):
    h = Hist()
    h.upload("A", 0)
    status, start, end = delete
    h.delete("A", start, end, status)
    h.add("save_cover_letter", 4, resume_id="A", text="t")
    found = check_honest_results(Snapshot(), h.records)
    assert [(f.invariant, f.ids, f.ops) for f in found] == ([(HONEST_RESULTS, ["A"], [2])] if fires else [])


@pytest.mark.parametrize("op", ["get_resume", "get_improvement_by_tailored_resume"])
def test_honest_ok_on_tailored_resume_of_deleted_original(op):
    h, records = with_improvement()
    h.delete("A", 8)
    arg = "resume_id" if op == "get_resume" else "tailored_resume_id"
    h.add(op, 10, **{arg: "T"})
    f = one(check_honest_results(snap(records[1]), h.records), HONEST_RESULTS)
    assert (f.ids, f.ops) == (["T"], [5]) and "succeeded on missing resume T" in f.message


@pytest.mark.parametrize(("creator", "fires"), [
    pytest.param((OK, 0, 5), False, id="created-concurrently"),
    pytest.param((INFO, 0, 1), False, id="info-creator"),
    pytest.param((PENDING, 0, None), False, id="pending-creator"),
    pytest.param((FAIL, 0, 1), True, id="failed-creator"),
    pytest.param((OK, 3, 4), True, id="created-after"),
])
def test_honest_ok_and_creation_time(creator, fires):
    h = Hist()
    status, start, end = creator
    h.upload("A", start, end, status, error_type="InvalidData" if status == FAIL else None)
    h.add("get_resume", 1, 2, resume_id="A")
    found = check_honest_results(Snapshot(), h.records)
    assert [(f.ids, f.ops) for f in found] == ([(["A"], [1])] if fires else [])


def stale_read(*later, stored=None):
    """A uploaded (op 0), then get_resume (op 1, at [2, 3]) returns content "stale"; ``later``
    ops follow."""
    h = Hist()
    h.upload("A", 0, content="v1")
    h.add("get_resume", 2, resume_id="A", result=resume("A", master=True, content="stale").to_dict())
    for op, status, start, end, args in later:
        h.add(op, start, end, status, **args)
    return h, snap(stored or resume("A", master=True, content="v1"))


def test_honest_fires_on_returned_record_differing_from_stored():
    h, s = stale_read()
    f = one(check_honest_results(s, h.records), HONEST_RESULTS)
    assert (f.ids, f.ops) == (["A"], [1])
    assert f.message == "get_resume (op #1) returned A with content differing from what is stored"


def test_honest_names_every_differing_field():
    h, _ = stale_read()
    s = snap(resume("A", master=True, content="v1", filename="new.md"))
    f = one(check_honest_results(s, h.records), HONEST_RESULTS)
    assert "returned A with content, filename differing" in f.message


@pytest.mark.parametrize(("status", "start", "end", "fires"), [
    pytest.param(OK, 4, 5, False, id="later-acked-update"),
    pytest.param(INFO, 4, 5, False, id="later-info-update"),
    pytest.param(OK, 1, 2.5, False, id="concurrent-update"),
    pytest.param(FAIL, 4, 5, True, id="later-failed-update-no-excuse"),
    pytest.param(OK, 0.5, 1.5, True, id="earlier-update-no-excuse"),
])
def test_honest_later_op_on_record_excuses_difference(status, start, end, fires):
    h, s = stale_read(("update_resume", status, start, end,
                       {"resume_id": "A", "fields": {"content": "v1"}}))
    found = check_honest_results(s, h.records)
    assert [(f.ids, f.ops) for f in found] == ([(["A"], [1])] if fires else [])


@pytest.mark.parametrize(("later", "fires"), [(True, False), (False, True)])
def test_honest_is_master_may_change_through_other_resumes(later, fires):
    h = Hist()
    h.upload("A", 0)
    h.upload("B", 2)
    h.add("get_resume", 4, resume_id="A", result=resume("A", master=True).to_dict())
    if later:
        h.add("set_master", 6, resume_id="B", result=resume("B", master=True).to_dict())
    s = snap(resume("A"), resume("B", master=True))
    found = check_honest_results(s, h.records)
    assert [f.message for f in found] == (
        ["get_resume (op #2) returned A with is_master differing from what is stored"] if fires else [])


@pytest.mark.parametrize(("returned", "later_preview", "differing"), [
    (job("J", {"p1": "h1"}, content="stale"), False, "content"),
    (job("J", {}), False, "preview_hashes"),
    (job("J", {}), True, None),
    (job("J", {"p1": "h1"}), False, None),
])
def test_honest_job_results(returned, later_preview, differing):
    h = Hist()
    h.create_job("J", 0)
    h.preview("J", "p1", "h1", 2, result=job("J", {"p1": "h1"}).to_dict())
    h.add("get_job", 4, job_id="J", result=returned.to_dict())
    if later_preview:
        h.preview("J", "p1", "h1", 6)
    found = check_honest_results(snap(job("J", {"p1": "h1"})), h.records)
    if differing is None:
        assert found == []
    else:
        f = one(found, HONEST_RESULTS)
        assert (f.ids, f.ops) == (["J"], [2])
        assert f.message == f"get_job (op #2) returned J with {differing} differing from what is stored"


def test_honest_confirm_result_checked_for_resume_and_improvement():
    h, records = with_improvement()
    good = {"resume": records[2].to_dict(), "improvement": records[3].to_dict()}
    h.records[3].result = good
    assert check_honest_results(snap(*records), h.records) == []
    h.records[3].result = {"resume": good["resume"],
                           "improvement": improvement("q", "A", "T", "J", improvements=[]).to_dict()}
    f = one(check_honest_results(snap(*records), h.records), HONEST_RESULTS)
    assert (f.ids, f.ops) == (["q"], [3])
    assert "returned q with improvements differing" in f.message


def test_honest_fires_when_returned_record_is_not_stored():
    h, _ = stale_read()
    f = one(check_honest_results(Snapshot(), h.records), HONEST_RESULTS)
    assert (f.ids, f.ops) == (["A"], [1])
    assert f.message == "get_resume (op #1) returned A but nothing with that id is stored"


@pytest.mark.parametrize(("error_type", "fires"), [
    ("KeyError", True), ("AttributeError", True),
    ("StorageError", False), ("InjectedFault", False), ("SimulatedCrash", False)])
def test_honest_info_must_carry_a_contract_error(error_type, fires):
    h = Hist()
    h.upload("A", 0)
    h.add("get_resume", 2, None, INFO, error_type=error_type, resume_id="A")
    found = check_honest_results(snap(resume("A", master=True)), h.records)
    if fires:
        f = one(found, HONEST_RESULTS)
        assert (f.ids, f.ops) == ([], [1])
        assert f.message == (f"get_resume (op #1) raised {error_type} instead of a contract error: "
                             f"{error_type}: injected")
    else:
        assert found == []


@pytest.mark.parametrize("master_op", ["set_master", "delete_resume"])
def test_honest_updated_at_refreshed_by_master_change_elsewhere(master_op):
    h = Hist()
    h.upload("A", 0, result=resume("A", master=True, updated_at="t0").to_dict())
    h.upload("B", 2, result=resume("B", updated_at="t2").to_dict())
    if master_op == "set_master":
        h.add("set_master", 4, resume_id="B", result=resume("B", master=True, updated_at="t4").to_dict())
        s = snap(resume("A", updated_at="t4"), resume("B", master=True, updated_at="t4"))
    else:  # deleting the master A promotes B
        h.delete("A", 4)
        s = snap(resume("B", master=True, updated_at="t4"))
    assert check_honest_results(s, h.records) == []


@pytest.mark.parametrize("deleted", ["A", "T"])
def test_honest_confirm_result_of_later_deleted_improvement(deleted):
    h, records = with_improvement()
    h.records[3].result = {"resume": records[2].to_dict(), "improvement": records[3].to_dict()}
    h.delete(deleted, 8)
    kept = [records[1]] if deleted == "A" else records[:2]
    assert check_honest_results(snap(*kept), h.records) == []


def test_honest_get_improvement_result_differing_from_stored():
    h, records = with_improvement()
    h.add("get_improvement_by_tailored_resume", 8, tailored_resume_id="T",
          result=improvement("q", "A", "T", "J", improvements=[]).to_dict())
    f = one(check_honest_results(snap(*records), h.records), HONEST_RESULTS)
    assert (f.ids, f.ops) == (["q"], [4]) and "improvements differing" in f.message


def test_honest_failed_confirm_does_not_reparent_tailored_resume():
    h, records = with_improvement()
    h.upload("B", 0)
    h.confirm("B", "J", "T", "q2", 6, None, FAIL, value="h1", error_type="Conflict")  # duplicate T
    h.delete("B", 8)
    h.add("get_resume", 10, resume_id="T")  # T is a child of A, which still exists
    assert check_honest_results(snap(*records), h.records) == []


# --------------------------------------------------------------------------- valid-data


@pytest.mark.parametrize(("payload", "path"), [p[1:] for p in INVALID_RESUME_DATA],
                         ids=[p[0] for p in INVALID_RESUME_DATA])
def test_valid_data_fires_on_stored_invalid_processed_data(payload, path):
    f = one(check_valid_data(snap(resume("A", master=True), tailored("T", "A", processed_data=payload))),
            VALID_DATA)
    assert (f.ids, f.ops) == (["T"], [])
    assert f.message.startswith(f"resume T stores invalid processed_data ({path}: ")


def test_valid_data_names_root_for_non_object():
    f = one(check_valid_data(snap(resume("A", master=True, processed_data=["x"]))), VALID_DATA)
    assert "(root: expected an object, got list)" in f.message


@pytest.mark.parametrize(("payload", "path"), [p[1:] for p in INVALID_RESUME_DATA],
                         ids=[p[0] for p in INVALID_RESUME_DATA])
@pytest.mark.parametrize("status", [OK, FAIL])
def test_valid_data_ok_upload_with_invalid_data(payload, path, status):
    h = Hist()
    h.upload("A", 0, None, status, processed_data=payload,
             error_type="InvalidData" if status == FAIL else None)
    found = check_valid_data(Snapshot(), h.records)
    if status == FAIL:
        assert found == []
    else:
        f = one(found, VALID_DATA)
        assert (f.ids, f.ops) == ([], [0])
        assert f.message == (f"upload_resume (op #0) accepted invalid processed_data.{path} "
                             "instead of raising InvalidData")


@pytest.mark.parametrize(("op", "args", "bad"), [
    ("update_resume", {"resume_id": "A", "fields": {"is_master": True, "content": "c"}}, "is_master"),
    ("update_resume", {"resume_id": "A", "fields": {"processed_data": INVALID_RESUME_DATA[2][1]}},
     "processed_data.summary"),
    ("confirm_improvement", {"resume_id": "A", "job_id": "J", "improved_data": INVALID_RESUME_DATA[1][1]},
     "improved_data.workExperience.0.company"),
])
@pytest.mark.parametrize("status", [OK, FAIL])
def test_valid_data_other_ops_accepting_invalid_input(op, args, bad, status):
    h = Hist()
    h.upload("A", 0)
    h.add(op, 2, None, status, error_type="InvalidData" if status == FAIL else None, **args)
    found = check_valid_data(snap(resume("A", master=True)), h.records)
    if status == FAIL:
        assert found == []
    else:
        f = one(found, VALID_DATA)
        assert f.ops == [1] and f"accepted invalid {bad} instead" in f.message


def test_valid_data_silent_on_valid_input_and_store():
    h, records = with_improvement()
    h.upload("B", 8, processed_data=valid_resume_data(n=2))
    h.update("B", 10, fields={"processed_data": None, "processing_status": "pending"})
    h.update("A", 10, fields={"processed_data": valid_resume_data(n=3)})
    s = snap(*records, resume("B"))
    s.resumes["A"].processed_data = valid_resume_data(n=3)
    assert check_valid_data(s, h.records) == []


# --------------------------------------------------------------------------- store-readable, check_all


def test_store_readable():
    assert check_store_readable(None) == []
    f = one(check_store_readable("JSONDecodeError: " + "x" * 500), STORE_READABLE)
    assert f.ids == [] and f.ops == []
    assert f.message.startswith("store cannot be read: JSONDecodeError: x")
    assert len(f.message) == len("store cannot be read: ") + 200


def broken_everywhere() -> tuple[Hist, Snapshot]:
    """A history and snapshot breaking every invariant that reads the snapshot."""
    h = Hist()
    h.upload("A", 0)
    h.create_job("J", 0)
    h.preview("J", "p1", "h1", 2)
    h.add("get_resume", 4, resume_id="Y")  # never created: honest-results
    s = snap(resume("A", master=True, content="changed"),  # acked-writes-durable
             resume("B", master=True, processed_data={"summary": "no name"}),  # one-master, valid-data
             tailored("T", "X"),  # referential-integrity, no-orphan-improvements
             job("J"))  # no-lost-preview-hashes
    return h, s


def test_check_all_runs_every_invariant_in_registry_order():
    h, s = broken_everywhere()
    found = check_all(s, iter(h.records))
    kinds = [f.invariant for f in found]
    assert set(kinds) == set(INVARIANT_IDS) - {STORE_READABLE}
    assert kinds == sorted(kinds, key=INVARIANT_IDS.index)


@pytest.mark.parametrize("only", [[ONE_MASTER], [HONEST_RESULTS, VALID_DATA], [], [STORE_READABLE]])
def test_check_all_only_filters(only):
    h, s = broken_everywhere()
    assert {f.invariant for f in check_all(s, h.records, only=only)} == set(only) - {STORE_READABLE}


def test_check_all_without_snapshot_checks_only_store_readable():
    h, _ = broken_everywhere()
    f = one(check_all(None, h.records, snapshot_error="torn write"), STORE_READABLE)
    assert f.message == "store cannot be read: torn write"
    f = one(check_all(None, h.records), STORE_READABLE)
    assert f.message == "store cannot be read: snapshot unavailable"
    assert check_all(None, h.records, snapshot_error="x", only=[ONE_MASTER, HONEST_RESULTS]) == []


def test_check_all_silent_on_correct_concurrent_history():
    h, records = with_improvement()
    h.upload("B", 8, processed_data=valid_resume_data(n=2), filename="b.pdf", content_type="pdf")
    h.add("set_master", 10, resume_id="B", result=resume(
        "B", master=True, processed_data=valid_resume_data(n=2), filename="b.pdf",
        content_type="pdf").to_dict())
    h.update("A", 12, 15, fields={"content": "A v2"})
    h.update("A", 13, 14, fields={"content": "A v3"}, process="p1")
    h.add("save_cover_letter", 12, 16, resume_id="A", text="Dear team", process="p2")
    h.preview("J", "p1", "h2", 12, 14)
    h.preview("J", "p2", "h9", 12, 14, INFO)
    h.confirm("A", "J", "T2", "q2", 15, value="hX", status=FAIL, error_type="Conflict")
    h.add("get_resume", 18, resume_id="T", result=records[2].to_dict())
    h.add("get_improvement_by_tailored_resume", 18, tailored_resume_id="T", result=records[3].to_dict())
    h.upload("C", 20)
    h.delete("C", 22)
    h.add("get_resume", 24, status=FAIL, resume_id="C")
    h.update("A", 24, status=FAIL, error_type="InvalidData", fields={"is_master": True})
    s = snap(resume("A", content="A v2", cover_letter="Dear team"), records[2],
             resume("B", master=True, processed_data=valid_resume_data(n=2), filename="b.pdf",
                    content_type="pdf"),
             job("J", {"p1": "h2"}), records[3])
    assert check_all(s, h.records) == []


# --------------------------------------------------------------------------- registry, digest


def test_registry_matches_design():
    assert INVARIANT_IDS == ("one-master", "no-orphan-improvements", "no-lost-preview-hashes",
                             "acked-writes-durable", "honest-results", "store-readable",
                             "valid-data", "referential-integrity")
    assert [i.id for i in INVARIANTS if i.check is None] == [STORE_READABLE]
    assert all(i.holds_when and i.audit_refs for i in INVARIANTS)
    assert Finding(ONE_MASTER, "m", ["a"], [1]).to_dict() == {
        "invariant": ONE_MASTER, "message": "m", "ids": ["a"], "ops": [1]}


def test_digest_is_key_order_independent_sha256_of_canonical_json():
    a = {"b": 1, "a": {"y": [1, 2], "x": "é"}}
    b = {"a": {"x": "é", "y": [1, 2]}, "b": 1}
    assert digest(a) == digest(b)
    canonical = '{"a":{"x":"é","y":[1,2]},"b":1}'
    assert digest(a) == hashlib.sha256(canonical.encode()).hexdigest()
    assert digest({"a": {"x": "é", "y": [2, 1]}, "b": 1}) != digest(a)  # list order matters
    assert digest({"b": 1}) != digest({"b": "1"}) and digest(None) != digest("")
