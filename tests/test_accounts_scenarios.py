"""The real stateful, crash and race scenarios on the accounts family: the legacy adapter's
audited bugs are found, each with a small reproduction or a replayable schedule; the SQLite and
PostgreSQL adapters stay clean."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness.registry import resolve
from harness.results import ScenarioResult
from harness.scenario import ScenarioContext
from scenarios.crash import CrashScenario
from scenarios.families.accounts.plans import PAIRS, build_cases
from scenarios.races import RaceScenario
from scenarios.stateful import StatefulScenario

ROOT = Path(__file__).resolve().parent.parent
FAST_RACES = {"step_timeout": "0.1", "deadlock_timeout": "2"}
#: What the plain stateful search must find on the legacy adapter (email-unique needs threads).
LEGACY_STATEFUL = {"fk-integrity", "transfer-atomic", "cache-threshold", "cleanup-precise"}
#: pair -> the invariant the legacy adapter breaks in it.
LEGACY_RACES = {"signup-signup": "email-unique", "transfer-delete": "fk-integrity",
                "transfer-transfer": "transfer-atomic", "cacheread-cacheread": "cache-threshold",
                "session-delete": "fk-integrity"}


def run(scenario: Any, name: str, root: str, *, seed: int = 0, budget: float = 60.0,
        **options: Any) -> ScenarioResult:
    cls = resolve(name)
    ctx = ScenarioContext(adapter_cls=cls, adapter_name=name, seed=seed, workdir=Path(root),
                          location_root=root, budget_s=budget, options=dict(options))
    try:
        result = scenario.run(ctx)
    finally:
        ctx.cleanup()
    result.finalize(ctx.guarantees)
    return result


def root_for(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if resolve(name).location_kind == "server":
        return request.getfixturevalue("pg_dsn")
    return str(tmp_path)


def messages(result: ScenarioResult) -> list[tuple[str, str]]:
    return [(v.invariant, v.message) for v in result.violations]


# --------------------------------------------------------------------------- legacy


@pytest.fixture(scope="module")
def legacy_stateful(tmp_path_factory) -> tuple[ScenarioResult, float]:
    root = str(tmp_path_factory.mktemp("acc_stateful"))
    t0 = time.monotonic()
    result = run(StatefulScenario(), "accounts-legacy", root, budget=40.0,
                 stateful_modes=["plain"], stateful_invariants=sorted(LEGACY_STATEFUL),
                 stateful_max_shrink_runs=5, stateful_max_replays=25)
    return result, time.monotonic() - t0


def test_legacy_stateful_finds_each_bug_with_a_minimal_program(legacy_stateful):
    result, elapsed = legacy_stateful
    found = {v.invariant: v for v in result.violations}
    assert set(found) == LEGACY_STATEFUL, messages(result)
    steps = {inv: v.context["steps"] for inv, v in found.items()}
    assert steps["cache-threshold"] == 1  # cache_extraction(confidence=0.75)
    assert steps["cleanup-precise"] <= 3  # sign-up, one session, one cleanup
    assert steps["fk-integrity"] <= 3  # sign-up, a session or upload, delete_user
    assert steps["transfer-atomic"] <= 4  # registered owner's upload transferred
    assert "0.75" in found["cache-threshold"].message
    assert all(v.guarantee == "contract" and v.claimed for v in found.values())
    assert set(result.details["time_to_first"]) == LEGACY_STATEFUL
    assert elapsed > 0


def test_legacy_stateful_reproduction_runs(legacy_stateful, tmp_path):
    result, _ = legacy_stateful
    v = next(v for v in result.violations if v.invariant == "cleanup-precise")
    path = tmp_path / "test_repro_cleanup.py"
    path.write_text(v.reproduction, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cleanup_sessions" in v.reproduction


def test_legacy_crash_loses_an_upload_mid_transfer(tmp_path):
    result = run(CrashScenario(), "accounts-legacy", str(tmp_path / "stores"))
    broken = {(r["case"], r["point"]): r["broken"] for r in result.details["crash_matrix"]}
    assert broken[("transfer_cv_ownership", "transfer_cv_ownership.after_delete")] \
        == ["transfer-atomic"]
    assert broken[("transfer_cv_ownership", "transfer_cv_ownership.after_read")] == []
    v = next(v for v in result.violations if v.invariant == "transfer-atomic")
    assert v.guarantee == "crash-safe" and not v.claimed and "is lost" in v.message
    path = tmp_path / "test_repro_crash.py"
    path.write_text(v.reproduction, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_legacy_races_find_each_pair_bug_with_a_schedule(tmp_path):
    result = run(RaceScenario(), "accounts-legacy", str(tmp_path), max_schedules=10,
                 step_timeout="0.5")
    got = {(v.context["pair"], v.invariant) for v in result.violations}
    for pair, inv in LEGACY_RACES.items():
        assert (pair, inv) in got, (pair, inv, messages(result))
    v = next(v for v in result.violations if v.invariant == "email-unique")
    schedule = v.context["schedule"]
    assert v.guarantee == "thread-safe" and set(schedule) <= {"0", "1"}
    assert "0" in schedule and "1" in schedule
    replay = run(RaceScenario(), "accounts-legacy", str(tmp_path), pair="signup-signup",
                 schedule=schedule, step_timeout="0.5")
    assert [x.invariant for x in replay.violations] == ["email-unique"]


# --------------------------------------------------------------------------- correct adapters


#: The default run crashes every case on SQLite; on PostgreSQL (slower per cell) the cases whose
#: operation has several steps, the full matrix running in the 20-seed test below.
CRASH_CASES = {"accounts-sqlite": "",
               "accounts-postgres": "delete_user,transfer_cv_ownership,get_cached_extraction"}
RACE_SCHEDULES = {"accounts-sqlite": 4, "accounts-postgres": 2}


@pytest.mark.parametrize("name", ["accounts-sqlite", "accounts-postgres"])
def test_correct_adapters_crash_clean(name, tmp_path, request):
    result = run(CrashScenario(), name, root_for(name, tmp_path, request),
                 crash_case=CRASH_CASES[name])
    assert result.violations == [], messages(result)
    assert result.status == "passed" and result.steps >= 10
    assert all(r["outcome"] != "error" for r in result.details["crash_matrix"])
    assert {r["outcome"] for r in result.details["crash_matrix"]} == {"crashed"}


@pytest.mark.parametrize("name", ["accounts-sqlite", "accounts-postgres"])
def test_correct_adapters_races_clean(name, tmp_path, request):
    result = run(RaceScenario(), name, root_for(name, tmp_path, request),
                 max_schedules=RACE_SCHEDULES[name], **FAST_RACES)
    assert result.violations == [], messages(result)
    counts = result.details["counts"]
    assert set(counts) == set(LEGACY_RACES)
    assert all(c["schedules"] >= 2 and c["error"] == 0 for c in counts.values())


@pytest.mark.parametrize("name", ["accounts-sqlite", "accounts-postgres"])
def test_correct_adapters_stateful_clean(name, tmp_path, request):
    result = run(StatefulScenario(), name, root_for(name, tmp_path, request), budget=3.5)
    assert result.error is None
    assert result.violations == [], messages(result)
    assert result.status == "passed" and result.steps > 30
    assert {s["mode"] for s in result.details["searches"]} == {"plain", "error", "crash"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["accounts-sqlite", "accounts-postgres"])
def test_correct_adapters_clean_across_20_seeds(name, tmp_path, request):
    """Seeds 0..19, each with its own data: every seed crashes one case at every point and
    races one pair (both rotating, so each case and pair runs under several seeds); every
    fourth seed also runs a short stateful search (plain and error modes)."""
    root = root_for(name, tmp_path, request)
    cases = [c.name for c in build_cases(0)]
    for seed in range(20):
        results = [run(CrashScenario(), name, root, seed=seed,
                       crash_case=cases[seed % len(cases)]),
                   run(RaceScenario(), name, root, seed=seed, pair=PAIRS[seed % len(PAIRS)].name,
                       max_schedules=2, **FAST_RACES)]
        if seed % 4 == 0:
            results.append(run(StatefulScenario(), name, root, seed=seed, budget=1.0,
                               stateful_modes=["plain", "error"]))
        for result in results:
            assert result.violations == [], (seed, result.name, messages(result))
            assert result.status == "passed" and result.steps > 0, (seed, result.name,
                                                                   result.error)
