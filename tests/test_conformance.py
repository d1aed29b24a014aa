"""Conformance: every adapter against the contract of :class:`harness.contract.StorageAdapter`.

Each test runs on the reference model and on every built-in adapter. ``tinydb-legacy``
reproduces the audited app, so a few tests are *expected* to fail for it: they carry the audit
finding ids and are marked ``xfail(strict=True)`` for that parametrization only, so a legacy
adapter that suddenly conforms (or fails in some other way than a failed check) is an error.
Everything else must pass on every adapter.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from builders import (
    INVALID_RESUME_DATA,
    TS,
    UNICODE_TEXT,
    improved_resume_data,
    improvements_list,
    is_timestamp,
    long_text,
    normalized,
    valid_resume_data,
)

from harness.contract import (
    UPDATABLE_RESUME_FIELDS,
    Conflict,
    InvalidData,
    NotFound,
    Snapshot,
    StorageAdapter,
)
from harness.registry import resolve

#: (test id, adapter name or ``pkg.module:Class`` for ``make_adapter``)
ADAPTERS: tuple[tuple[str, str], ...] = (
    ("reference-model", "harness.model:ReferenceModel"),
    ("tinydb-legacy", "tinydb-legacy"),
    ("tinydb-locked", "tinydb-locked"),
    ("sqlite", "sqlite"),
    ("postgres", "postgres"),
)
LEGACY = "tinydb-legacy"
#: How a legacy deviation must show: a failed check (anything else, e.g. a crash, is an error).
DEVIATION = (AssertionError, pytest.fail.Exception)


def _marks(name: str, findings: Iterable[str]) -> list[pytest.MarkDecorator]:
    findings = tuple(findings)
    if name != LEGACY or not findings:
        return []
    reason = f"tinydb-legacy reproduces audit finding {', '.join(findings)}"
    return [pytest.mark.xfail(strict=True, raises=DEVIATION, reason=reason)]


def conformance(*legacy_findings: str, fixture: str = "adapter") -> pytest.MarkDecorator:
    """Run the test on every adapter; with finding ids, tinydb-legacy must fail it (strict)."""
    params = [pytest.param(spec, id=name, marks=_marks(name, legacy_findings))
              for name, spec in ADAPTERS]
    return pytest.mark.parametrize(fixture, params, indirect=True)


def conformance_cases(cases: dict[str, tuple[str, ...]]) -> pytest.MarkDecorator:
    """Every adapter x every case; ``cases`` maps a case id to the legacy findings (may be ())."""
    params = [pytest.param(spec, case, id=f"{name}-{case}", marks=_marks(name, findings))
              for name, spec in ADAPTERS for case, findings in cases.items()]
    return pytest.mark.parametrize(("adapter", "case"), params, indirect=["adapter"])


class StorePool:
    """One open adapter per backend for the whole module, handed to each test right after
    ``reset()``: opening a fresh store (a PostgreSQL schema, a SQLite file) per test would cost
    more than the tests. A store whose reset fails or leaves data is replaced by a fresh one."""

    def __init__(self, tmp_root: str) -> None:
        self.tmp_root = tmp_root
        self.open: dict[str, StorageAdapter] = {}
        self.made: list[tuple[type[StorageAdapter], str]] = []

    def checkout(self, spec: str, request: pytest.FixtureRequest) -> StorageAdapter:
        store = self.open.pop(spec, None)
        if store is not None:
            try:
                store.reset()
                if store.snapshot() == Snapshot():
                    self.open[spec] = store
                    return store
            except Exception:  # noqa: BLE001 - replaced below; test_reset_* reports reset bugs
                pass
            self._close(store)
        cls = resolve(spec)
        root = request.getfixturevalue("pg_dsn") if cls.location_kind == "server" else self.tmp_root
        location = cls.fresh_location(root, f"c_{uuid.uuid4().hex[:12]}")
        self.made.append((cls, location))
        self.open[spec] = store = cls(location)
        return store

    @staticmethod
    def _close(store: StorageAdapter) -> None:
        try:
            store.close()
        except Exception:  # noqa: BLE001 - best effort
            pass

    def close(self) -> None:
        for store in self.open.values():
            self._close(store)
        for cls, location in self.made:
            cls.drop_location(location)


@pytest.fixture(scope="module")
def store_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorePool]:
    pool = StorePool(str(tmp_path_factory.mktemp("conformance")))
    yield pool
    pool.close()


@pytest.fixture
def adapter(request: pytest.FixtureRequest, store_pool: StorePool) -> StorageAdapter:
    """The backend's pooled store, empty."""
    return store_pool.checkout(request.param, request)


