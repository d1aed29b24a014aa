"""The cv-archive invariants on hand-made snapshots and histories: each fires on bad data and
stays silent on good data."""

from __future__ import annotations

from typing import Any

from harness.families.cv_archive.contract import (
    BACKED_UP,
    ORIGIN_RECOVERY,
    ORIGIN_SAVE,
    STORED,
    Backup,
    CvRow,
    Snapshot,
    sha256_text,
)
from harness.families.cv_archive.invariants import (
    CV_NO_DUPLICATE_ON_RETRY,
    CV_NO_LOSS,
    CV_RECOVERED_ONCE,
    CV_VERIFIED,
    INVARIANTS,
    check_all,
    check_no_duplicate_on_retry,
    check_no_loss,
    check_recovered_once,
    check_verified,
)
from harness.history import FAIL, INFO, OK, OpRecord
from harness.invariants import STORE_READABLE

CONTENT = "# Ada Lovelace\n\nAnalyst — London"
OTHER = "# Grace Hopper\n\nAdmiral — Arlington"


def rec(index: int, op: str, status: str = OK, result: Any = None, **args: Any) -> OpRecord:
    return OpRecord(index=index, process="p", op=op, args=args, start=float(index),
                    status=status, end=index + 0.5, result=result)


def save(index: int, rid: str, outcome: str | None = STORED, status: str = OK,
         content: str = CONTENT) -> OpRecord:
    result = {"request_id": rid, "outcome": outcome, "sha256": sha256_text(content),
              "attempts": 1} if status == OK else None
    return rec(index, "save_cv", status, result, request_id=rid, user_id="u-1",
               filename="cv.md", content=content)


def row(row_id: int, rid: str, content: str = CONTENT, origin: str = ORIGIN_SAVE,
        sent: str | None = None) -> CvRow:
    return CvRow(row_id=row_id, request_id=rid, user_id="u-1", filename="cv.md", content=content,
                 sha256=sha256_text(sent if sent is not None else content), origin=origin)


def backup(rid: str, content: str = CONTENT) -> Backup:
    return Backup(file=f"cv-{rid}.json", request_id=rid, user_id="u-1", filename="cv.md",
                  content=content, sha256=sha256_text(content))


def ids(findings: list) -> list[str]:
    return [f.invariant for f in findings]


# --------------------------------------------------------------------------- cv-no-loss

def test_no_loss_silent_when_stored_or_backed_up() -> None:
    snap = Snapshot(rows=[row(1, "q-1")], backups=[backup("q-2")])
    history = [save(0, "q-1"), save(1, "q-2", BACKED_UP), save(2, "q-3", status=FAIL),
               save(3, "q-4", status=INFO)]
    assert check_no_loss(snap, history) == []


def test_no_loss_fires_for_acked_stored_without_row() -> None:
    snap = Snapshot(backups=[backup("q-1")])  # a backup is not enough for "stored"
    found = check_no_loss(snap, [save(0, "q-1")])
    assert ids(found) == [CV_NO_LOSS] and found[0].ops == [0] and found[0].ids == ["q-1"]


def test_no_loss_fires_for_acked_backup_that_vanished() -> None:
    found = check_no_loss(Snapshot(), [save(0, "q-1", BACKED_UP)])
    assert ids(found) == [CV_NO_LOSS]


def test_no_loss_accepts_backup_imported_into_store() -> None:
    snap = Snapshot(rows=[row(1, "q-1", origin=ORIGIN_RECOVERY)])
    assert check_no_loss(snap, [save(0, "q-1", BACKED_UP), rec(1, "recover", dry_run=False)]) == []


def test_no_loss_fires_for_unparsable_backup_file() -> None:
    snap = Snapshot(unreadable=[{"file": "cv_backups.json", "error": "JSONDecodeError"}])
    found = check_no_loss(snap, [])
    assert ids(found) == [CV_NO_LOSS] and found[0].ids == ["cv_backups.json"]


# --------------------------------------------------------------------------- duplicates

def test_no_duplicate_fires_for_two_rows_from_saves() -> None:
    snap = Snapshot(rows=[row(1, "q-1"), row(2, "q-1"), row(3, "q-2")])
    found = check_no_duplicate_on_retry(snap, [save(0, "q-1"), save(1, "q-2")])
    assert ids(found) == [CV_NO_DUPLICATE_ON_RETRY]
    assert found[0].ids == ["q-1"] and found[0].ops == [0]


def test_no_duplicate_silent_for_one_row_per_request() -> None:
    snap = Snapshot(rows=[row(1, "q-1"), row(2, "q-2")])
    assert check_no_duplicate_on_retry(snap, [save(0, "q-1"), save(1, "q-1"), save(2, "q-2")]) == []


