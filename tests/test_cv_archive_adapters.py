"""Conformance of the three cv-archive adapters (real SQLite files, a real PostgreSQL schema,
real backup files), the legacy deviations asserted as such, the service's retry policy, and the
recovery command on real files."""

from __future__ import annotations

import argparse
import io
import json
import os
import time
import uuid
from collections.abc import Iterator

import pytest

from adapters.cv_archive_sql import CvArchivePostgres, pg_backup_dir
from harness.client import RecordingClient
from harness.errors import Conflict, InvalidData, NotFound
from harness.families.cv_archive import recover_cli
from harness.families.cv_archive.contract import BACKED_UP, STORED, CvArchive, sha256_text
from harness.families.cv_archive.service import backoff_delays, corrupt
from harness.faults import FaultController, FaultRule, parse_rule
from harness.forked import run_in_child
from harness.history import History
from harness.registry import resolve

ADAPTERS = ("cv-archive-legacy", "cv-archive-sqlite", "cv-archive-postgres")
CORRECT = ("cv-archive-sqlite", "cv-archive-postgres")
LEGACY = "cv-archive-legacy"
CONTENT = "# Zoë Müller\n\nДата-инженер — 東京\n\nBuilt pipelines."
STORE_DOWN = FaultRule("save_cv.health", "error", count=None)


class Opened:
    """An adapter on a fresh location plus a fault controller and a recording client."""

    def __init__(self, name: str, root: str) -> None:
        self.name = name
        self.cls = resolve(name)
        self.location = self.cls.fresh_location(root, f"t_{uuid.uuid4().hex[:10]}")
        self.faults = FaultController()
        self.adapter: CvArchive = self.cls(self.location, self.faults)
        self.history = History()
        self.client = RecordingClient(self.adapter, self.history)

    def save(self, rid: str, content: str = CONTENT, user: str = "u-1") -> dict:
        return self.adapter.save_cv(rid, user, "cv.md", content).to_dict()

    def reopen(self) -> None:
        self.adapter.close()
        self.adapter = self.cls(self.location, self.faults)
        self.client = RecordingClient(self.adapter, self.history)

    def close(self) -> None:
        self.adapter.close()
        self.cls.drop_location(self.location)


@pytest.fixture(params=ADAPTERS)
def archive(request: pytest.FixtureRequest, tmp_path) -> Iterator[Opened]:
    yield from _open(request, tmp_path, request.param)


@pytest.fixture(params=CORRECT)
def correct(request: pytest.FixtureRequest, tmp_path) -> Iterator[Opened]:
    yield from _open(request, tmp_path, request.param)


@pytest.fixture
def legacy(request: pytest.FixtureRequest, tmp_path) -> Iterator[Opened]:
    yield from _open(request, tmp_path, LEGACY)


def _open(request: pytest.FixtureRequest, tmp_path, name: str) -> Iterator[Opened]:
    root = request.getfixturevalue("pg_dsn") if resolve(name).location_kind == "server" \
        else str(tmp_path)
    opened = Opened(name, root)
    try:
        yield opened
    finally:
        opened.close()


# --------------------------------------------------------------------------- the contract

def test_save_get_list(archive: Opened) -> None:
    result = archive.save("q-1")
    assert result["outcome"] == STORED and result["attempts"] == 1
    assert result["sha256"] == sha256_text(CONTENT)
    archive.save("q-2", "# Other\n\ntext", user="u-2")
    got = archive.adapter.get_cv("q-1")
    assert got.content == CONTENT and got.sha256 == sha256_text(CONTENT) and got.user_id == "u-1"
    assert [r.request_id for r in archive.adapter.list_cvs()] == ["q-1", "q-2"]
    assert [r.request_id for r in archive.adapter.list_cvs("u-2")] == ["q-2"]
    archive.reopen()
    assert archive.adapter.get_cv("q-2").content == "# Other\n\ntext"
    with pytest.raises(NotFound):
        archive.adapter.get_cv("q-missing")


@pytest.mark.parametrize("field", ["request_id", "user_id", "filename", "content"])
def test_invalid_input_is_refused_and_not_backed_up(archive: Opened, field: str) -> None:
    args = {"request_id": "q-1", "user_id": "u-1", "filename": "cv.md", "content": CONTENT}
    args[field] = "" if field != "content" else 42
    archive.faults.tracing = True
    with pytest.raises(InvalidData) as info:
        archive.adapter.save_cv(**args)
    assert info.value.field == field
    assert archive.faults.trace == []  # refused before any attempt: never retried
    snap = archive.adapter.snapshot()
    assert snap.rows == [] and snap.backups == []


