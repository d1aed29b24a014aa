"""Conformance of the three accounts adapters to the contract; the legacy adapter's audited
deviations are asserted as what they are (it must keep showing them)."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator

import pytest

from harness.families.accounts.contract import (
    AccountsStore,
    CacheEntry,
    Conflict,
    InvalidData,
    NotFound,
    Upload,
    parse_time,
)
from harness.families.accounts.invariants import check_all
from harness.faults import FaultController, FaultRule, InjectedFault
from harness.registry import resolve

ALL = ("accounts-legacy", "accounts-sqlite", "accounts-postgres")
CORRECT = ("accounts-sqlite", "accounts-postgres")

Factory = Callable[..., AccountsStore]


@pytest.fixture
def make(tmp_path, request) -> Iterator[Factory]:
    opened: list[AccountsStore] = []
    made: list[tuple[type[AccountsStore], str]] = []

    def factory(name: str, faults: FaultController | None = None,
                location: str | None = None) -> AccountsStore:
        cls = resolve(name)
        if location is None:
            root = request.getfixturevalue("pg_dsn") if cls.location_kind == "server" \
                else str(tmp_path)
            location = cls.fresh_location(root, f"acc_{uuid.uuid4().hex[:10]}")
            made.append((cls, location))
        adapter = cls(location, faults)
        opened.append(adapter)
        return adapter

    yield factory
    for a in opened:
        a.close()
    for cls, loc in made:
        cls.drop_location(loc)


def _people(a: AccountsStore) -> None:
    a.create_user("anon", "anon-1@example.org", is_anonymous=True)
    a.create_user("reg", "Zoë.Müller@example.org")
    a.create_user("reg2", "li.wei@example.org")


@pytest.mark.parametrize("name", ALL)
def test_users_and_email_rules(make, name):
    a = make(name)
    _people(a)
    assert a.get_user("reg").email == "Zoë.Müller@example.org"
    assert a.get_user("anon").is_anonymous is True
    with pytest.raises(Conflict):
        a.create_user("other", "  zoë.müller@EXAMPLE.org")
    with pytest.raises(Conflict):
        a.create_user("reg", "new@example.org")
    with pytest.raises(InvalidData):
        a.create_user("bad", "not-an-email")
    with pytest.raises(NotFound):
        a.get_user("nobody")
    with pytest.raises(NotFound):
        a.delete_user("nobody")


@pytest.mark.parametrize("name", ALL)
def test_sessions_uploads_and_reads(make, name):
    a = make(name)
    _people(a)
    s = a.create_session("s1", "reg", "2026-01-02T03:04:05Z")
    assert parse_time(s.created_at) == parse_time("2026-01-02T03:04:05+00:00")
    with pytest.raises(NotFound):
        a.create_session("s2", "nobody", "2026-01-02T03:04:05Z")
    with pytest.raises(Conflict):
        a.create_session("s1", "reg", "2026-01-02T03:04:05Z")
    with pytest.raises(InvalidData):
        a.create_session("s3", "reg", "yesterday")
    up = a.create_upload("cv1", "anon", "abc123", "Lebenslauf – Zoë.pdf")
    assert (up.job_id, up.user_id, up.file_hash) == ("cv1", "anon", "abc123")
    assert a.get_upload("cv1").filename == "Lebenslauf – Zoë.pdf"
    with pytest.raises(Conflict):
        a.create_upload("cv1", "reg", "x", "y")
    with pytest.raises(NotFound):
        a.create_upload("cv2", "nobody", "x", "y")
    with pytest.raises(NotFound):
        a.get_upload("cv9")
    snap = a.snapshot()
    assert set(snap.users) == {"anon", "reg", "reg2"} and set(snap.sessions) == {"s1"}
    assert [u.job_id for u in snap.uploads] == ["cv1"]
    assert check_all(snap, []) == []


@pytest.mark.parametrize("name", ALL)
def test_transfer_from_anonymous(make, name):
    a = make(name)
    _people(a)
    a.create_upload("cv1", "anon", "abc", "cv.pdf")
    moved = a.transfer_cv_ownership("cv1", "reg")
    assert isinstance(moved, Upload) and moved.user_id == "reg"
    assert a.get_upload("cv1").user_id == "reg"
    with pytest.raises(NotFound):
        a.transfer_cv_ownership("cv9", "reg")
    with pytest.raises(NotFound):
        a.transfer_cv_ownership("cv1", "nobody")


@pytest.mark.parametrize("name", ALL)
def test_cache_above_threshold_and_counting(make, name):
    a = make(name)
    data = {"name": "Ольга Иванова", "skills": ["SQL", "日本語"]}
    assert a.cache_extraction("f1", data, 0.74) is False
    assert a.cache_extraction("f2", data, 0.76) is True
    with pytest.raises(InvalidData):
        a.cache_extraction("f3", data, 1.5)
    first = a.get_cached_extraction("f2")
    assert isinstance(first, CacheEntry) and first.data == data and first.access_count == 1
    assert a.cache_extraction("f2", {"v": 2}, 0.9) is True  # replaced, count kept
    assert a.get_cached_extraction("f2").access_count == 2
    assert a.snapshot().cache["f2"].data == {"v": 2}
    with pytest.raises(NotFound):
        a.get_cached_extraction("f1")


@pytest.mark.parametrize("name", ALL)
def test_cleanup_in_one_format_is_exact(make, name):
    a = make(name)
    _people(a)
    for sid, at in (("old", "2026-01-01T10:00:00+00:00"), ("edge", "2026-01-02T00:00:00+00:00"),
                    ("new", "2026-01-02T04:00:00+00:00")):
        a.create_session(sid, "reg", at)
    assert a.cleanup_sessions(1, "2026-01-03T00:00:00+00:00") == 1
    assert set(a.snapshot().sessions) == {"edge", "new"}
    with pytest.raises(InvalidData):
        a.cleanup_sessions(-1, "2026-01-03T00:00:00+00:00")


# --------------------------------------------------------------------------- correct adapters


@pytest.mark.parametrize("name", CORRECT)
def test_delete_user_cascades(make, name):
    a = make(name)
    _people(a)
    a.create_session("s1", "reg", "2026-01-02T00:00:00Z")
    a.create_upload("cv1", "reg", "abc", "cv.pdf")
    a.delete_user("reg")
    snap = a.snapshot()
    assert snap.sessions == {} and snap.uploads == [] and "reg" not in snap.users


@pytest.mark.parametrize("name", CORRECT)
def test_transfer_refused_from_a_registered_owner(make, name):
    a = make(name)
    _people(a)
    a.create_upload("cv1", "anon", "abc", "cv.pdf")
    a.transfer_cv_ownership("cv1", "reg")
    with pytest.raises(Conflict):
        a.transfer_cv_ownership("cv1", "reg2")
    assert a.transfer_cv_ownership("cv1", "reg").user_id == "reg"  # to its owner: no-op
    assert a.get_upload("cv1").user_id == "reg"


@pytest.mark.parametrize("name", CORRECT)
def test_threshold_itself_is_not_cached(make, name):
    a = make(name)
    assert a.cache_extraction("f", {"x": 1}, 0.75) is False
    assert a.snapshot().cache == {}


@pytest.mark.parametrize("name", CORRECT)
def test_cleanup_compares_instants_across_formats(make, name):
    a = make(name)
    _people(a)
    a.create_session("space", "reg", "2026-01-02 05:00:00")        # 05:00Z: not expired
    a.create_session("minus5", "reg", "2026-01-01T23:00:00-05:00")  # 04:00Z: not expired
    a.create_session("plus2", "reg", "2026-01-02T01:00:00+02:00")   # 23:00Z the day before
    assert a.cleanup_sessions(1, "2026-01-03T00:00:00Z") == 1
    assert set(a.snapshot().sessions) == {"space", "minus5"}


@pytest.mark.parametrize("name", CORRECT)
def test_injected_error_rolls_back_the_transfer(make, name):
    faults = FaultController([FaultRule(point="transfer_cv_ownership.after_update",
                                        action="error")])
    a = make(name, faults)
    _people(a)
    a.create_upload("cv1", "anon", "abc", "cv.pdf")
    with pytest.raises(InjectedFault):
        with faults.operation("transfer_cv_ownership"):
            a.transfer_cv_ownership("cv1", "reg")
    assert a.get_upload("cv1").user_id == "anon"


@pytest.mark.parametrize("name", CORRECT)
def test_concurrent_signups_and_reads_with_real_threads(make, name):
    a = make(name)
    a.cache_extraction("f", {"x": 1}, 0.9)
    errors: list[BaseException] = []
    outcomes: list[str] = []

    def signup(i: int) -> None:
        try:
            a.create_user(f"u{i}", "same@example.org")
            outcomes.append("ok")
        except Conflict:
            outcomes.append("conflict")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def read() -> None:
        try:
            a.get_cached_extraction("f")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=signup, args=(i,)) for i in range(6)]
    threads += [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert outcomes.count("ok") == 1 and outcomes.count("conflict") == 5
    assert a.snapshot().cache["f"].access_count == 8


def _child_work(cls: type[AccountsStore], location: str, i: int) -> int:
    """In a forked child: one sign-up with the shared email and three cache reads."""
    adapter = cls(location)
    try:
        try:
            adapter.create_user(f"p{i}", "shared@example.org")
            signed_up = 1
        except Conflict:
            signed_up = 0
        for _ in range(3):
            adapter.get_cached_extraction("f")
        return signed_up
    finally:
        adapter.close()


@pytest.mark.parametrize("name", CORRECT)
def test_concurrent_signups_and_reads_from_real_processes(make, name):
    a = make(name)
    a.cache_extraction("f", {"x": 1}, 0.9)
    cls, location = type(a), a.location
    pids = []
    for i in range(4):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 2
            try:
                code = _child_work(cls, location, i)
            finally:
                os._exit(code)
        pids.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    assert sorted(codes) == [0, 0, 0, 1], codes  # exactly one sign-up won, no child failed
    snap = a.snapshot()
    assert [u.email for u in snap.users.values()] == ["shared@example.org"]
    assert snap.cache["f"].access_count == 12


@pytest.mark.parametrize("name", CORRECT)
def test_reopen_keeps_everything(make, name):
    a = make(name)
    _people(a)
    a.create_session("s1", "reg", "2026-01-02T03:04:05.123456+01:00")
    a.create_upload("cv1", "anon", "abc", "cv.pdf")
    a.cache_extraction("f", [1, "zwei"], 0.8)
    before = a.snapshot().to_dict()
    a.close()
    b = make(name, location=a.location)
    assert b.snapshot().to_dict() == before


# --------------------------------------------------------------------------- legacy deviations


def test_legacy_delete_user_orphans_sessions_and_uploads(make):
    a = make("accounts-legacy")
    _people(a)
    a.create_session("s1", "reg", "2026-01-02T00:00:00Z")
    a.create_upload("cv1", "reg", "abc", "cv.pdf")
    a.delete_user("reg")
    snap = a.snapshot()
    assert set(snap.sessions) == {"s1"} and [u.user_id for u in snap.uploads] == ["reg"]
    assert {f.invariant for f in check_all(snap, [])} == {"fk-integrity"}


def test_legacy_steals_from_registered_owner_and_caches_the_threshold(make):
    a = make("accounts-legacy")
    _people(a)
    a.create_upload("cv1", "anon", "abc", "cv.pdf")
    a.transfer_cv_ownership("cv1", "reg")
    assert a.transfer_cv_ownership("cv1", "reg2").user_id == "reg2"  # no Conflict
    assert a.cache_extraction("f", {"x": 1}, 0.75) is True
    assert a.snapshot().cache["f"].confidence == 0.75


def test_legacy_cleanup_compares_text(make):
    a = make("accounts-legacy")
    _people(a)
    a.create_session("space", "reg", "2026-01-02 05:00:00")
    a.create_session("plus2", "reg", "2026-01-02T01:00:00+02:00")
    a.cleanup_sessions(1, "2026-01-03T00:00:00Z")
    assert set(a.snapshot().sessions) == {"plus2"}  # the expired one stays, the fresh one went


@pytest.mark.parametrize("name", CORRECT)
def test_schema_enforces_what_the_code_checks(make, name):
    """Behind the adapter's back, the database itself refuses orphans, duplicate emails and
    cache rows at or below the threshold."""
    from datetime import UTC, datetime

    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    from adapters.accounts_sql import extraction_cache, sessions, users

    a = make(name)
    _people(a)
    bad = [insert(sessions).values(session_id="s", user_id="nobody",
                                   created_at=datetime(2026, 1, 1, tzinfo=UTC)),
           insert(users).values(user_id="x", email="ANON-1@example.org",
                                email_key="anon-1@example.org", is_anonymous=False,
                                created_at="2026-01-01"),
           insert(extraction_cache).values(file_hash="f", data={}, confidence=0.75,
                                           access_count=0)]
    for stmt in bad:
        with pytest.raises(IntegrityError):
            with a.engine.begin() as conn:
                conn.execute(stmt)
    assert check_all(a.snapshot(), []) == []
