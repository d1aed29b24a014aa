"""The sqlite and postgres adapters: atomicity at every fault point, constraints enforced by the
database itself, concurrency from threads and processes, crash safety in a forked child, and the
PostgreSQL location handling (DSN guard, reachability, one schema per location)."""

from __future__ import annotations

import multiprocessing
import os
import random
import threading
import time
import uuid
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from adapters.postgres import PostgresAdapter, check_reachable, parse_dsn
from harness.client import RecordingClient
from harness.contract import WRITE_OPERATIONS, StorageAdapter
from harness.errors import ConfigError, NotFound, StorageError
from harness.faults import CRASH_EXIT_CODE, FaultController, FaultRule
from harness.history import INFO, OK
from harness.registry import resolve

SQL = ("sqlite", "postgres")
PD = {"personalInfo": {"name": "Ada Lovelace"}, "summary": "Analyst"}

#: One call per write operation, valid against the state ``seed`` builds.
CALLS: dict[str, dict[str, Any]] = {
    "upload_resume": {"content": "new", "processed_data": PD, "resume_id": "C"},
    "update_resume": {"resume_id": "A", "fields": {"content": "edited", "processed_data": None}},
    "set_master": {"resume_id": "B"},
    "delete_resume": {"resume_id": "A"},  # the master, with a tailored child and an improvement
    "save_cover_letter": {"resume_id": "A", "text": "Dear team"},
    "save_outreach_message": {"resume_id": "A", "text": "Hello"},
    "create_job": {"content": "another job", "job_keywords": ["sql"], "job_id": "J2"},
    "record_preview": {"job_id": "J", "prompt_id": "p2", "preview_hash": "h2"},
    "confirm_improvement": {"resume_id": "B", "job_id": "J", "prompt_id": "p1",
                            "preview_hash": "h1", "improved_data": PD,
                            "improvements": [{"section": "summary"}],
                            "tailored_resume_id": "T2", "request_id": "Q2"},
}


#: The multi-step write operations checked point by point (the single-row ones are alike).
FAULT_OPS = ("upload_resume", "update_resume", "set_master", "delete_resume", "record_preview",
             "confirm_improvement")
assert set(FAULT_OPS) <= WRITE_OPERATIONS


def seed(a: StorageAdapter) -> None:
    """A (master), B, job J with a preview hash, T tailored from A with improvement Q."""
    a.upload_resume("resume A", processed_data=PD, resume_id="A")
    a.upload_resume("resume B", resume_id="B")
    a.create_job("job", ["python"], job_id="J")
    a.record_preview("J", "p1", "h1")
    a.confirm_improvement("A", "J", "p1", "h1", PD, [{"k": "v"}], tailored_resume_id="T",
                          request_id="Q")


def masters(a: StorageAdapter) -> list[str]:
    return [r.resume_id for r in a.snapshot().masters()]


# --------------------------------------------------------------------------- atomicity


@pytest.mark.parametrize("name", SQL)
@pytest.mark.parametrize("op", FAULT_OPS)
def test_error_at_every_point_changes_nothing(make_adapter, name: str, op: str) -> None:
    ctrl = FaultController()
    a = make_adapter(name, faults=ctrl)
    client = RecordingClient(a)

    # The declared points are reached, in the declared order.
    seed(a)
    ctrl.tracing = True
    assert client.call(op, **CALLS[op]).status == OK
    ctrl.tracing = False
    named = [p for p in ctrl.trace if "#" not in p]
    assert named == list(type(a).fault_points[op])
    a.reset()
    seed(a)
    before = a.snapshot().to_dict()

    def attempt(point: str) -> bool:
        """Error at ``point`` during ``op``: False when ``op`` never reached it (and succeeded)."""
        nonlocal before
        rule = ctrl.arm(FaultRule(point, "error", operation=op))
        rec = client.call(op, **CALLS[op])
        ctrl.clear()
        if not rule.fired:
            assert rec.status == OK, rec.error
            a.reset()
            seed(a)
            before = a.snapshot().to_dict()
            return False
        assert (rec.status, rec.error_type) == (INFO, "InjectedFault"), rec.error
        assert a.snapshot().to_dict() == before, f"{op}: error at {point} left changes behind"
        return True

    for point in type(a).fault_points[op]:
        assert attempt(point), f"{point} not reached"
    k = 1
    while attempt(f"{op}.sql#{k}"):
        k += 1
    assert k > 3, f"{op} reached only {k - 1} statements"
    assert attempt(f"{op}.commit#1")


# --------------------------------------------------------------------------- constraints


def _raw(a: StorageAdapter, sql: str, **params: Any) -> None:
    with a.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(text(sql), params)


_INSERT_RESUME = ("INSERT INTO resumes (resume_id, content, content_type, filename, is_master, "
                  "processing_status, created_at, updated_at) "
                  "VALUES (:rid, 'c', 'md', '', :master, 'pending', 't', 't')")