def test_transient_error_is_retried_with_backoff(archive: Opened) -> None:
    archive.faults.arm(FaultRule("save_cv.health", "error", count=2))
    t0 = time.monotonic()
    result = archive.save("q-1")
    assert result["outcome"] == STORED and result["attempts"] == 3
    assert time.monotonic() - t0 >= 0.002  # real sleeps between the attempts
    assert len(archive.adapter.snapshot().rows) == 1


def test_store_down_falls_back_to_backup_then_recovers(archive: Opened) -> None:
    archive.faults.arm(STORE_DOWN)
    first = archive.save("q-1")
    second = archive.save("q-2", "# Second\n\nCV")
    archive.faults.clear()
    assert first["outcome"] == second["outcome"] == BACKED_UP
    assert [b.request_id for b in archive.adapter.list_backups()] == ["q-1", "q-2"]
    assert archive.adapter.list_cvs() == []
    dry = archive.adapter.recover(dry_run=True)
    assert dry.imported == ["q-1", "q-2"] and archive.adapter.list_cvs() == []
    assert len(archive.adapter.list_backups()) == 2
    report = archive.adapter.recover()
    assert report.imported == ["q-1", "q-2"]
    assert archive.adapter.list_backups() == []
    assert archive.adapter.get_cv("q-2").content == "# Second\n\nCV"
    assert archive.adapter.recover().imported == []  # a second run finds nothing
    assert len(archive.adapter.list_cvs()) == 2


def test_recover_only_selected_request(archive: Opened) -> None:
    archive.faults.arm(STORE_DOWN)
    archive.save("q-1")
    archive.save("q-2")
    archive.faults.clear()
    assert archive.adapter.recover(only=["q-2"]).imported == ["q-2"]
    assert [b.request_id for b in archive.adapter.list_backups()] == ["q-1"]
    assert [r.request_id for r in archive.adapter.list_cvs()] == ["q-2"]


def test_reset_empties_rows_and_backups(archive: Opened) -> None:
    archive.save("q-1")
    archive.faults.arm(STORE_DOWN)
    archive.save("q-2")
    archive.faults.clear()
    archive.adapter.reset()
    snap = archive.adapter.snapshot()
    assert snap.rows == [] and snap.backups == [] and snap.unreadable == []


def test_backoff_delays_grow_exponentially_and_are_capped() -> None:
    assert backoff_delays(4, 0.001, 0.005) == [0.001, 0.002, 0.004, 0.005]


def test_corrupt_keeps_length_and_changes_hash() -> None:
    for text in (CONTENT, "a", "#", "東京"):
        bad = corrupt(text)
        assert len(bad) == len(text) and bad != text


# --------------------------------------------------------------------------- idempotency

def test_ambiguous_commit_retry_makes_no_second_row(correct: Opened) -> None:
    """The idempotency key: the retry after a commit whose acknowledgement was lost re-inserts
    with ON CONFLICT DO NOTHING and verifies by key."""
    correct.faults.arm(FaultRule("save_cv.committed", "error"))
    result = correct.save("q-1")
    assert result["outcome"] == STORED and result["attempts"] == 2
    assert [r.request_id for r in correct.adapter.list_cvs()] == ["q-1"]


def test_legacy_ambiguous_commit_retry_inserts_second_row(legacy: Opened) -> None:
    """The audited schema (request id not unique, no key): the retry inserts again."""
    legacy.faults.arm(FaultRule("save_cv.committed", "error"))
    assert legacy.save("q-1")["attempts"] == 2
    assert [r.request_id for r in legacy.adapter.list_cvs()] == ["q-1", "q-1"]


def test_client_retry_is_idempotent(correct: Opened) -> None:
    correct.save("q-1")
    assert correct.save("q-1")["outcome"] == STORED
    assert len(correct.adapter.list_cvs()) == 1


def test_legacy_client_retry_duplicates(legacy: Opened) -> None:
    legacy.save("q-1")
    legacy.save("q-1")
    assert len(legacy.adapter.list_cvs()) == 2


def test_same_request_with_other_content_conflicts(correct: Opened) -> None:
    correct.save("q-1")
    correct.faults.tracing = True
    with pytest.raises(Conflict):
        correct.save("q-1", "# Someone else")
    assert correct.faults.trace.count("save_cv.health") == 1  # a Conflict is never retried
    assert correct.adapter.get_cv("q-1").content == CONTENT