@pytest.fixture
def fresh_adapter(request: pytest.FixtureRequest, make_adapter) -> StorageAdapter:
    """A store of its own on a fresh location, for tests that close it."""
    return make_adapter(request.param)


# --------------------------------------------------------------------------- helpers


def upload(adapter: StorageAdapter, rid: str, n: int = 0, processed: bool = True, **kw: Any):
    data = valid_resume_data(f"Person {rid}", n) if processed else None
    return adapter.upload_resume(f"# Resume {rid}\n\nBody {n}", kw.pop("content_type", "md"),
                                 kw.pop("filename", f"{rid}.md"), data, resume_id=rid)


def confirm(adapter: StorageAdapter, rid: str, job_id: str, tailored: str, request_id: str,
            prompt: str = "prompt-1", n: int = 0):
    """Record a preview for ``prompt`` and confirm it: the tailored resume ``tailored``."""
    preview_hash = f"hash-{tailored}"
    adapter.record_preview(job_id, prompt, preview_hash)
    return adapter.confirm_improvement(rid, job_id, prompt, preview_hash, improved_resume_data(n),
                                       improvements_list(n), tailored_resume_id=tailored,
                                       request_id=request_id)


def master_ids(snap: Snapshot) -> list[str]:
    return [r.resume_id for r in snap.masters()]


def assert_stored(adapter: StorageAdapter, returned: Any) -> None:
    """What an operation returned equals what is stored right after it."""
    snap = adapter.snapshot()
    table, key = {"Resume": (snap.resumes, "resume_id"), "Job": (snap.jobs, "job_id"),
                  "Improvement": (snap.improvements, "request_id")}[type(returned).__name__]
    ident = getattr(returned, key)
    assert ident in table, f"returned {type(returned).__name__} {ident!r} is not stored"
    assert returned == table[ident]


def assert_refused(adapter: StorageAdapter, error: type[Exception], call: Callable[[], Any],
                   what: str, field: str | None = None) -> None:
    """``call`` raises ``error`` (naming ``field`` for InvalidData) and changes nothing."""
    before = adapter.snapshot()
    try:
        result = call()
    except error as exc:
        if field is not None:
            assert exc.field == field, f"{what}: InvalidData names {exc.field!r}, not {field!r}"
    else:
        raise AssertionError(f"{what}: expected {error.__name__}, got a normal return {result!r:.300}")
    assert adapter.snapshot() == before, f"{what}: the refused call changed the store"


def seed(adapter: StorageAdapter) -> None:
    """Two resumes (a master), a job with a preview, one tailored resume of a."""
    upload(adapter, "res-a", 1)
    upload(adapter, "res-b", 2, processed=False)
    adapter.create_job("Job description", ["python"], job_id="job-1")
    confirm(adapter, "res-a", "job-1", "tail-a", "req-a")


# --------------------------------------------------------------------------- resumes


@conformance()
def test_upload_first_resume_becomes_master_and_is_stored(adapter):
    data = valid_resume_data("Ada", 1)
    r = adapter.upload_resume("# Ada\n", "md", "ada.md", data, resume_id="res-a")
    assert (r.resume_id, r.content, r.content_type, r.filename) == ("res-a", "# Ada\n", "md", "ada.md")
    assert r.is_master and r.parent_id is None
    assert r.processed_data == data and r.processing_status == "completed"
    assert r.cover_letter is None and r.outreach_message is None
    assert is_timestamp(r.created_at) and is_timestamp(r.updated_at)
    assert_stored(adapter, r)
    assert adapter.get_resume("res-a") == r


@conformance()
def test_upload_when_a_master_exists_is_not_master(adapter):
    upload(adapter, "res-a")
    b = adapter.upload_resume("plain text", "txt", "b.txt", None, resume_id="res-b")
    assert not b.is_master and b.processing_status == "pending" and b.processed_data is None
    assert_stored(adapter, b)
    assert master_ids(adapter.snapshot()) == ["res-a"]


