"""The real stateful, crash and race scenarios on the ``jobs`` adapters: they find each audited
bug of ``jobs-legacy`` with a minimal reproduction or a replayable schedule, and nothing on
``jobs-sqlite`` and ``jobs-postgres``."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness.registry import resolve
from harness.results import PASSED, ScenarioResult
from harness.scenario import ScenarioContext
from scenarios.crash import CrashScenario
from scenarios.families.jobs.plans import PAIRS, build_cases
from scenarios.races import RaceScenario
from scenarios.stateful import StatefulScenario
from scenarios.stateful.machine import MODES

ROOT = Path(__file__).resolve().parent.parent
FAST_RACES = {"step_timeout": "0.1", "deadlock_timeout": "2"}
CORRECT = ("jobs-sqlite", pytest.param("jobs-postgres", marks=pytest.mark.postgres))


def run(scenario: Any, name: str, root: Path | str, *, seed: int = 0, budget: float = 30.0,
        **options: Any) -> ScenarioResult:
    cls = resolve(name)
    workdir = Path(root) if not isinstance(root, str) or "://" not in root else Path(".")
    ctx = ScenarioContext(adapter_cls=cls, adapter_name=name, seed=seed, workdir=workdir,
                          location_root=str(root), budget_s=budget, options=dict(options))
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


def by(result: ScenarioResult, invariant: str, **context: Any) -> list:
    return [v for v in result.violations if v.invariant == invariant
            and all(v.context.get(k) == want for k, want in context.items())]


def test_plans_cover_every_write_operation_and_the_required_pairs() -> None:
    from harness.families.jobs.contract import WRITE_OPERATIONS

    assert {c.op for c in build_cases(0)} == set(WRITE_OPERATIONS)
    assert build_cases(3) == build_cases(3)
    assert {"create-create", "claim-claim", "complete-fail"} <= {p.name for p in PAIRS}
    for pair in PAIRS:
        assert pair.calls(5) == pair.calls(5) and len(pair.calls(5)[1]) == 2


# --------------------------------------------------------------------------- jobs-legacy


@pytest.fixture(scope="module")
def legacy_stateful(tmp_path_factory) -> tuple[ScenarioResult, float]:
    t0 = time.monotonic()
    result = run(StatefulScenario(), "jobs-legacy", tmp_path_factory.mktemp("legacy-stateful"),
                 seed=2, budget=30.0, stateful_modes=["plain"], stateful_max_examples=100,
                 stateful_max_shrink_runs=5, stateful_max_replays=20,
                 stateful_invariants=["job-timestamps", "job-transitions-valid"])
    return result, time.monotonic() - t0


def test_legacy_stateful_finds_minimal_reproductions(legacy_stateful) -> None:
    result, _ = legacy_stateful
    assert result.error is None
    steps = result.details["steps"]
    assert steps["job-timestamps"]["plain"] == 1          # get_or_create leaves updated_at NULL
    assert steps["job-transitions-valid"]["plain"] <= 3   # e.g. create, mark_completed
    ttf = result.details["time_to_first"]
    assert ttf["job-timestamps"] < 10 and ttf["job-transitions-valid"] < 20, ttf
    for v in result.violations:
        assert v.guarantee == "contract" and v.claimed
        assert v.reproduction.startswith('"""Minimal reproduction')
    assert result.status == "violated"


def test_legacy_stateful_reproduction_runs(legacy_stateful, tmp_path: Path) -> None:
    result, _ = legacy_stateful
    (v,) = by(result, "job-transitions-valid")
    path = tmp_path / "test_repro_jobs.py"
    path.write_text(v.reproduction)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "job-transitions-valid" in v.reproduction and "'jobs-legacy'" in v.reproduction


@pytest.mark.slow
def test_legacy_stateful_error_mode_finds_half_made_transitions(tmp_path: Path) -> None:
    result = run(StatefulScenario(), "jobs-legacy", tmp_path, seed=0, budget=20.0,
                 stateful_modes=["error"], stateful_invariants=["job-transitions-valid"],
                 stateful_max_shrink_runs=10, stateful_max_replays=30)
    (v,) = by(result, "job-transitions-valid", mode="error")
    assert v.guarantee == "atomic" and not v.claimed     # jobs-legacy claims no guarantee
    assert v.context["steps"] <= 3 and v.faults
    assert "error" in v.reproduction


@pytest.fixture(scope="module")
def legacy_races(tmp_path_factory) -> ScenarioResult:
    root = tmp_path_factory.mktemp("legacy-races")
    # Fewest preemptions first, latest preemption first: a claim cut right after its SELECT is
    # the 6th to 8th schedule of claim-claim; the other pairs break within their first four.
    result = run(RaceScenario(), "jobs-legacy", root, budget=60.0, max_schedules=8,
                 deadlock_timeout="2", pair="claim-claim")
    rest = run(RaceScenario(), "jobs-legacy", root, budget=60.0, max_schedules=4,
               deadlock_timeout="2", pair="create-create,complete-fail,retry-retry")
    result.violations += rest.violations
    return result


