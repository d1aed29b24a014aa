"""Every family plugs into the engine the same way: registry, listing, --family selection,
results.json and the gate. (Each family's own behaviour is tested in its own test files.)"""

from __future__ import annotations

import json

import pytest

from harness import families
from harness.cli import main
from harness.errors import ConfigError
from harness.history import History
from harness.invariants import STORE_READABLE
from harness.registry import available, resolve
from harness.runner import RunConfig, default_adapters, execute

FAMILY_NAMES = list(families.BUILTIN_FAMILIES)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_family_is_complete(name: str) -> None:
    fam = families.get(name)
    assert fam.name == name
    assert set(fam.embedded) <= set(fam.adapters)
    assert len(fam.adapters) >= 3, "a legacy adapter plus correct SQLite and PostgreSQL ones"
    ids = fam.invariant_ids()
    assert len(ids) == len(set(ids)) and STORE_READABLE in ids
    for part in ("crash_cases", "race_pairs", "machine"):
        assert fam.load(part) is not None
    assert fam.load("crash_cases")(0), "crash cases for every multi-step write"
    assert fam.load("race_pairs"), "race pairs"
    for adapter, spec in fam.adapters.items():
        cls = resolve(adapter)
        assert cls.name == adapter and available()[adapter] == spec
        assert families.family_of(cls) is fam
        assert cls.operations and set(cls.write_operations) <= set(cls.operations)
        assert set(cls.fault_points) <= set(cls.operations), adapter
        for op, points in cls.fault_points.items():
            assert all(p.startswith(f"{op}.") for p in points), (adapter, op, points)
    # no snapshot: only store-readable, and it fires
    found = fam.check()(None, History().records, snapshot_error="boom")
    assert [f.invariant for f in found] == [STORE_READABLE]


def test_invariant_ids_do_not_collide_across_families() -> None:
    seen: dict[str, str] = {}
    for fam in families.available():
        for inv in fam.invariant_ids():
            if inv == STORE_READABLE:
                continue
            assert inv not in seen, f"{inv} in {seen.get(inv)} and {fam.name}"
            seen[inv] = fam.name


def test_default_adapters_follow_family_selection() -> None:
    everything = default_adapters(None)
    for fam in families.available():
        assert set(fam.embedded) <= set(everything)
    only_jobs = default_adapters(None, ["jobs"])
    assert only_jobs == list(families.get("jobs").embedded)
    with_server = default_adapters("postgresql://postgres@127.0.0.1:5432/test", ["accounts"])
    assert with_server == list(families.get("accounts").adapters)


def test_adapter_outside_the_selected_family_is_a_usage_error(capsys) -> None:
    assert main(["run", "--family", "jobs", "--adapter", "sqlite", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "belongs to family 'resumes'" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ConfigError, match="unknown family"):
        families.expand(["jobs", "nonsense"])


def test_list_shows_each_family_with_its_adapters_and_invariants(capsys) -> None:
    for fam in families.available():
        assert main(["list", "--family", fam.name]) == 0
        out = capsys.readouterr().out
        assert f"family {fam.name}:" in out
        for adapter in fam.adapters:
            assert f"    {adapter} " in out
        for inv in fam.invariant_ids():
            assert inv in out
        others = [a for f in families.available() if f is not fam for a in f.adapters]
        assert not any(f"    {a} " in out for a in others)


def test_run_records_the_family_and_skips_scenarios_a_family_lacks(tmp_path) -> None:
    run, out = execute(RunConfig(adapters=["jobs-sqlite"], scenarios=["crash", "load"],
                                 families=["jobs"], budget_s=30, out_dir=str(tmp_path),
                                 progress=False))
    data = json.loads((out / "results.json").read_text())
    (adapter,) = data["adapters"]
    assert adapter["family"] == "jobs" and adapter["name"] == "jobs-sqlite"
    by_name = {s["name"]: s for s in adapter["scenarios"]}
    assert by_name["crash"]["status"] == "passed" and by_name["crash"]["steps"] > 0
    assert by_name["load"]["status"] == "skipped"
    assert "no workload for the jobs family" in by_name["load"]["details"]["reason"]
    assert not run.failed()
