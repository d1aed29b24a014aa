"""The real stateful / crash / races scenarios on the cv-archive adapters: every legacy bug is
found (with a reproduction or a schedule that replays), the SQLite and PostgreSQL adapters stay
clean."""

from __future__ import annotations

import importlib.util
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from harness.registry import resolve
from harness.results import ScenarioResult
from harness.runner import run_scenario
from harness.scenario import ScenarioContext
from scenarios.crash import CrashScenario
from scenarios.families.cv_archive.plans import STORE_DOWN, build_cases
from scenarios.races import RaceScenario
from scenarios.stateful import StatefulScenario

LEGACY = "cv-archive-legacy"
CORRECT = ("cv-archive-sqlite", "cv-archive-postgres")
NO_DUPLICATE, NO_LOSS = "cv-no-duplicate-on-retry", "cv-no-loss"
RECOVERED_ONCE, VERIFIED = "cv-recovered-once", "cv-verified"


def run(request: pytest.FixtureRequest, tmp_path: Path, name: str, scenario: Any, *,
        seed: int = 0, budget_s: float | None = None, label: str = "run",
        options: dict[str, Any] | None = None) -> ScenarioResult:
    cls = resolve(name)
    if cls.location_kind == "server":
        root = request.getfixturevalue("pg_dsn")
    else:
        root = str(tmp_path / label)
        Path(root).mkdir(parents=True, exist_ok=True)
    ctx = ScenarioContext(adapter_cls=cls, adapter_name=name, seed=seed,
                          workdir=tmp_path / f"work-{label}", budget_s=budget_s,
                          location_root=root, options=dict(options or {}))
    result = run_scenario(scenario, ctx)
    assert result.error is None, result.error
    return result


def by_invariant(result: ScenarioResult) -> dict[str, list]:
    out: dict[str, list] = {}
    for v in result.violations:
        out.setdefault(v.invariant, []).append(v)
    return out


def run_reproduction(tmp_path: Path, text: str, name: str) -> None:
    """Load a rendered reproduction as a module and run its test function (it asserts that the
    violation reproduces)."""
    path = tmp_path / f"repro_{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(f"cv_repro_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tests = [getattr(module, n) for n in dir(module) if n.startswith("test_")]
    assert len(tests) == 1
    where = tmp_path / f"repro_{name}"
    where.mkdir()
    tests[0](where)


# --------------------------------------------------------------------------- legacy: crash

def test_legacy_crash_loses_backups_in_the_in_place_rewrite(request, tmp_path) -> None:
    result = run(request, tmp_path, LEGACY, CrashScenario(),
                 options={"crash_case": "save_cv:store-down,recover,save_cv:client-retry"})
    assert not result.details["truncated"]
    broken = {(r["case"], r["point"], r["action"]): r["broken"]
              for r in result.details["crash_matrix"]}
    for action in ("crash", "torn-write"):
        # the backup write of a save while the store is down destroys the earlier backup
        assert broken[("save_cv:store-down", "save_cv.write#1", action)] == [NO_LOSS]
        # recovery's in-place rewrite destroys the backups not yet imported
        assert broken[("recover", "recover.write#1", action)] == [NO_LOSS]
    # before the file is opened nothing is lost
    assert broken[("save_cv:store-down", "save_cv.backup_begin", "crash")] == []
    # the client retry's duplicate is a contract bug: in the baseline, not blamed on crashes
    retry = [r for r in result.details["crash_matrix"] if r["case"] == "save_cv:client-retry"]
    assert retry and not any(r["broken"] for r in retry)
    assert any(NO_DUPLICATE in r["preexisting"] for r in retry)
    assert set(by_invariant(result)) == {NO_LOSS}
    v = next(v for v in result.violations if v.context["case"] == "save_cv:store-down")
    assert v.guarantee == "crash-safe" and STORE_DOWN in v.reproduction
    run_reproduction(tmp_path, v.reproduction, "crash")


# --------------------------------------------------------------------------- legacy: races

@pytest.mark.parametrize("pair, invariant", [
    ("save-save-same-request", NO_DUPLICATE),
    ("recover-recover", RECOVERED_ONCE),
    ("backup-recover", NO_LOSS),
])
def test_legacy_races_found_with_a_replayable_schedule(request, tmp_path, pair: str,
                                                       invariant: str) -> None:
    result = run(request, tmp_path, LEGACY, RaceScenario(),
                 options={"pair": pair, "max_schedules": 12}, label="explore")
    found = by_invariant(result)
    assert set(found) == {invariant}, result.details["counts"]
    assert found[invariant][0].guarantee == "thread-safe"
    schedule = found[invariant][0].context["schedule"]
    assert f"schedule={schedule}" in found[invariant][0].reproduction
    replay = run(request, tmp_path, LEGACY, RaceScenario(),
                 options={"pair": pair, "schedule": schedule}, label="replay")
    assert invariant in {v.invariant for v in replay.violations}
    assert replay.details["schedules"][0]["schedule"] == schedule


def test_legacy_recover_race_needs_an_interleaving(request, tmp_path) -> None:
    """Run one after the other, two recoveries are fine: the finding is the race's."""
    serial = run(request, tmp_path, LEGACY, RaceScenario(),
                 options={"pair": "recover-recover", "schedule": "0" * 40})
    assert serial.violations == []


# --------------------------------------------------------------------------- legacy: stateful