def test_recovered_once_fires_for_double_import() -> None:
    snap = Snapshot(rows=[row(1, "q-1", origin=ORIGIN_RECOVERY),
                          row(2, "q-1", origin=ORIGIN_RECOVERY)])
    history = [save(0, "q-1", BACKED_UP), rec(1, "recover", dry_run=False),
               rec(2, "recover", dry_run=False)]
    found = check_recovered_once(snap, history)
    assert ids(found) == [CV_RECOVERED_ONCE] and found[0].ops == [1, 2]
    # duplicates made by recovery are not blamed on save retries
    assert check_no_duplicate_on_retry(snap, history) == []


def test_recovered_once_fires_for_import_of_already_stored_request() -> None:
    snap = Snapshot(rows=[row(1, "q-1"), row(2, "q-1", origin=ORIGIN_RECOVERY)])
    found = check_recovered_once(snap, [save(0, "q-1", BACKED_UP), rec(1, "recover")])
    assert ids(found) == [CV_RECOVERED_ONCE]


def test_recovered_once_fires_when_only_dry_runs_imported() -> None:
    snap = Snapshot(rows=[row(1, "q-1", origin=ORIGIN_RECOVERY)])
    found = check_recovered_once(snap, [save(0, "q-1", BACKED_UP), rec(1, "recover", dry_run=True)])
    assert ids(found) == [CV_RECOVERED_ONCE]


def test_recovered_once_silent_for_single_import() -> None:
    snap = Snapshot(rows=[row(1, "q-1", origin=ORIGIN_RECOVERY), row(2, "q-2")])
    history = [save(0, "q-1", BACKED_UP), save(1, "q-2"), rec(2, "recover", dry_run=False),
               rec(3, "recover", dry_run=False)]
    assert check_recovered_once(snap, history) == []


# --------------------------------------------------------------------------- cv-verified

def test_verified_fires_for_corrupted_row_of_acked_save() -> None:
    corrupted = "$" + CONTENT[1:]
    snap = Snapshot(rows=[row(1, "q-1", content=corrupted, sent=CONTENT)])
    found = check_verified(snap, [save(0, "q-1")])
    assert ids(found) == [CV_VERIFIED] and found[0].ids == ["q-1"]


def test_verified_fires_for_corrupted_backup() -> None:
    snap = Snapshot(backups=[backup("q-1", content=OTHER)])
    assert ids(check_verified(snap, [save(0, "q-1", BACKED_UP)])) == [CV_VERIFIED]


def test_verified_silent_on_good_data_and_unacknowledged_requests() -> None:
    snap = Snapshot(rows=[row(1, "q-1"), row(2, "q-2", content=OTHER)],
                    backups=[backup("q-3")])
    history = [save(0, "q-1"), save(1, "q-2", status=INFO, content=CONTENT),
               save(2, "q-3", BACKED_UP)]
    # q-2 was never acknowledged: what it holds is not checked
    assert check_verified(snap, history) == []


def test_verified_accepts_any_content_a_save_of_that_request_sent() -> None:
    snap = Snapshot(rows=[row(1, "q-1", content=OTHER)])
    history = [save(0, "q-1", content=CONTENT), save(1, "q-1", status=INFO, content=OTHER)]
    assert check_verified(snap, history) == []
    history = [save(0, "q-1", content=CONTENT), save(1, "q-1", status=FAIL, content=OTHER)]
    assert ids(check_verified(snap, history)) == [CV_VERIFIED]  # a failed save applied nothing


# --------------------------------------------------------------------------- check_all

def test_check_all_without_snapshot_reports_store_readable_only() -> None:
    assert ids(check_all(None, [], snapshot_error="OperationalError: disk I/O")) == [STORE_READABLE]
    assert check_all(None, [], snapshot_error="x", only=[CV_NO_LOSS]) == []


def test_check_all_runs_every_invariant_and_honours_only() -> None:
    snap = Snapshot(rows=[row(1, "q-1"), row(2, "q-1"), row(3, "q-2", origin=ORIGIN_RECOVERY),
                          row(4, "q-2", origin=ORIGIN_RECOVERY), row(5, "q-3", content=OTHER)],
                    unreadable=[{"file": "x.json", "error": "bad"}])
    history = [save(0, "q-1"), save(1, "q-2", BACKED_UP), rec(2, "recover"), save(3, "q-3")]
    assert set(ids(check_all(snap, history))) == {CV_NO_LOSS, CV_NO_DUPLICATE_ON_RETRY,
                                                  CV_RECOVERED_ONCE, CV_VERIFIED}
    assert set(ids(check_all(snap, history, only=[CV_VERIFIED]))) == {CV_VERIFIED}
    assert [i.id for i in INVARIANTS][-1] == STORE_READABLE