@conformance()
def test_upload_without_id_generates_distinct_ids(adapter):
    r1 = adapter.upload_resume("one")
    r2 = adapter.upload_resume("two")
    assert isinstance(r1.resume_id, str) and r1.resume_id and r1.resume_id != r2.resume_id
    assert (r1.content_type, r1.filename, r1.processing_status) == ("md", "", "pending")
    assert_stored(adapter, r1)
    assert_stored(adapter, r2)


@conformance("DB-008", "API-013")
def test_upload_invalid_processed_data_is_refused(adapter):
    upload(adapter, "res-a")
    for case, data, path in INVALID_RESUME_DATA:
        assert_refused(adapter, InvalidData, lambda data=data: adapter.upload_resume(
            "bad", "md", "bad.md", data, resume_id="res-bad"), case, f"processed_data.{path}")


@conformance()
def test_get_resume_missing_is_not_found(adapter):
    upload(adapter, "res-a")
    with pytest.raises(NotFound):
        adapter.get_resume("res-missing")


@conformance()
def test_list_resumes_ordered_by_created_at_then_id(adapter):
    for i, rid in enumerate(["res-m", "res-c", "res-x", "res-a"]):
        upload(adapter, rid, i)
    confirm(adapter, "res-c", adapter.create_job("job", job_id="job-1").job_id, "tail-c", "req-c")
    listed = adapter.list_resumes()
    snap = adapter.snapshot()
    assert listed == sorted(snap.resumes.values(), key=lambda r: (r.created_at, r.resume_id))
    assert [r.resume_id for r in listed] == ["res-m", "res-c", "res-x", "res-a", "tail-c"]


@conformance()
def test_list_resumes_empty(adapter):
    assert adapter.list_resumes() == []


@conformance()
def test_update_resume_changes_only_given_fields(adapter):
    old = upload(adapter, "res-a", 1)
    upload(adapter, "res-b", 2)
    r = adapter.update_resume("res-a", {"content": "new body", "content_type": "txt",
                                        "filename": "new.txt"})
    assert (r.content, r.content_type, r.filename) == ("new body", "txt", "new.txt")
    assert r.processed_data == old.processed_data and r.processing_status == "completed"
    assert r.is_master and r.created_at == old.created_at and r.updated_at >= old.updated_at
    assert is_timestamp(r.updated_at)
    assert_stored(adapter, r)
    assert adapter.get_resume("res-b").content == "# Resume res-b\n\nBody 2"


@conformance()
def test_update_resume_processed_data_sets_processing_status(adapter):
    upload(adapter, "res-a", processed=False)
    data = valid_resume_data("Grace Hopper", 7)
    r = adapter.update_resume("res-a", {"processed_data": data})
    assert r.processed_data == data and r.processing_status == "completed"
    assert_stored(adapter, r)
    r = adapter.update_resume("res-a", {"processed_data": None})
    assert r.processed_data is None and r.processing_status == "pending"
    assert_stored(adapter, r)
    r = adapter.update_resume("res-a", {"processed_data": data, "processing_status": "failed"})
    assert r.processed_data == data and r.processing_status == "failed"
    assert_stored(adapter, r)
    r = adapter.update_resume("res-a", {"processing_status": "processing"})
    assert r.processed_data == data and r.processing_status == "processing"
    assert_stored(adapter, r)


@conformance("DB-008", "API-013")
def test_update_resume_invalid_processed_data_is_refused(adapter):
    upload(adapter, "res-a")
    for case, data, path in INVALID_RESUME_DATA:
        assert_refused(adapter, InvalidData, lambda data=data: adapter.update_resume(
            "res-a", {"filename": "changed.md", "processed_data": data}), case,
            f"processed_data.{path}")


DISALLOWED_FIELDS = {"is_master": True, "parent_id": "res-b", "resume_id": "res-z",
                     "cover_letter": "sneaky", "created_at": "2000-01-01T00:00:00.000000+00:00",
                     "no_such_field": 1}


@conformance("DB-008", "API-013")
def test_update_resume_disallowed_field_is_refused(adapter):
    upload(adapter, "res-a")
    upload(adapter, "res-b")
    for key, value in DISALLOWED_FIELDS.items():
        assert key not in UPDATABLE_RESUME_FIELDS
        assert_refused(adapter, InvalidData, lambda key=key, value=value: adapter.update_resume(
            "res-b", {"filename": "changed.md", key: value}), key, key)


