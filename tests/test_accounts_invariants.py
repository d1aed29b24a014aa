"""The accounts invariants on hand-built snapshots and histories: each fires on bad data or a bad
history and stays silent on good ones."""

from __future__ import annotations

from typing import Any

from harness.families.accounts.contract import CacheEntry, Session, Snapshot, Upload, User
from harness.families.accounts.invariants import (
    CACHE_THRESHOLD_ID,
    CLEANUP_PRECISE,
    EMAIL_UNIQUE,
    FK_INTEGRITY,
    INVARIANT_IDS,
    STORE_READABLE,
    TRANSFER_ATOMIC,
    check_all,
    check_cache_threshold,
    check_cleanup_precise,
    check_email_unique,
    check_fk_integrity,
    check_transfer_atomic,
)
from harness.history import FAIL, INFO, OK, PENDING, OpRecord


class H:
    """A history builder: ``add(op, status, start, end, **args)``; sequential by default."""

    def __init__(self) -> None:
        self.records: list[OpRecord] = []
        self.clock = 0.0

    def add(self, op: str, status: str = OK, start: float | None = None,
            end: float | None = None, result: Any = None, **args: Any) -> OpRecord:
        if start is None:
            start = self.clock + 1
        if end is None and status != PENDING:
            end = start + 0.5
        self.clock = max(self.clock, end or start)
        rec = OpRecord(index=len(self.records), process="t", op=op, args=args, start=start,
                       status=status, end=end, result=result)
        self.records.append(rec)
        return rec


def users(*specs: tuple[str, str, bool]) -> dict[str, User]:
    return {u: User(u, e, a, "2026-01-01T00:00:00+00:00") for u, e, a in specs}


def ids_of(findings) -> set[str]:
    return {f.invariant for f in findings}


# --------------------------------------------------------------------------- fk-integrity


def test_fk_integrity_fires_on_orphans_and_names_the_delete():
    h = H()
    h.add("create_user", user_id="u1", email="a@x.org")
    h.add("create_session", session_id="s1", user_id="u1", created_at="2026-01-01T00:00:00")
    h.add("create_upload", job_id="cv1", user_id="u1", file_hash="f", filename="a.pdf")
    d = h.add("delete_user", user_id="u1")
    snap = Snapshot(sessions={"s1": Session("s1", "u1", "2026-01-01T00:00:00")},
                    uploads=[Upload("cv1", "u1", "f", "a.pdf")])
    found = check_fk_integrity(snap, h.records)
    assert [f.invariant for f in found] == [FK_INTEGRITY, FK_INTEGRITY]
    assert all("was deleted" in f.message and d.index in f.ops for f in found)


def test_fk_integrity_silent_when_everything_has_its_user():
    snap = Snapshot(users=users(("u1", "a@x.org", False)),
                    sessions={"s1": Session("s1", "u1", "2026-01-01T00:00:00+00:00")},
                    uploads=[Upload("cv1", "u1", "f", "a.pdf")])
    assert check_fk_integrity(snap, []) == []


# --------------------------------------------------------------------------- email-unique


def test_email_unique_fires_on_case_variants_in_the_store():
    snap = Snapshot(users=users(("u1", "Ann@X.org", False), ("u2", " ann@x.org", False)))
    found = check_email_unique(snap, [])
    assert ids_of(found) == {EMAIL_UNIQUE} and set(found[0].ids) == {"u1", "u2"}


def test_email_unique_fires_on_two_acked_signups_even_if_one_was_deleted_later():
    h = H()
    a = h.add("create_user", start=1, end=3, user_id="u1", email="a@x.org")
    b = h.add("create_user", start=2, end=4, user_id="u2", email="A@x.org")
    h.add("delete_user", start=5, end=6, user_id="u2")
    snap = Snapshot(users=users(("u1", "a@x.org", False)))
    found = check_email_unique(snap, h.records)
    assert ids_of(found) == {EMAIL_UNIQUE} and set(found[0].ops) == {a.index, b.index}


def test_email_unique_silent_on_reuse_after_delete_and_on_refused_signup():
    h = H()
    h.add("create_user", user_id="u1", email="a@x.org")
    h.add("create_user", status=FAIL, user_id="u2", email="a@x.org")
    h.add("delete_user", user_id="u1")
    h.add("create_user", user_id="u3", email="A@X.org")
    snap = Snapshot(users=users(("u3", "A@X.org", False)))
    assert check_email_unique(snap, h.records) == []


# --------------------------------------------------------------------------- transfer-atomic


