"""The fault controller: rule matching, counts, seeded probability, actions, recording, and
the automatic storage-boundary points on real TinyDB files and real SQLAlchemy engines."""

from __future__ import annotations

import json
import os
import time

import pytest
from sqlalchemy import create_engine, text
from tinydb import TinyDB

from harness import boundaries
from harness.errors import StorageError
from harness.faults import (
    CRASH_EXIT_CODE,
    FaultController,
    FaultRule,
    InjectedFault,
    SimulatedCrash,
    parse_rule,
)


def test_error_fires_once_at_matching_point_and_is_recorded() -> None:
    ctrl = FaultController([FaultRule("set_master.*", "error")])
    with ctrl.operation("set_master", step=3, process="p1"):
        with pytest.raises(InjectedFault) as info:
            ctrl.point("set_master.after_unset_old")
        ctrl.point("set_master.after_unset_old")  # count=1: exhausted
    assert isinstance(info.value, StorageError)
    assert [(i.point, i.action, i.operation, i.step, i.process) for i in ctrl.injections] == [
        ("set_master.after_unset_old", "error", "set_master", 3, "p1")]


def test_non_matching_points_and_operations_do_nothing() -> None:
    ctrl = FaultController([FaultRule("confirm_improvement.*", "error", operation="confirm_improvement")])
    ctrl.point("set_master.after_unset_old")
    with ctrl.operation("set_master"):
        ctrl.point("confirm_improvement.after_tailored_insert")  # wrong operation
    assert ctrl.injections == []


def test_after_and_count() -> None:
    ctrl = FaultController([FaultRule("op.p", "error", after=2, count=2)])
    outcomes = []
    for _ in range(6):
        try:
            ctrl.point("op.p")
            outcomes.append("ok")
        except InjectedFault:
            outcomes.append("err")
    assert outcomes == ["ok", "ok", "err", "err", "ok", "ok"]


def test_probability_is_seeded() -> None:
    def pattern(seed: int) -> list[bool]:
        ctrl = FaultController([FaultRule("x", "error", probability=0.5, count=None)], seed=seed)
        out = []
        for _ in range(40):
            try:
                ctrl.point("x")
                out.append(False)
            except InjectedFault:
                out.append(True)
        return out

    assert pattern(7) == pattern(7)
    assert pattern(7) != pattern(8)
    assert 5 < sum(pattern(7)) < 35


def test_crash_outside_child_raises_simulated_crash() -> None:
    ctrl = FaultController([FaultRule("x", "crash")])
    with pytest.raises(SimulatedCrash):
        ctrl.point("x")


def test_crash_in_forked_child_exits_without_finally(tmp_path) -> None:
    marker = tmp_path / "finally-ran"
    pid = os.fork()
    if pid == 0:  # child
        ctrl = FaultController([FaultRule("x", "crash")], crash_exits=True)
        try:
            ctrl.point("x")
        finally:
            marker.write_text("yes")
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == CRASH_EXIT_CODE
    assert not marker.exists()


def test_delay_and_pause() -> None:
    ctrl = FaultController([FaultRule("d", "delay", delay_s=0.05)])
    t0 = time.monotonic()
    ctrl.point("d")
    assert time.monotonic() - t0 >= 0.05
    rule = FaultRule("p", "pause", pause_timeout_s=2)
    ctrl = FaultController([rule])
    rule.release()
    t0 = time.monotonic()
    ctrl.point("p")  # released: returns at once
    assert time.monotonic() - t0 < 1


def test_on_point_sees_every_point_and_tracing() -> None:
    seen = []
    ctrl = FaultController(tracing=True)
    ctrl.on_point = seen.append
    with ctrl.operation("upload_resume"):
        ctrl.point("upload_resume.after_master_check")
        ctrl.boundary("write")
        ctrl.boundary("write")
    assert seen == ["upload_resume.after_master_check", "upload_resume.write#1", "upload_resume.write#2"]
    assert ctrl.trace == seen


def test_parse_rule() -> None:
    rule = parse_rule("error@set_master.*:count=2,p=0.5,after=1")
    assert (rule.action, rule.point, rule.count, rule.probability, rule.after) == (
        "error", "set_master.*", 2, 0.5, 1)
    with pytest.raises(ValueError):
        parse_rule("explode@x")
    with pytest.raises(ValueError):
        parse_rule("error")


def test_tinydb_boundary_counts_writes_and_fires(tmp_path) -> None:
    boundaries.install()
    db = TinyDB(tmp_path / "db.json")
    ctrl = FaultController([FaultRule("op.write#2", "error")])
    with ctrl.operation("op"):
        db.insert({"a": 1})
        with pytest.raises(InjectedFault):
            db.insert({"a": 2})
    db.insert({"a": 3})  # outside an operation: no fault
    assert [d["a"] for d in db.all()] == [1, 3]
    db.close()


def test_tinydb_torn_write_leaves_a_corrupt_file(tmp_path) -> None:
    boundaries.install()
    path = tmp_path / "db.json"
    db = TinyDB(path)
    db.insert({"name": "x" * 200})
    db.close()
    pid = os.fork()
    if pid == 0:
        ctrl = FaultController([FaultRule("op.write#1", "torn-write", torn_fraction=0.3)],
                               crash_exits=True)
        child_db = TinyDB(path)
        with ctrl.operation("op"):
            child_db.insert({"name": "y" * 5000})
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == CRASH_EXIT_CODE
    with pytest.raises(json.JSONDecodeError):
        json.loads(path.read_text())


def test_sqlalchemy_boundary_points(tmp_path) -> None:
    boundaries.install()
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as conn:
        conn.execute(text("create table t (x int)"))
    ctrl = FaultController([FaultRule("op.commit#1", "error")], tracing=True)
    with ctrl.operation("op"):
        with pytest.raises(InjectedFault):
            with engine.begin() as conn:
                conn.execute(text("insert into t values (1)"))
                conn.execute(text("insert into t values (2)"))
    assert ctrl.trace == ["op.sql#1", "op.sql#2", "op.commit#1"]
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from t")).scalar() == 0
    engine.dispose()