# --------------------------------------------------------------------------- verification

def test_corrupted_store_is_detected_and_repaired(correct: Opened) -> None:
    correct.faults.arm(FaultRule("save_cv.stored", "corrupt"))
    result = correct.save("q-1")
    assert result["outcome"] == STORED and result["attempts"] == 2
    assert correct.adapter.get_cv("q-1").content == CONTENT


def test_corrupted_read_back_is_retried(correct: Opened) -> None:
    correct.faults.arm(FaultRule("save_cv.readback", "corrupt"))
    assert correct.save("q-1")["attempts"] == 2
    assert correct.adapter.get_cv("q-1").content == CONTENT


def test_legacy_length_check_acknowledges_corrupted_row(legacy: Opened) -> None:
    legacy.faults.arm(FaultRule("save_cv.stored", "corrupt"))
    assert legacy.save("q-1")["attempts"] == 1  # same length: "verified"
    stored = legacy.adapter.get_cv("q-1").content
    assert stored != CONTENT and len(stored) == len(CONTENT)


# --------------------------------------------------------------------------- recovery

def test_interrupted_recovery_imports_once(correct: Opened) -> None:
    correct.faults.arm(STORE_DOWN)
    correct.save("q-1")
    correct.faults.clear()
    correct.faults.arm(FaultRule("recover.imported", "error"))
    rec = correct.client.call("recover", dry_run=False)
    assert rec.status == "info"
    assert len(correct.adapter.list_backups()) == 1 and len(correct.adapter.list_cvs()) == 1
    report = correct.adapter.recover()
    assert report.already_stored == ["q-1"] and report.imported == []
    assert len(correct.adapter.list_cvs()) == 1 and correct.adapter.list_backups() == []


def test_legacy_interrupted_recovery_imports_twice(legacy: Opened) -> None:
    legacy.faults.arm(STORE_DOWN)
    legacy.save("q-1")
    legacy.faults.clear()
    legacy.faults.arm(FaultRule("recover.imported", "error"))
    assert legacy.client.call("recover", dry_run=False).status == "info"
    legacy.adapter.recover()
    assert [r.request_id for r in legacy.adapter.list_cvs()] == ["q-1", "q-1"]


def test_conflicting_backup_is_kept(correct: Opened) -> None:
    correct.faults.arm(STORE_DOWN)
    correct.save("q-1")
    correct.faults.clear()
    correct.save("q-1", "# A later, different upload")
    report = correct.adapter.recover()
    assert report.conflicts == ["q-1"] and len(correct.adapter.list_backups()) == 1


def test_backup_is_one_json_file_written_atomically(correct: Opened) -> None:
    correct.faults.arm(STORE_DOWN)
    correct.faults.tracing = True
    name = correct.client.call("save_cv", request_id="q-1", user_id="u-1", filename="cv.md",
                               content=CONTENT).result["backup_file"]
    trace = correct.faults.trace
    assert trace.index("save_cv.write#1") < trace.index("save_cv.backup_before_rename")
    path = os.path.join(correct.adapter.backup_dir, name)
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    assert data["request_id"] == "q-1" and data["sha256"] == sha256_text(CONTENT)
    assert sorted(os.listdir(correct.adapter.backup_dir)) == [name]  # no temp file left


@pytest.mark.parametrize("action", ["crash", "torn-write"])
def test_crash_while_writing_backup(tmp_path, action: str) -> None:
    """Correct: the half-written temp file is ignored and nothing else is touched. Legacy: the
    in-place rewrite leaves the one backup file unreadable and the earlier backup is lost."""
    for name, lost in (("cv-archive-sqlite", False), (LEGACY, True)):
        cls = resolve(name)
        location = cls.fresh_location(str(tmp_path), f"{name}_{action}")
        adapter = cls(location, FaultController([FaultRule("save_cv.health", "error", count=None)]))
        assert adapter.save_cv("q-1", "u-1", "cv.md", CONTENT).outcome == BACKED_UP
        adapter.close()
        outcome = run_in_child(cls, location, "save_cv",
                               {"request_id": "q-2", "user_id": "u-1", "filename": "cv.md",
                                "content": CONTENT},
                               [FaultRule("save_cv.health", "error", count=None),
                                FaultRule("save_cv.write#1", action)])
        assert outcome.crashed
        snap = cls(location).snapshot()
        if lost:
            assert snap.unreadable and snap.backups == []
        else:
            assert snap.unreadable == [] and [b.request_id for b in snap.backups] == ["q-1"]