def _upload_history(anonymous_owner: bool) -> H:
    h = H()
    h.add("create_user", user_id="a", email="a@x.org", is_anonymous=anonymous_owner)
    h.add("create_user", user_id="b", email="b@x.org", is_anonymous=False)
    h.add("create_user", user_id="c", email="c@x.org", is_anonymous=False)
    h.add("create_upload", job_id="cv1", user_id="a", file_hash="f", filename="cv.pdf")
    return h


def test_transfer_atomic_fires_on_a_stolen_upload():
    h = _upload_history(anonymous_owner=False)
    t = h.add("transfer_cv_ownership", job_id="cv1", new_user_id="b")
    snap = Snapshot(users=users(("a", "a@x.org", False), ("b", "b@x.org", False)),
                    uploads=[Upload("cv1", "b", "f", "cv.pdf")])
    found = check_transfer_atomic(snap, h.records)
    assert ids_of(found) == {TRANSFER_ATOMIC} and t.index in found[0].ops
    assert "non-anonymous owner a" in found[0].message


def test_transfer_atomic_fires_on_second_transfer_after_the_first_made_it_registered():
    h = _upload_history(anonymous_owner=True)
    h.add("transfer_cv_ownership", job_id="cv1", new_user_id="b")
    h.add("transfer_cv_ownership", job_id="cv1", new_user_id="c")
    snap = Snapshot(uploads=[Upload("cv1", "c", "f", "cv.pdf")])
    assert "non-anonymous owner b" in check_transfer_atomic(snap, h.records)[0].message


def test_transfer_atomic_fires_on_two_overlapping_acked_transfers():
    h = _upload_history(anonymous_owner=True)
    h.add("transfer_cv_ownership", start=10, end=13, job_id="cv1", new_user_id="b")
    h.add("transfer_cv_ownership", start=11, end=12, job_id="cv1", new_user_id="c")
    snap = Snapshot(uploads=[Upload("cv1", "c", "f", "cv.pdf")])
    found = check_transfer_atomic(snap, h.records)
    assert any("both succeeded" in f.message for f in found)


def test_transfer_atomic_silent_on_two_overlapping_transfers_to_one_user():
    h = _upload_history(anonymous_owner=True)
    h.add("transfer_cv_ownership", start=10, end=13, job_id="cv1", new_user_id="b")
    h.add("transfer_cv_ownership", start=11, end=12, job_id="cv1", new_user_id="b")  # a no-op
    assert check_transfer_atomic(Snapshot(uploads=[Upload("cv1", "b", "f", "cv.pdf")]),
                                 h.records) == []


def test_transfer_atomic_fires_on_a_lost_upload_and_on_a_double_owner():
    h = _upload_history(anonymous_owner=True)
    h.add("transfer_cv_ownership", status=PENDING, job_id="cv1", new_user_id="b")
    assert "is lost" in check_transfer_atomic(Snapshot(), h.records)[0].message
    double = Snapshot(uploads=[Upload("cv1", "a", "f", "cv.pdf"), Upload("cv1", "b", "f", "cv.pdf")])
    assert any("2 users at once" in f.message for f in check_transfer_atomic(double, h.records))


def test_transfer_atomic_fires_when_the_owner_is_not_the_last_acked_one():
    h = _upload_history(anonymous_owner=True)
    h.add("transfer_cv_ownership", job_id="cv1", new_user_id="b")
    snap = Snapshot(uploads=[Upload("cv1", "a", "f", "cv.pdf")])
    assert "not to the last acknowledged owner b" in check_transfer_atomic(snap, h.records)[0].message


def test_transfer_atomic_silent_on_good_histories():
    h = _upload_history(anonymous_owner=True)
    h.add("transfer_cv_ownership", job_id="cv1", new_user_id="b")
    h.add("transfer_cv_ownership", status=FAIL, job_id="cv1", new_user_id="c")  # Conflict
    h.add("transfer_cv_ownership", job_id="cv1", new_user_id="b")  # to its owner: a no-op
    assert check_transfer_atomic(Snapshot(uploads=[Upload("cv1", "b", "f", "cv.pdf")]),
                                 h.records) == []
    # an unknown outcome may or may not have applied: either owner is fine
    h2 = _upload_history(anonymous_owner=True)
    h2.add("transfer_cv_ownership", status=INFO, job_id="cv1", new_user_id="c")
    for owner in ("a", "c"):
        assert check_transfer_atomic(Snapshot(uploads=[Upload("cv1", owner, "f", "cv.pdf")]),
                                     h2.records) == []
    # the new owner deleted afterwards: the upload went with it
    h.add("delete_user", user_id="b")
    assert check_transfer_atomic(Snapshot(), h.records) == []


# --------------------------------------------------------------------------- cache-threshold