@pytest.mark.parametrize("name", SQL)
def test_partial_unique_index_rejects_second_master(make_adapter, name: str) -> None:
    a = make_adapter(name)
    a.upload_resume("first", resume_id="A")
    _raw(a, _INSERT_RESUME, rid="Y", master=False)  # non-masters are not constrained
    with pytest.raises(IntegrityError):
        _raw(a, _INSERT_RESUME, rid="Z", master=True)
    assert masters(a) == ["A"]


@pytest.mark.parametrize("name", SQL)
def test_foreign_keys_are_enforced(make_adapter, name: str) -> None:
    a = make_adapter(name)
    with pytest.raises(IntegrityError):
        _raw(a, "INSERT INTO improvements (request_id, original_resume_id, tailored_resume_id, "
                "job_id, improvements, created_at) VALUES ('q', 'nope', 'nope', 'nope', '[]', 't')")
    with pytest.raises(IntegrityError):
        _raw(a, "INSERT INTO resumes (resume_id, content, is_master, parent_id, created_at, "
                "updated_at) VALUES ('x', 'c', :f, 'missing-parent', 't', 't')", f=False)
    assert a.snapshot().to_dict() == {"resumes": {}, "jobs": {}, "improvements": {}}


@pytest.mark.parametrize("name", SQL)
def test_reopen_reads_back_everything(make_adapter, name: str) -> None:
    a = make_adapter(name)
    seed(a)
    before = a.snapshot().to_dict()
    a.close()
    assert make_adapter(name, location=a.location).snapshot().to_dict() == before


# --------------------------------------------------------------------------- threads


def _run_threads(n: int, target: Any) -> None:
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            target(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


@pytest.mark.parametrize("name", SQL)
def test_concurrent_record_preview_keeps_every_prompt(make_adapter, name: str) -> None:
    a = make_adapter(name)
    a.create_job("job", job_id="J")

    def work(i: int) -> None:
        for k in range(50):
            a.record_preview("J", f"t{i}-p{k}", f"h{i}-{k}")

    _run_threads(2, work)
    hashes = a.get_job("J").preview_hashes
    assert hashes == {f"t{i}-p{k}": f"h{i}-{k}" for i in range(2) for k in range(50)}


@pytest.mark.parametrize("name", SQL)
def test_concurrent_first_uploads_make_exactly_one_master(make_adapter, name: str) -> None:
    a = make_adapter(name)
    _run_threads(8, lambda i: a.upload_resume(f"resume {i}", resume_id=f"R{i}"))
    assert len(a.snapshot().resumes) == 8
    assert len(masters(a)) == 1


@pytest.mark.parametrize("name", SQL)
def test_concurrent_mastership_changes_never_leave_zero_or_two_masters(make_adapter,
                                                                       name: str) -> None:
    a = make_adapter(name)
    a.upload_resume("seed", resume_id="S")
    stop = threading.Event()
    seen: list[tuple[int, int]] = []  # (masters, non-tailored resumes) in each snapshot

    def observe() -> None:
        while not stop.is_set():
            snap = a.snapshot()
            seen.append((len(snap.masters()), sum(not r.is_tailored for r in snap.resumes.values())))

    observer = threading.Thread(target=observe)
    observer.start()

    def work(i: int) -> None:
        rng = random.Random(i)
        for k in range(12):
            choice, target = rng.randrange(3), f"W{rng.randrange(4)}-{rng.randrange(k + 1)}"
            try:
                if choice == 0:
                    a.upload_resume(f"resume {i}/{k}", resume_id=f"W{i}-{k}")
                elif choice == 1:
                    a.set_master(target)
                else:
                    a.delete_resume(target)
            except NotFound:
                pass

    try:
        _run_threads(4, work)
    finally:
        stop.set()
        observer.join(30)
    seen.append((len(masters(a)), len(a.snapshot().resumes)))
    assert all(m == (1 if n else 0) for m, n in seen), [s for s in seen if s[0] != (1 if s[1] else 0)]


# --------------------------------------------------------------------------- processes


def _process_worker(name: str, location: str, n: int, rounds: int) -> None:
    a = resolve(name)(location)
    try:
        for i in range(rounds):
            a.upload_resume(f"process {n} resume {i}", resume_id=f"P{n}-{i}")
            a.record_preview("J", f"P{n}-prompt{i}", f"h{n}-{i}")
    finally:
        a.close()


@pytest.mark.parametrize("name", SQL)
def test_two_processes_lose_nothing(make_adapter, name: str) -> None:
    a = make_adapter(name)
    a.create_job("job", job_id="J")
    rounds = 50
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_process_worker, args=(name, a.location, n, rounds))
             for n in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    snap = a.snapshot()
    assert set(snap.resumes) == {f"P{n}-{i}" for n in range(2) for i in range(rounds)}
    assert len(snap.masters()) == 1
    assert snap.jobs["J"].preview_hashes == {
        f"P{n}-prompt{i}": f"h{n}-{i}" for n in range(2) for i in range(rounds)}


