"""The crash explorer (scenarios/crash): the crash matrix each built-in adapter should produce,
reproductions that really reproduce, determinism and the budget."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ConfigError
from harness.registry import resolve
from harness.results import FINDINGS, PASSED, ScenarioResult
from harness.runner import run_scenario
from harness.scenario import ScenarioContext
from scenarios.crash import CrashScenario
from scenarios.crash.explorer import exact_pattern

REPO = Path(__file__).resolve().parents[1]


def run_crash(request: pytest.FixtureRequest, tmp_path: Path, name: str, *, seed: int = 0,
              budget_s: float | None = None, label: str = "run",
              options: dict[str, Any] | None = None) -> ScenarioResult:
    try:
        cls = resolve(name)
    except ConfigError as exc:  # an adapter still being written elsewhere
        pytest.skip(f"adapter {name} not available: {exc}")
    if cls.location_kind == "server":
        root = request.getfixturevalue("pg_dsn")
    else:
        root = str(tmp_path / label)
        Path(root).mkdir(parents=True, exist_ok=True)
    ctx = ScenarioContext(adapter_cls=cls, adapter_name=name, seed=seed,
                          workdir=tmp_path / f"work-{label}", budget_s=budget_s,
                          location_root=root, options=dict(options or {}))
    return run_scenario(CrashScenario(), ctx)


def cell(result: ScenarioResult, point: str, action: str = "crash",
         case: str | None = None) -> dict[str, Any]:
    rows = [r for r in result.details["crash_matrix"] if r["point"] == point
            and r["action"] == action and case in (None, r["case"])]
    assert len(rows) == 1, (point, action, [r["point"] for r in result.details["crash_matrix"]])
    return rows[0]


def broken_anywhere(result: ScenarioResult, action: str | None = None) -> set[str]:
    return {inv for r in result.details["crash_matrix"] if action in (None, r["action"])
            for inv in r["broken"]}


def check_violation_shape(result: ScenarioResult) -> None:
    matrix_cells = {(r["case"], r["point"], r["action"], inv)
                    for r in result.details["crash_matrix"] for inv in r["broken"]}
    seen = set()
    for v in result.violations:
        assert v.guarantee == "crash-safe"
        assert v.faults and {f["action"] for f in v.faults} <= {"crash", "torn-write"}
        assert "def test_" in v.reproduction and "run_in_child" in v.reproduction
        ctx = v.context
        key = (ctx["case"], ctx["point"], ctx["action"], v.invariant)
        assert key in matrix_cells
        seen.add(key)
    assert seen == matrix_cells  # exactly one violation per broken cell x invariant


# --------------------------------------------------------------------------- per adapter


def test_legacy_matrix(request, tmp_path):
    result = run_crash(request, tmp_path, "tinydb-legacy")
    assert result.error is None, result.error
    assert result.status == FINDINGS  # legacy claims nothing: every finding is expected
    assert not result.details["truncated"]
    assert cell(result, "set_master.after_unset_old")["broken"] == ["one-master"]
    assert cell(result, "set_master.write#1")["broken"] == []  # before the first write
    assert "no-orphan-improvements" in cell(
        result, "confirm_improvement.after_tailored_insert")["broken"]
    for case in ("upload_resume:first", "upload_resume:with_master"):
        assert cell(result, "upload_resume.after_master_check", case=case)["broken"] == []
    assert "store-readable" in cell(result, "create_job.write#1", "torn-write")["broken"]
    assert "store-readable" in broken_anywhere(result, "torn-write")
    assert "store-readable" not in broken_anywhere(result, "crash")
    assert {"one-master", "no-orphan-improvements"} <= broken_anywhere(result, "crash")
    ops = {r["operation"] for r in result.details["crash_matrix"]}
    assert ops == {"upload_resume", "update_resume", "set_master", "delete_resume",
                   "save_cover_letter", "save_outreach_message", "create_job", "record_preview",
                   "confirm_improvement"}
    cases = {c["case"] for c in result.details["cases"]}
    assert {"upload_resume:first", "upload_resume:with_master"} <= cases
    assert all(not v.claimed for v in result.violations)
    check_violation_shape(result)


def test_locked_matrix(request, tmp_path):
    result = run_crash(request, tmp_path, "tinydb-locked")
    assert result.error is None, result.error
    assert "crash-safe" not in resolve("tinydb-locked").guarantees
    assert result.status == FINDINGS  # crash-safe is not claimed: expected findings
    assert all(not v.claimed for v in result.violations)
    # its compensation never runs when the process dies
    assert cell(result, "set_master.after_unset_old")["broken"] == ["one-master"]
    assert "no-orphan-improvements" in cell(
        result, "confirm_improvement.after_tailored_insert")["broken"]
    assert "store-readable" in broken_anywhere(result, "torn-write")
    # named points of the rollback-based flows are all explored
    points = {r["point"] for r in result.details["crash_matrix"]}
    assert {"delete_resume.after_remove_improvements", "delete_resume.after_promote",
            "confirm_improvement.after_improvement_insert"} <= points
    check_violation_shape(result)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sqlite", "postgres"])
def test_sql_adapters_are_crash_safe(request, tmp_path, name):
    t0 = time.monotonic()
    # an unusual seed: server locations are named after it, other runs may share the database
    result = run_crash(request, tmp_path, name, seed=8117)
    assert result.error is None, result.error
    assert result.violations == [], [v.message for v in result.violations]
    assert result.status == PASSED
    matrix = result.details["crash_matrix"]
    assert matrix and all(r["broken"] == [] for r in matrix)
    assert all(r["action"] == "crash" for r in matrix)  # no torn writes on SQL stores
    assert any("#" in r["point"] for r in matrix)  # automatic sql#k / commit#k points
    assert {r["outcome"] for r in matrix} == {"crashed"}
    # a guard against hangs (a child is killed after 30 s); typically 10-30 s on 2 busy CPUs
    assert time.monotonic() - t0 < 180


# --------------------------------------------------------------------------- reproductions


@pytest.fixture(scope="module")
def legacy_result(tmp_path_factory) -> ScenarioResult:
    root = tmp_path_factory.mktemp("legacy-crash")
    ctx = ScenarioContext(adapter_cls=resolve("tinydb-legacy"), adapter_name="tinydb-legacy",
                          seed=0, workdir=root / "work", location_root=str(root))
    return run_scenario(CrashScenario(), ctx)


def _run_pytest(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
                           str(directory)], cwd=REPO, capture_output=True, text=True, timeout=180)


@pytest.mark.slow
def test_reproductions_run_and_reproduce(legacy_result, tmp_path):
    """Reproductions written to files and run with pytest in a fresh interpreter reproduce their
    finding (a crash and a torn write); moved to a crash before any write, the same text fails,
    so its assertion is real."""
    by_point = {v.context["point"]: v for v in legacy_result.violations}
    repro_dir = tmp_path / "repro"
    repro_dir.mkdir()
    (repro_dir / "test_repro_crash.py").write_text(
        by_point["set_master.after_unset_old"].reproduction, encoding="utf-8")
    (repro_dir / "test_repro_torn.py").write_text(
        by_point["create_job.write#1"].reproduction, encoding="utf-8")
    negative = by_point["set_master.after_unset_old"].reproduction.replace(
        "'set_master.after_unset_old'", "'set_master.write#1'")
    assert negative != by_point["set_master.after_unset_old"].reproduction
    (repro_dir / "test_repro_negative.py").write_text(negative, encoding="utf-8")
    proc = _run_pytest(repro_dir)
    out = proc.stdout + proc.stderr
    outcomes = {line.split("::")[0].rsplit("/", 1)[-1]: line.split()[0]
                for line in out.splitlines() if line.startswith(("PASSED ", "FAILED "))}
    assert outcomes == {"test_repro_crash.py": "PASSED", "test_repro_torn.py": "PASSED",
                        "test_repro_negative.py": "FAILED"}, out
    assert "2 passed" in out and "1 failed" in out, out


# --------------------------------------------------------------------------- determinism, budget


@pytest.mark.slow
def test_deterministic(request, tmp_path):
    """Same seed, same matrix: in worker processes or not, with copied or re-made setups."""
    a = run_crash(request, tmp_path, "tinydb-legacy", seed=7, label="a")
    b = run_crash(request, tmp_path, "tinydb-legacy", seed=7, label="b")
    c = run_crash(request, tmp_path, "tinydb-legacy", seed=7, label="c",
                  options={"crash_workers": 1, "crash_reuse_setup": False})
    assert a.details["crash_matrix"] == b.details["crash_matrix"] == c.details["crash_matrix"]
    assert [(v.invariant, v.message, v.reproduction) for v in a.violations] == \
        [(v.invariant, v.message, v.reproduction) for v in b.violations] == \
        [(v.invariant, v.message, v.reproduction) for v in c.violations]


def test_budget_truncates(request, tmp_path):
    result = run_crash(request, tmp_path, "tinydb-legacy", budget_s=0.0)
    assert result.details["truncated"] is True
    assert result.status == "skipped"  # nothing explored is not a pass
    assert "budget" in (result.error or "")


def test_exact_pattern():
    import fnmatch

    for p in ("set_master.write#2", "a[1]*?.b"):
        pat = exact_pattern(p)
        assert fnmatch.fnmatchcase(p, pat)
        assert not fnmatch.fnmatchcase(p + "x", pat)
    assert not fnmatch.fnmatchcase("a1zz.b", exact_pattern("a[1]*?.b"))