@conformance()
def test_set_master_moves_the_master_in_one_step(adapter):
    upload(adapter, "res-a")
    upload(adapter, "res-b")
    upload(adapter, "res-c")
    r = adapter.set_master("res-b")
    assert r.resume_id == "res-b" and r.is_master
    assert_stored(adapter, r)
    assert master_ids(adapter.snapshot()) == ["res-b"]
    r = adapter.set_master("res-b")  # already master: still exactly one
    assert r.is_master and master_ids(adapter.snapshot()) == ["res-b"]
    assert_stored(adapter, r)
    adapter.set_master("res-a")
    assert master_ids(adapter.snapshot()) == ["res-a"]


@conformance()
def test_save_cover_letter_and_outreach_message(adapter):
    old = upload(adapter, "res-a")
    r = adapter.save_cover_letter("res-a", "Dear hiring manager,\nI am writing…")
    assert r.cover_letter == "Dear hiring manager,\nI am writing…" and r.outreach_message is None
    assert r.updated_at >= old.updated_at and r.created_at == old.created_at
    assert_stored(adapter, r)
    r = adapter.save_outreach_message("res-a", "Hi! Quick note about the role.")
    assert r.outreach_message == "Hi! Quick note about the role."
    assert r.cover_letter == "Dear hiring manager,\nI am writing…"
    assert_stored(adapter, r)
    r = adapter.save_cover_letter("res-a", "Second version")
    assert r.cover_letter == "Second version"
    assert_stored(adapter, r)


# --------------------------------------------------------------------------- delete


@conformance()
def test_delete_non_master_resume(adapter):
    upload(adapter, "res-a")
    upload(adapter, "res-b")
    before = adapter.snapshot()
    assert adapter.delete_resume("res-b") is None
    snap = adapter.snapshot()
    assert set(snap.resumes) == {"res-a"} and snap.resumes["res-a"] == before.resumes["res-a"]
    with pytest.raises(NotFound):
        adapter.get_resume("res-b")


@conformance()
def test_delete_last_resume_leaves_empty_store(adapter):
    upload(adapter, "res-a")
    adapter.delete_resume("res-a")
    assert adapter.snapshot().resumes == {} and adapter.list_resumes() == []


@conformance("DB-004", "API-003")
def test_delete_master_promotes_oldest_remaining(adapter):
    upload(adapter, "res-z")
    upload(adapter, "res-b")
    upload(adapter, "res-a")
    adapter.delete_resume("res-z")
    assert master_ids(adapter.snapshot()) == ["res-b"]
    adapter.delete_resume("res-b")
    assert master_ids(adapter.snapshot()) == ["res-a"]


@conformance("DB-004")
def test_delete_tailored_resume_deletes_its_improvement(adapter):
    seed(adapter)
    before = adapter.snapshot()
    adapter.delete_resume("tail-a")
    snap = adapter.snapshot()
    assert set(snap.resumes) == {"res-a", "res-b"} and snap.improvements == {}
    assert snap.resumes == {k: v for k, v in before.resumes.items() if k != "tail-a"}
    assert snap.jobs == before.jobs
    with pytest.raises(NotFound):
        adapter.get_improvement_by_tailored_resume("tail-a")


@conformance("DB-004")
def test_delete_cascades_to_tailored_descendants_and_improvements(adapter):
    seed(adapter)  # res-a (master) -> tail-a
    adapter.create_job("Second job", job_id="job-2")
    confirm(adapter, "tail-a", "job-2", "tail-aa", "req-aa")  # tailored of a tailored resume
    confirm(adapter, "res-b", "job-2", "tail-b", "req-b", prompt="prompt-2")
    adapter.delete_resume("res-b")  # not master: no promotion involved
    snap = adapter.snapshot()
    assert set(snap.resumes) == {"res-a", "tail-a", "tail-aa"}
    assert set(snap.improvements) == {"req-a", "req-aa"}
    adapter.delete_resume("tail-a")
    snap = adapter.snapshot()
    assert set(snap.resumes) == {"res-a"} and snap.improvements == {}
    assert set(snap.jobs) == {"job-1", "job-2"} and master_ids(snap) == ["res-a"]


# --------------------------------------------------------------------------- missing ids

