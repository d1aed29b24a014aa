"""The correct SQL adapters stay clean across 20 seeds: the stateful model (plain, error and
crash modes, short budget) on sqlite and postgres, and the crash explorer on sqlite.

The full sweep of every scenario over 20 seeds is ``benchmarks/seed_sweep.py``."""

from __future__ import annotations

import pytest

from harness.registry import resolve
from harness.runner import run_scenario
from harness.scenario import ScenarioContext
from scenarios.crash import CrashScenario
from scenarios.stateful import StatefulScenario

SEEDS = range(20)


def _ctx(name: str, seed: int, root: str, tmp_path, **options) -> ScenarioContext:
    workdir = tmp_path / f"{name}-{seed}"
    workdir.mkdir()
    return ScenarioContext(adapter_cls=resolve(name), adapter_name=name, seed=seed, workdir=workdir,
                           budget_s=None, location_root=root, options=options)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sqlite", "postgres"])
def test_stateful_clean_across_20_seeds(name, tmp_path, request) -> None:
    root = request.getfixturevalue("pg_dsn") if name == "postgres" else str(tmp_path)
    steps = 0
    for seed in SEEDS:
        result = run_scenario(StatefulScenario(), _ctx(name, seed, root, tmp_path,
                                                       stateful_budget_s=1.5,
                                                       stateful_max_examples=6))
        assert result.error is None, result.error
        assert result.violations == [], (seed, [v.message for v in result.violations])
        steps += result.steps
    assert steps > 200  # the model really ran


@pytest.mark.slow
def test_crash_explorer_clean_on_sqlite_across_20_seeds(tmp_path) -> None:
    for seed in SEEDS:
        result = run_scenario(CrashScenario(), _ctx("sqlite", seed, str(tmp_path), tmp_path))
        assert result.error is None, result.error
        assert result.violations == [], (seed, [v.message for v in result.violations])
        assert result.steps > 50