def test_cache_threshold_fires_at_the_boundary_and_on_a_lost_increment():
    h = H()
    h.add("cache_extraction", file_hash="f1", data={}, confidence=0.75)
    h.add("cache_extraction", file_hash="f2", data={}, confidence=0.9)
    h.add("get_cached_extraction", file_hash="f2")
    h.add("get_cached_extraction", file_hash="f2")
    snap = Snapshot(cache={"f1": CacheEntry("f1", {}, 0.75, 0),
                           "f2": CacheEntry("f2", {}, 0.9, 1)})
    found = check_cache_threshold(snap, h.records)
    assert ids_of(found) == {CACHE_THRESHOLD_ID}
    assert {f.ids[0] for f in found} == {"f1", "f2"}
    assert any("not above 0.75" in f.message for f in found)
    assert any("access_count 1 after 2" in f.message for f in found)


def test_cache_threshold_fires_when_an_acked_store_is_missing():
    h = H()
    h.add("cache_extraction", file_hash="f1", data={}, confidence=0.8)
    assert "is not cached" in check_cache_threshold(Snapshot(), h.records)[0].message


def test_cache_threshold_silent_on_good_state():
    h = H()
    h.add("cache_extraction", file_hash="f1", data={}, confidence=0.75, result=False)
    h.add("cache_extraction", file_hash="f2", data={}, confidence=0.7500001)
    h.add("get_cached_extraction", file_hash="f2")
    h.add("get_cached_extraction", status=INFO, file_hash="f2")
    h.add("get_cached_extraction", status=FAIL, file_hash="f1")
    for count in (1, 2):  # the unknown read may or may not have counted
        snap = Snapshot(cache={"f2": CacheEntry("f2", {}, 0.7500001, count)})
        assert check_cache_threshold(snap, h.records) == []


# --------------------------------------------------------------------------- cleanup-precise


def _sessions_history() -> H:
    h = H()
    h.add("create_user", user_id="u1", email="a@x.org")
    h.add("create_session", session_id="old", user_id="u1", created_at="2026-01-01T10:00:00Z")
    h.add("create_session", session_id="edge", user_id="u1", created_at="2026-01-02 00:00:00")
    h.add("create_session", session_id="new", user_id="u1",
          created_at="2026-01-01T23:00:00-05:00")  # = 2026-01-02T04:00Z
    return h


def _left(*ids: str) -> Snapshot:
    return Snapshot(sessions={i: Session(i, "u1", "x") for i in ids})


def test_cleanup_precise_fires_on_kept_expired_and_removed_fresh_sessions():
    h = _sessions_history()
    h.add("cleanup_sessions", older_than_days=1, now="2026-01-03T00:00:00+00:00")
    kept = check_cleanup_precise(_left("old", "edge", "new"), h.records)
    assert ids_of(kept) == {CLEANUP_PRECISE} and kept[0].ids == ["old"]
    removed = check_cleanup_precise(_left(), h.records)
    assert sorted(f.ids[0] for f in removed) == ["edge", "new"]  # exactly 1 day old is kept


def test_cleanup_precise_silent_on_exact_cleanup_and_user_deletion():
    h = _sessions_history()
    h.add("cleanup_sessions", older_than_days=1, now="2026-01-03T00:00:00+00:00")
    assert check_cleanup_precise(_left("edge", "new"), h.records) == []
    h.add("delete_user", user_id="u1")
    assert check_cleanup_precise(_left(), h.records) == []
    # a cleanup with an unknown outcome that would expire them may have run
    h2 = _sessions_history()
    h2.add("cleanup_sessions", older_than_days=1, now="2026-01-03T00:00:00+00:00")
    h2.add("cleanup_sessions", status=INFO, older_than_days=0, now="2026-01-05T00:00:00+00:00")
    assert check_cleanup_precise(_left(), h2.records) == []


# --------------------------------------------------------------------------- check_all


def test_check_all_without_snapshot_is_store_readable_only():
    found = check_all(None, [], snapshot_error="DatabaseError: file is not a database")
    assert [f.invariant for f in found] == [STORE_READABLE]
    assert check_all(None, [], only=[FK_INTEGRITY]) == []


def test_check_all_runs_only_the_wanted():
    snap = Snapshot(sessions={"s1": Session("s1", "gone", "x")},
                    cache={"f": CacheEntry("f", {}, 0.5, 0)})
    assert ids_of(check_all(snap, [])) == {FK_INTEGRITY, CACHE_THRESHOLD_ID}
    assert ids_of(check_all(snap, [], only=[FK_INTEGRITY])) == {FK_INTEGRITY}
    assert set(INVARIANT_IDS) == {FK_INTEGRITY, EMAIL_UNIQUE, TRANSFER_ATOMIC, CACHE_THRESHOLD_ID,
                                  CLEANUP_PRECISE, STORE_READABLE}