Call = Callable[[StorageAdapter], Any]
#: Operations every adapter, legacy included, refuses with NotFound on a missing id.
MISSING_READS: dict[str, Call] = {
    "get_resume": lambda a: a.get_resume("nope"),
    "get_job": lambda a: a.get_job("nope"),
    "get_improvement": lambda a: a.get_improvement_by_tailored_resume("nope"),
    "get_improvement_of_original": lambda a: a.get_improvement_by_tailored_resume("res-a"),
    "confirm_missing_resume": lambda a: a.confirm_improvement(
        "nope", "job-1", "prompt-1", "hash-tail-a", improved_resume_data(), []),
    "confirm_missing_job": lambda a: a.confirm_improvement(
        "res-a", "nope", "prompt-1", "hash-tail-a", improved_resume_data(), []),
    "confirm_missing_before_conflict": lambda a: a.confirm_improvement(
        "nope", "job-1", "prompt-1", "wrong-hash", {"bad": 1}, []),
}
#: Writes on a missing id, with the audit finding legacy reproduces for each (silent success).
MISSING_WRITES: dict[str, tuple[Call, tuple[str, ...]]] = {
    "update_resume": (lambda a: a.update_resume("nope", {"filename": "x.md"}), ("API-001",)),
    "save_cover_letter": (lambda a: a.save_cover_letter("nope", "text"), ("API-011",)),
    "save_outreach_message": (lambda a: a.save_outreach_message("nope", "text"), ("API-011",)),
    "set_master": (lambda a: a.set_master("nope"), ("DB-006",)),
    "delete_resume": (lambda a: a.delete_resume("nope"), ("API-003",)),
    "record_preview": (lambda a: a.record_preview("nope", "prompt-1", "h"), ("API-011",)),
}


@conformance()
def test_missing_id_reads_and_confirm_raise_not_found(adapter):
    seed(adapter)
    for case, call in MISSING_READS.items():
        assert_refused(adapter, NotFound, lambda call=call: call(adapter), case)


@conformance_cases({case: findings for case, (_, findings) in MISSING_WRITES.items()})
def test_missing_id_writes_raise_not_found_and_change_nothing(adapter, case):
    seed(adapter)
    assert_refused(adapter, NotFound, lambda: MISSING_WRITES[case][0](adapter), case)


# --------------------------------------------------------------------------- jobs


@conformance()
def test_create_and_get_job(adapter):
    job = adapter.create_job("Senior engineer, Python and SQL", ["python", "sql"], job_id="job-1")
    assert (job.job_id, job.content, job.job_keywords) == ("job-1", "Senior engineer, Python and SQL",
                                                          ["python", "sql"])
    assert job.preview_hashes == {} and is_timestamp(job.created_at) and is_timestamp(job.updated_at)
    assert_stored(adapter, job)
    assert adapter.get_job("job-1") == job
    other = adapter.create_job("No keywords")
    assert other.job_id and other.job_id != "job-1" and other.job_keywords == []
    assert_stored(adapter, other)


@conformance()
def test_record_preview_keeps_other_prompts(adapter):
    adapter.create_job("Job", job_id="job-1")
    adapter.create_job("Other job", job_id="job-2")
    job = adapter.record_preview("job-1", "prompt-1", "hash-1")
    assert job.preview_hashes == {"prompt-1": "hash-1"}
    assert_stored(adapter, job)
    job = adapter.record_preview("job-1", "prompt-2", "hash-2")
    assert job.preview_hashes == {"prompt-1": "hash-1", "prompt-2": "hash-2"}
    assert_stored(adapter, job)
    job = adapter.record_preview("job-1", "prompt-1", "hash-1b")
    assert job.preview_hashes == {"prompt-1": "hash-1b", "prompt-2": "hash-2"}
    assert job.content == "Job" and is_timestamp(job.updated_at)
    assert_stored(adapter, job)
    assert adapter.get_job("job-2").preview_hashes == {}


# --------------------------------------------------------------------------- confirm