@pytest.mark.parametrize("name", SQL)
def test_child_writes_survive_the_parent_closing_its_adapter(make_adapter, name: str) -> None:
    # SQLite: a child forked while the parent had the file open inherits SQLite's per-process
    # lock bookkeeping; without the adapter's before-fork hook the parent's close then
    # checkpoints and deletes the WAL under the child and its acknowledged writes vanish.
    a = make_adapter(name)
    seed(a)
    pid = os.fork()
    if pid == 0:
        try:
            child = resolve(name)(a.location)
            for i in range(20):
                child.upload_resume("child", resume_id=f"C{i}")
                time.sleep(0.005)
            os._exit(0)
        except BaseException:  # noqa: BLE001 - reported through the exit status
            os._exit(1)
    time.sleep(0.05)
    a.close()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    reopened = make_adapter(name, location=a.location)
    assert {f"C{i}" for i in range(20)} <= set(reopened.snapshot().resumes)


# --------------------------------------------------------------------------- crash


@pytest.mark.parametrize("name", SQL)
@pytest.mark.parametrize("point", ["set_master.after_unset_old", "set_master.commit#1"])
def test_crash_in_forked_child_leaves_store_unchanged(make_adapter, name: str, point: str) -> None:
    a = make_adapter(name)
    seed(a)
    before = a.snapshot().to_dict()
    pid = os.fork()
    if pid == 0:  # the child: a new adapter on the same location, dies at the point
        try:
            ctrl = FaultController(rules=[FaultRule(point, "crash")], crash_exits=True)
            child = resolve(name)(a.location, ctrl)
            RecordingClient(child).call("set_master", resume_id="B")
            os._exit(0)
        except BaseException:  # noqa: BLE001 - any other way out is a failure
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == CRASH_EXIT_CODE
    reopened = make_adapter(name, location=a.location)
    assert reopened.snapshot().to_dict() == before
    assert masters(reopened) == ["A"]
    assert a.get_resume("A").is_master  # the parent's own connections still work


# --------------------------------------------------------------------------- postgres locations


def test_dsn_guard_refuses_non_test_database_without_leaking_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        PostgresAdapter("postgresql://u:secret@127.0.0.1/prod")
    message = str(info.value)
    assert "secret" not in message and "prod" in message and "\n" not in message


def test_dsn_guard_can_be_lifted() -> None:
    target = parse_dsn("postgres://u:secret@127.0.0.1:1/prod?harness_allow_any_database=1")
    assert target.url.drivername == "postgresql+psycopg"
    assert "harness_allow_any_database" not in target.url.query
    with pytest.raises(StorageError) as info:  # the guard passes; nothing listens on port 1
        PostgresAdapter("postgresql://u:secret@127.0.0.1:1/prod?harness_allow_any_database=1")
    assert "secret" not in str(info.value)


@pytest.mark.parametrize("dsn", ["postgresql://u:secret@host:notaport/test", "mysql://u:secret@h/test",
                                 "", "postgresql+psycopg2://u:secret@h/db"])
def test_bad_dsns_are_config_errors(dsn: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_dsn(dsn)
    assert "secret" not in str(info.value)


def test_schema_parameter_is_stripped_and_sanitized() -> None:
    target = parse_dsn("postgresql+psycopg://u@h/test_db?harness_schema=Bad-Name!&sslmode=disable")
    assert target.schema == "bad_name_"
    assert dict(target.url.query) == {"sslmode": "disable"}
    assert parse_dsn("postgresql://u@h/test").schema == "resume_harness"
    assert parse_dsn("postgresql://u@h/test?harness_schema=public").schema == "h_public"


def test_check_reachable_fails_fast() -> None:
    started = time.monotonic()
    with pytest.raises(ConfigError, match="^cannot reach PostgreSQL at "):
        check_reachable("postgresql://u:secret@127.0.0.1:1/test", timeout=2)
    assert time.monotonic() - started < 5


def _schema_exists(dsn: str, schema: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
                            (schema,)).fetchone() is not None


@pytest.mark.postgres
def test_fresh_and_drop_location_create_and_drop_a_schema(pg_dsn: str) -> None:
    check_reachable(pg_dsn)
    tag = f"t_loc_{uuid.uuid4().hex[:8]}"
    location = PostgresAdapter.fresh_location(pg_dsn, tag)
    try:
        assert parse_dsn(location).schema == tag
        assert _schema_exists(pg_dsn, tag)
    finally:
        PostgresAdapter.drop_location(location)
    assert not _schema_exists(pg_dsn, tag)


@pytest.mark.postgres
def test_reset_truncates_only_its_own_schema(make_adapter) -> None:
    mine, other = make_adapter("postgres"), make_adapter("postgres")
    seed(mine)
    seed(other)
    mine.reset()
    assert mine.snapshot().to_dict() == {"resumes": {}, "jobs": {}, "improvements": {}}
    assert set(other.snapshot().resumes) == {"A", "B", "T"}