def test_legacy_stateful_plain_finds_duplicate_on_client_retry(request, tmp_path) -> None:
    """Without faults: a save and the client's retry of it leave two rows."""
    result = run(request, tmp_path, LEGACY, StatefulScenario(), budget_s=20,
                 options={"stateful_modes": "plain", "stateful_invariants": NO_DUPLICATE,
                          "stateful_step_count": 8, "stateful_shrink_budget_s": 3})
    found = by_invariant(result)
    assert set(found) == {NO_DUPLICATE}, result.details["searches"]
    v = found[NO_DUPLICATE][0]
    assert v.context["steps"] == 2 and v.guarantee == "contract"
    assert result.duration_s < 20  # the search stops once its target is found


def test_legacy_stateful_errors_find_unverified_rows_and_double_recovery(request, tmp_path) -> None:
    """Injected faults: a same-length corruption passes the length check (one step); recovery
    interrupted after an import imports again (three steps: a save while the store is down,
    two recoveries that fail after importing)."""
    result = run(request, tmp_path, LEGACY, StatefulScenario(), budget_s=30,
                 options={"stateful_modes": "error",
                          "stateful_invariants": f"{VERIFIED},{RECOVERED_ONCE}",
                          "stateful_step_count": 8, "stateful_shrink_budget_s": 3})
    found = by_invariant(result)
    assert set(found) == {VERIFIED, RECOVERED_ONCE}, result.details["searches"]
    verified = found[VERIFIED][0]
    assert verified.context["steps"] == 1
    assert "action='corrupt'" in verified.reproduction
    assert found[RECOVERED_ONCE][0].context["steps"] <= 3
    for name, v in (("verified", verified), ("recovered", found[RECOVERED_ONCE][0])):
        run_reproduction(tmp_path, v.reproduction, name)


# --------------------------------------------------------------------------- correct adapters

@pytest.mark.parametrize("name", [CORRECT[0], pytest.param(CORRECT[1], marks=pytest.mark.slow)])
def test_correct_adapters_clean_under_crashes(request, tmp_path, name: str) -> None:
    result = run(request, tmp_path, name, CrashScenario())
    assert result.violations == [], [v.message for v in result.violations]
    assert not result.details["truncated"]
    assert all(r["outcome"] != "error" and not r["preexisting"]
               for r in result.details["crash_matrix"])
    cases = {c["case"]: c for c in result.details["cases"]}
    assert set(cases) == {c.name for c in build_cases(0)}
    assert any("write#1" in p for p in cases["save_cv:store-down"]["points"])
    assert "recover.imported" in cases["recover"]["points"]


@pytest.mark.parametrize("name", CORRECT)
def test_correct_adapters_clean_under_races(request, tmp_path, name: str) -> None:
    result = run(request, tmp_path, name, RaceScenario(), options={"max_schedules": 6})
    assert result.violations == [], [v.message for v in result.violations]
    counts = result.details["counts"]
    assert all(c["schedules"] >= 2 and c["error"] == 0 for c in counts.values()), counts


@pytest.mark.parametrize("name", CORRECT)
def test_correct_adapters_clean_in_stateful(request, tmp_path, name: str) -> None:
    result = run(request, tmp_path, name, StatefulScenario(), budget_s=2.5,
                 options={"stateful_step_count": 8})
    assert result.violations == [], [v.message for v in result.violations]
    assert result.details["discarded"] == []
    assert sum(s["examples"] for s in result.details["searches"]) > 3


# --------------------------------------------------------------------------- 20 seeds

def _sweep_one(name: str, root: str, seed: int, workdir: str) -> list[str]:
    """One seed on one adapter: races on every pair, the crash matrix of one case (each case on
    five of the twenty seeds), a short stateful run. Returns the problems found."""
    cls = resolve(name)
    cases = [c.name for c in build_cases(0)]
    problems: list[str] = []
    plan = [("races", RaceScenario(), None, {"max_schedules": 2}),
            ("crash", CrashScenario(), None, {"crash_case": cases[seed % len(cases)],
                                              "crash_workers": 1}),
            ("stateful", StatefulScenario(), 0.5, {"stateful_step_count": 6})]
    for label, scenario, budget, options in plan:
        where = Path(workdir) / label
        where.mkdir(parents=True, exist_ok=True)
        ctx = ScenarioContext(adapter_cls=cls, adapter_name=name, seed=seed, workdir=where,
                              budget_s=budget, options=options,
                              location_root=root if cls.location_kind == "server" else str(where))
        result = run_scenario(scenario, ctx)
        if result.error:
            problems.append(f"{name} seed {seed} {label}: error {result.error[-300:]}")
        problems += [f"{name} seed {seed} {label}: {v.invariant}: {v.message}"
                     for v in result.violations]
        if label == "crash" and (result.details.get("truncated")
                                 or not result.details.get("crash_matrix")):
            problems.append(f"{name} seed {seed}: crash matrix incomplete")
    return problems


@pytest.mark.slow
@pytest.mark.postgres
def test_correct_adapters_clean_across_20_seeds(request, tmp_path) -> None:
    """Seeds 0..19 on cv-archive-sqlite and cv-archive-postgres, four (adapter, seed) jobs at a
    time in forked worker processes (the work is mostly waiting on fsync and the server)."""
    dsn = request.getfixturevalue("pg_dsn")
    jobs = [(name, dsn, seed, str(tmp_path / f"{name}-{seed}")) for name in CORRECT
            for seed in range(20)]
    with ProcessPoolExecutor(max_workers=4, mp_context=multiprocessing.get_context("fork")) as pool:
        problems = [p for found in pool.map(_sweep_one, *zip(*jobs, strict=True)) for p in found]
    assert problems == []