@conformance()
def test_confirm_creates_tailored_resume_and_improvement(adapter):
    original = upload(adapter, "res-a", 1, content_type="pdf", filename="ada.pdf")
    adapter.create_job("Job", ["python"], job_id="job-1")
    adapter.record_preview("job-1", "prompt-1", "hash-1")
    adapter.record_preview("job-1", "prompt-2", "hash-2")
    data, imps = improved_resume_data(5), improvements_list(5)
    c = adapter.confirm_improvement("res-a", "job-1", "prompt-2", "hash-2", data, imps,
                                    tailored_resume_id="tail-a", request_id="req-a")
    t, imp = c.resume, c.improvement
    assert (t.resume_id, t.parent_id, t.is_master) == ("tail-a", "res-a", False)
    assert (t.content, t.content_type, t.filename) == (original.content, "pdf", "ada.pdf")
    assert t.processed_data == data and t.processing_status == "completed"
    assert t.cover_letter is None and t.outreach_message is None and is_timestamp(t.created_at)
    assert (imp.request_id, imp.original_resume_id, imp.tailored_resume_id, imp.job_id) == (
        "req-a", "res-a", "tail-a", "job-1")
    assert imp.improvements == imps and is_timestamp(imp.created_at)
    assert_stored(adapter, t)
    assert_stored(adapter, imp)
    assert adapter.get_improvement_by_tailored_resume("tail-a") == imp
    assert adapter.get_resume("res-a") == original
    snap = adapter.snapshot()
    assert set(snap.resumes) == {"res-a", "tail-a"} and set(snap.improvements) == {"req-a"}
    assert master_ids(snap) == ["res-a"]


@conformance()
def test_confirm_without_ids_generates_them(adapter):
    upload(adapter, "res-a")
    adapter.create_job("Job", job_id="job-1")
    adapter.record_preview("job-1", "p", "h")
    c = adapter.confirm_improvement("res-a", "job-1", "p", "h", improved_resume_data(), [])
    assert c.resume.resume_id and c.resume.resume_id != "res-a" and c.improvement.request_id
    assert c.improvement.tailored_resume_id == c.resume.resume_id and c.improvement.improvements == []
    assert_stored(adapter, c.resume)
    assert_stored(adapter, c.improvement)


CONFLICTS = {
    "wrong-hash": ("prompt-1", "not-the-hash"),
    "other-prompts-hash": ("prompt-2", "hash-tail-a"),
    "unknown-prompt": ("prompt-9", "hash-tail-a"),
}


@conformance()
def test_confirm_with_wrong_hash_is_conflict(adapter):
    seed(adapter)  # job-1: prompt-1 -> hash-tail-a
    adapter.record_preview("job-1", "prompt-2", "hash-2")
    for case, (prompt, preview_hash) in CONFLICTS.items():
        for data in (improved_resume_data(), {"summary": 1}):  # Conflict comes before InvalidData
            assert_refused(adapter, Conflict, lambda p=prompt, h=preview_hash, d=data: (
                adapter.confirm_improvement("res-b", "job-1", p, h, d, [],
                                            tailored_resume_id="tail-x", request_id="req-x")),
                case)


@conformance("DB-008", "API-013")
def test_confirm_invalid_improved_data_is_refused(adapter):
    seed(adapter)
    adapter.record_preview("job-1", "prompt-2", "hash-2")
    for case, data, path in INVALID_RESUME_DATA:
        assert_refused(adapter, InvalidData, lambda data=data: adapter.confirm_improvement(
            "res-b", "job-1", "prompt-2", "hash-2", data, [], tailored_resume_id="tail-x",
            request_id="req-x"), case, f"improved_data.{path}")


# --------------------------------------------------------------------------- whole store


@conformance()
def test_every_result_equals_the_stored_record(adapter):
    """``honest-results`` on the success paths: after each operation, its result is stored."""
    steps: list[Callable[[StorageAdapter], Any]] = [
        lambda a: a.upload_resume("one", "md", "1.md", valid_resume_data(n=1), resume_id="r1"),
        lambda a: a.upload_resume("two", "txt", "2.txt", None, resume_id="r2"),
        lambda a: a.update_resume("r2", {"processed_data": valid_resume_data(n=2)}),
        lambda a: a.set_master("r2"),
        lambda a: a.save_cover_letter("r1", "cover"),
        lambda a: a.save_outreach_message("r1", "outreach"),
        lambda a: a.create_job("job", ["k1", "k2"], job_id="j1"),
        lambda a: a.record_preview("j1", "p1", "h1"),
        lambda a: a.record_preview("j1", "p2", "h2"),
        lambda a: a.confirm_improvement("r1", "j1", "p1", "h1", improved_resume_data(1),
                                        improvements_list(1), tailored_resume_id="t1",
                                        request_id="q1"),
        lambda a: a.save_cover_letter("t1", "tailored cover"),
        lambda a: a.get_improvement_by_tailored_resume("t1"),
        lambda a: a.get_resume("r1"),
        lambda a: a.get_job("j1"),
    ]
    for step in steps:
        result = step(adapter)
        records = [result.resume, result.improvement] if hasattr(result, "improvement") else [result]
        for record in records:
            assert_stored(adapter, record)
    assert adapter.list_resumes() == sorted(adapter.snapshot().resumes.values(),
                                            key=lambda r: (r.created_at, r.resume_id))