@pytest.mark.postgres
def test_postgres_backup_dir_lives_outside_the_dsn_and_is_dropped(pg_dsn: str) -> None:
    location = CvArchivePostgres.fresh_location(pg_dsn, f"t_{uuid.uuid4().hex[:10]}")
    adapter = CvArchivePostgres(location, FaultController([STORE_DOWN]))
    try:
        adapter.save_cv("q-1", "u-1", "cv.md", CONTENT)
        assert adapter.backup_dir == pg_backup_dir(location) and os.listdir(adapter.backup_dir)
    finally:
        adapter.close()
        CvArchivePostgres.drop_location(location)
    assert not os.path.exists(pg_backup_dir(location))


# --------------------------------------------------------------------------- cv-recover

def _cli(*argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="cv-recover")
    recover_cli.add_arguments(parser)
    out, err = io.StringIO(), io.StringIO()
    code = recover_cli.main(parser.parse_args(list(argv)), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def backed_up(tmp_path) -> str:
    cls = resolve("cv-archive-sqlite")
    location = cls.fresh_location(str(tmp_path), "archive")
    adapter = cls(location, FaultController([STORE_DOWN]))
    adapter.save_cv("q-1", "u-1", "a.md", CONTENT)
    adapter.save_cv("q-2", "u-2", "b.md", "# B")
    adapter.close()
    return location


def test_cli_list_dry_run_all(backed_up: str) -> None:
    base = ("--adapter", "cv-archive-sqlite", "--location", backed_up)
    code, out, _ = _cli(*base, "--list")
    assert code == 0 and "q-1\tu-1\ta.md" in out and "2 backup(s) waiting" in out
    code, out, _ = _cli(*base, "--all", "--dry-run")
    assert code == 0 and "would import\tq-1" in out and "would import\tq-2" in out
    code, out, _ = _cli(*base, "--list")
    assert "2 backup(s) waiting" in out  # the dry run changed nothing
    code, out, _ = _cli(*base, "--only", "q-2")
    assert code == 0 and "imported\tq-2" in out and "q-1" not in out
    code, out, _ = _cli(*base, "--all")
    assert code == 0 and "imported\tq-1" in out
    code, out, _ = _cli(*base, "--list")
    assert code == 0 and "0 backup(s) waiting" in out
    reopened = resolve("cv-archive-sqlite")(backed_up)
    try:
        assert [r.request_id for r in reopened.list_cvs()] == ["q-2", "q-1"]
    finally:
        reopened.close()


def test_cli_reports_unreadable_backup_with_status_1(backed_up: str) -> None:
    with open(os.path.join(backed_up, "backups", "cv-broken.json"), "w") as fh:
        fh.write('{"request_id": "q-')
    base = ("--adapter", "cv-archive-sqlite", "--location", backed_up)
    code, out, _ = _cli(*base, "--list")
    assert code == 1 and "UNREADABLE\tcv-broken.json" in out
    code, out, _ = _cli(*base, "--all")
    assert code == 1 and "2 imported" in out and "UNREADABLE\tcv-broken.json" in out


@pytest.mark.parametrize("argv, message", [
    (("--adapter", "cv-archive-sqlite", "--location", "/nonexistent/dir", "--list"),
     "not an existing directory"),
    (("--adapter", "nope", "--location", "/tmp", "--list"), "nope"),
    (("--adapter", "sqlite", "--location", "/tmp", "--list"), "not a cv-archive adapter"),
    (("--adapter", "cv-archive-sqlite", "--location", "/tmp"), "choose one of"),
    (("--adapter", "cv-archive-sqlite", "--location", "/tmp", "--list", "--dry-run"),
     "--dry-run applies"),
])
def test_cli_bad_input_exits_2_with_one_line(argv: tuple[str, ...], message: str) -> None:
    code, out, err = _cli(*argv)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1 and err.startswith("cv-recover: error:")


def test_corrupt_fault_action_is_reported_to_the_caller() -> None:
    faults = FaultController([parse_rule("corrupt@save_cv.stored:count=1")])
    with faults.operation("save_cv", step=0, process="p"):
        assert faults.point("save_cv.readback") is False
        assert faults.point("save_cv.stored") is True
        assert faults.point("save_cv.stored") is False  # count=1: fired once
        assert faults.boundary("write") is None  # nothing to corrupt at a boundary
    assert [(i.point, i.action) for i in faults.injections] == [("save_cv.stored", "corrupt")]