@pytest.mark.parametrize(("pair", "invariant"), [
    ("create-create", "job-unique"),
    ("claim-claim", "job-single-claim"),
    ("complete-fail", "job-transitions-valid"),
    ("retry-retry", "job-single-claim"),
])
def test_legacy_races_find_schedules(legacy_races: ScenarioResult, pair: str, invariant: str,
                                     tmp_path: Path) -> None:
    found = by(legacy_races, invariant, pair=pair)
    assert found, [(v.invariant, v.context) for v in legacy_races.violations]
    v = found[0]
    assert v.guarantee == "thread-safe" and not v.claimed
    schedule = v.context["schedule"]
    assert set(schedule) <= {"0", "1"} and f"schedule={schedule}" in v.reproduction
    replay = run(RaceScenario(), "jobs-legacy", tmp_path, budget=30.0, pair=pair,
                 schedule=schedule)
    assert by(replay, invariant, pair=pair), "the printed schedule does not replay"


def test_legacy_crash_matrix_finds_half_made_transitions(tmp_path: Path) -> None:
    result = run(CrashScenario(), "jobs-legacy", tmp_path, budget=60.0, crash_workers=2)
    broken = {(row["case"], row["point"]) for row in result.details["crash_matrix"]
              if "job-transitions-valid" in row["broken"]}
    for case in ("claim_next", "mark_processing:retry", "mark_completed", "mark_failed"):
        op = case.split(":")[0]
        assert (case, f"{op}.after_status_commit") in broken, sorted(broken)
    assert all(v.guarantee == "crash-safe" for v in result.violations)
    assert not [r for r in result.details["crash_matrix"] if r["outcome"] == "error"]


# --------------------------------------------------------------------------- correct adapters


@pytest.mark.parametrize("name", CORRECT)
def test_correct_adapters_pass_every_scenario(name: str, tmp_path: Path,
                                              request: pytest.FixtureRequest) -> None:
    root = root_for(name, tmp_path, request)
    results = {
        "stateful": run(StatefulScenario(), name, root, seed=0, budget=2.0),
        "crash": run(CrashScenario(), name, root, seed=0, budget=60.0, crash_workers=2),
        "races": run(RaceScenario(), name, root, seed=0, budget=60.0, max_schedules=2,
                     **FAST_RACES),
    }
    for scen, result in results.items():
        assert result.error is None, (scen, result.error)
        assert result.violations == [], (scen, [(v.invariant, v.message) for v in result.violations])
        assert result.status == PASSED and result.steps > 0, scen
    matrix = results["crash"].details["crash_matrix"]
    assert not results["crash"].details["truncated"]
    assert {r["operation"] for r in matrix} == {c.op for c in build_cases(0)}
    assert all(r["outcome"] in ("crashed", "ok") for r in matrix), matrix
    counts = results["races"].details["counts"]
    assert set(counts) == {p.name for p in PAIRS}
    assert all(c["deadlock"] == 0 and c["error"] == 0 for c in counts.values())


#: Seeds of the full crash matrix in the slow test: its cells do not depend on the seed (only the
#: Faker data in them does) and a full matrix costs seconds, so two of the twenty.
CRASH_SEEDS = frozenset({0, 10})
#: The required pairs and the stateful modes, one per seed in turn (each on about seven seeds).
SEED_PAIRS = ("create-create", "claim-claim", "complete-fail")


def _twenty_seeds(name: str, root: str) -> dict[str, float]:
    spent = {"stateful": 0.0, "crash": 0.0, "races": 0.0}
    for seed in range(20):
        for scen, scenario, budget, options in (
            ("races", RaceScenario(), 30.0, {"max_schedules": 3, **FAST_RACES,
                                             "pair": SEED_PAIRS[seed % len(SEED_PAIRS)]}),
            ("stateful", StatefulScenario(), 3.0, {"stateful_max_examples": 2,
                                                   "stateful_step_count": 10,
                                                   "stateful_modes": [MODES[seed % len(MODES)]]}),
            ("crash", CrashScenario(), 30.0, {"crash_workers": 2}),
        ):
            if scen == "crash" and seed not in CRASH_SEEDS:
                continue
            t0 = time.monotonic()
            result = run(scenario, name, root, seed=seed, budget=budget, **options)
            spent[scen] += time.monotonic() - t0
            assert result.error is None and result.violations == [], (
                name, scen, seed, [(v.invariant, v.message) for v in result.violations])
            assert result.steps > 0, (name, scen, seed)
    return spent


@pytest.mark.slow
@pytest.mark.parametrize("name", CORRECT)
def test_correct_adapters_clean_across_twenty_seeds(name: str, tmp_path: Path,
                                                    request: pytest.FixtureRequest) -> None:
    spent = _twenty_seeds(name, root_for(name, tmp_path, request))
    print(name, {k: round(v, 1) for k, v in spent.items()})