@conformance()
def test_reset_empties_the_store(adapter):
    seed(adapter)
    adapter.reset()
    assert adapter.snapshot() == Snapshot()
    upload(adapter, "res-a")
    assert master_ids(adapter.snapshot()) == ["res-a"]


@conformance()
def test_unicode_and_long_text_round_trip(adapter):
    big = long_text(100_000)
    data = valid_resume_data(UNICODE_TEXT[:40])
    data["summary"] = big
    data["workExperience"][0]["description"] = [UNICODE_TEXT, big[:5000]]
    r = adapter.upload_resume(big, "md", "résumé – 履歴書 📄.md", data, resume_id="res-ü")
    assert len(r.content) == 100_000 and r.content == big
    adapter.save_cover_letter("res-ü", UNICODE_TEXT + big)
    adapter.save_outreach_message("res-ü", UNICODE_TEXT)
    adapter.create_job(UNICODE_TEXT, ["C++", "Ünïcödé", "中文", "emoji 🚀"], job_id="job-ü")
    adapter.record_preview("job-ü", "prompt ✓", "hash-" + "ä" * 64)
    c = adapter.confirm_improvement("res-ü", "job-ü", "prompt ✓", "hash-" + "ä" * 64, data,
                                    [{"note": UNICODE_TEXT, "big": big}],
                                    tailored_resume_id="tail-ü", request_id="req-ü")
    stored = adapter.get_resume("res-ü")
    assert stored.content == big and stored.filename == "résumé – 履歴書 📄.md"
    assert stored.processed_data == data
    assert stored.cover_letter == UNICODE_TEXT + big and stored.outreach_message == UNICODE_TEXT
    job = adapter.get_job("job-ü")
    assert job.content == UNICODE_TEXT and job.job_keywords == ["C++", "Ünïcödé", "中文", "emoji 🚀"]
    assert job.preview_hashes == {"prompt ✓": "hash-" + "ä" * 64}
    assert adapter.get_resume("tail-ü") == c.resume and c.resume.content == big
    imp = adapter.get_improvement_by_tailored_resume("tail-ü")
    assert imp == c.improvement and imp.improvements == [{"note": UNICODE_TEXT, "big": big}]
    assert_stored(adapter, stored)


@conformance(fixture="fresh_adapter")
def test_reopen_after_close_sees_the_same_snapshot(fresh_adapter, make_adapter):
    """A clean close and re-open (a restart) loses nothing, whatever the guarantees."""
    adapter = fresh_adapter
    if adapter.location_kind == "memory":
        pytest.skip(f"{adapter.name} keeps its state in memory")
    seed(adapter)
    before = adapter.snapshot()
    adapter.close()
    reopened = make_adapter(type(adapter).__module__ + ":" + type(adapter).__qualname__,
                            location=adapter.location)
    assert reopened.snapshot() == before


# --------------------------------------------------------------------------- a realistic flow


def realistic_flow(adapter: StorageAdapter) -> None:
    """Upload 3, move the master, a job with previews for 2 prompts, confirm, cover letter and
    outreach message on the tailored resume."""
    upload(adapter, "res-a", 1)
    upload(adapter, "res-b", 2, content_type="pdf", filename="b.pdf")
    upload(adapter, "res-c", 3, processed=False)
    adapter.set_master("res-b")
    adapter.create_job("Senior engineer – Python, SQL", ["python", "sql"], job_id="job-1")
    adapter.record_preview("job-1", "prompt-1", "hash-1")
    adapter.record_preview("job-1", "prompt-2", "hash-2")
    adapter.record_preview("job-1", "prompt-1", "hash-1b")
    adapter.confirm_improvement("res-b", "job-1", "prompt-1", "hash-1b", improved_resume_data(2),
                                improvements_list(2), tailored_resume_id="tail-b",
                                request_id="req-b")
    adapter.save_cover_letter("tail-b", "Dear hiring manager")
    adapter.save_outreach_message("tail-b", "Hello!")


def expected_resume(rid: str, n: int, **kw: Any) -> dict[str, Any]:
    record = {"resume_id": rid, "content": f"# Resume {rid}\n\nBody {n}", "content_type": "md",
              "filename": f"{rid}.md", "is_master": False, "parent_id": None,
              "processed_data": valid_resume_data(f"Person {rid}", n),
              "processing_status": "completed", "cover_letter": None, "outreach_message": None,
              "created_at": TS, "updated_at": TS}
    record.update(kw)
    return record


def expected_after_flow() -> dict[str, Any]:
    return {
        "resumes": {
            "res-a": expected_resume("res-a", 1),
            "res-b": expected_resume("res-b", 2, is_master=True, content_type="pdf",
                                     filename="b.pdf"),
            "res-c": expected_resume("res-c", 3, processed_data=None, processing_status="pending"),
            "tail-b": expected_resume("res-b", 2, resume_id="tail-b", content_type="pdf",
                                      filename="b.pdf", parent_id="res-b",
                                      processed_data=improved_resume_data(2),
                                      cover_letter="Dear hiring manager", outreach_message="Hello!"),
        },
        "jobs": {
            "job-1": {"job_id": "job-1", "content": "Senior engineer – Python, SQL",
                      "preview_hashes": {"prompt-1": "hash-1b", "prompt-2": "hash-2"},
                      "job_keywords": ["python", "sql"], "created_at": TS, "updated_at": TS},
        },
        "improvements": {
            "req-b": {"request_id": "req-b", "original_resume_id": "res-b",
                      "tailored_resume_id": "tail-b", "job_id": "job-1",
                      "improvements": improvements_list(2), "created_at": TS},
        },
    }


@conformance()
def test_realistic_flow_snapshot(adapter):
    realistic_flow(adapter)
    snap = adapter.snapshot()
    assert normalized(snap) == expected_after_flow()
    order = [r.resume_id for r in adapter.list_resumes()]
    assert order == ["res-a", "res-b", "res-c", "tail-b"]
    assert snap.jobs["job-1"].updated_at >= snap.jobs["job-1"].created_at


@conformance("DB-004", "API-003")
def test_realistic_flow_then_delete_master(adapter):
    realistic_flow(adapter)
    adapter.delete_resume("res-b")  # the master: cascade to tail-b and req-b, promote res-a
    expected = expected_after_flow()
    del expected["resumes"]["res-b"], expected["resumes"]["tail-b"]
    expected["resumes"]["res-a"]["is_master"] = True
    expected["improvements"] = {}
    assert normalized(adapter.snapshot()) == expected


# --------------------------------------------------------------------------- the legacy bugs


@pytest.mark.parametrize("adapter", [pytest.param(LEGACY, id=LEGACY)], indirect=True)
def test_legacy_reproduces_the_audited_deviations(adapter):
    """The xfails above only say legacy fails; this pins *how*, as the audit describes it."""
    seed(adapter)  # res-a (master) -> tail-a via req-a; res-b; job-1
    before = adapter.snapshot()
    # API-001 / API-011 / DB-003: silent success on missing ids, returning records never stored.
    ghost = adapter.update_resume("nope", {"filename": "x.md"})
    assert ghost.resume_id == "nope" and ghost.filename == "x.md"
    assert adapter.save_cover_letter("nope", "text").cover_letter == "text"
    assert adapter.save_outreach_message("nope", "text").outreach_message == "text"
    assert adapter.record_preview("nope", "prompt-1", "h").preview_hashes == {"prompt-1": "h"}
    assert adapter.delete_resume("nope") is None
    assert adapter.snapshot() == before
    # DB-008 / API-013: invalid data and any field are stored as given.
    bad = INVALID_RESUME_DATA[0][1]
    adapter.update_resume("res-b", {"processed_data": bad, "parent_id": "res-a"})
    assert adapter.get_resume("res-b").processed_data == bad
    assert adapter.get_resume("res-b").parent_id == "res-a"
    adapter.update_resume("res-b", {"parent_id": None})
    # DB-006: set_master on a missing id unsets the master and sets nothing.
    adapter.set_master("nope")
    assert master_ids(adapter.snapshot()) == []
    adapter.set_master("res-a")
    # DB-004 / DB-005 / API-003: deleting the master leaves orphans and no master.
    adapter.delete_resume("res-a")
    snap = adapter.snapshot()
    assert set(snap.resumes) == {"res-b", "tail-a"} and set(snap.improvements) == {"req-a"}
    assert master_ids(snap) == []
