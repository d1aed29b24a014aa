"""harness gate (decide, JUnit XML, CI defaults) and harness replay."""

from __future__ import annotations

import argparse
import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from adapters.tinydb_legacy import TinyDBLegacyAdapter
from harness import gate, replay
from harness.cli import main as cli_main
from harness.invariants import INVARIANT_IDS
from harness.results import (
    AdapterResult,
    RunResult,
    ScenarioResult,
    ViolationRecord,
    from_dict,
    load,
    write,
)


class ClaimingLegacy(TinyDBLegacyAdapter):
    """The legacy store claiming thread-safety: its race findings become claimed violations."""

    name = "legacy-claims-thread-safe"
    guarantees = frozenset({"thread-safe"})


CLAIMING = f"{__name__}:ClaimingLegacy"


def viol(vid, invariant, *, claimed=True, guarantee="contract", reproduction="", context=None):
    return ViolationRecord(invariant=invariant, guarantee=guarantee, message=f"{invariant} broke",
                           id=vid, claimed=claimed, reproduction=reproduction,
                           context=context or {})


def scen(name, *violations, status=None, error=None):
    if status is None:
        status = ("violated" if any(v.claimed for v in violations) else
                  "findings" if violations else "passed")
    return ScenarioResult(name=name, kind=name, status=status, steps=3, duration_s=1.0,
                          violations=list(violations), error=error)


def make_run() -> RunResult:
    legacy = AdapterResult(name="tinydb-legacy", guarantees=[], scenarios=[
        scen("stateful", viol("tinydb-legacy.stateful.1", "honest-results")),
        scen("races", viol("tinydb-legacy.races.1", "no-lost-preview-hashes", claimed=False,
                           guarantee="thread-safe")),
    ])
    locked = AdapterResult(name="tinydb-locked", guarantees=["atomic", "thread-safe"], scenarios=[
        scen("stateful", viol("tinydb-locked.stateful.1", "one-master"),
             viol("tinydb-locked.stateful.2", "one-master")),
        scen("crash", viol("tinydb-locked.crash.1", "store-readable", claimed=False,
                           guarantee="crash-safe")),
    ])
    sqlite = AdapterResult(name="sqlite", guarantees=["atomic", "crash-safe", "durable",
                                                      "process-safe", "thread-safe"],
                           scenarios=[scen("stateful"), scen("crash")])
    return RunResult(run_id="r1", seed=0, started="2026-01-01T00:00:00+00:00",
                     finished="2026-01-01T00:00:10+00:00", adapters=[legacy, locked, sqlite])


def clone(run: RunResult) -> RunResult:
    return from_dict(copy.deepcopy(run.to_dict()))


# ---------------------------------------------------------------------------------- decide

def test_no_baseline_fails_on_claimed_violations():
    code, msgs = gate.decide(make_run())
    assert code == 1
    text = "\n".join(msgs)
    assert "tinydb-locked.stateful.1" in text and "tinydb-legacy.stateful.1" in text
    assert "tinydb-locked.crash.1" not in text  # expected finding


def test_baseline_with_all_violations_passes():
    run = make_run()
    code, msgs = gate.decide(run, clone(run))
    assert code == 0, msgs
    assert any("known violation" in m for m in msgs)


def test_baseline_missing_one_fails_naming_it():
    run = make_run()
    baseline = clone(run)
    baseline.adapters[1].scenarios[0].violations = []  # drop tinydb-locked one-master
    code, msgs = gate.decide(run, baseline)
    assert code == 1
    new = [m for m in msgs if m.startswith("NEW violation")]
    assert new and all("tinydb-locked / one-master / stateful" in m for m in new)
    assert not any("tinydb-legacy" in m for m in new)


def test_baseline_key_is_adapter_invariant_scenario():
    run = make_run()
    baseline = clone(run)
    baseline.adapters[1].scenarios[0].name = "races"  # same invariant, other scenario
    assert gate.decide(run, baseline)[0] == 1


def test_expect_violations_passes_with_legacy_violations():
    run = make_run()
    run.adapters[1].scenarios[0].violations = []  # locked is clean
    code, msgs = gate.decide(run, None, ["tinydb-legacy"])
    assert code == 0, msgs  # legacy's claimed contract violation does not fail the gate
    assert any("tinydb-legacy shows 2 violation(s)" in m for m in msgs)


def test_expect_violations_fails_when_adapter_is_fixed():
    run = make_run()
    run.adapters[1].scenarios[0].violations = []
    for s in run.adapters[0].scenarios:  # "tinydb-legacy" is now a fixed store
        s.violations = []
    code, msgs = gate.decide(run, None, ["tinydb-legacy"])
    assert code == 1
    assert any("tinydb-legacy no longer shows its violations" in m for m in msgs)
    code, msgs = gate.decide(run, None, ["nope"])
    assert code == 1 and any("nope was not part of this run" in m for m in msgs)


def test_scenario_errors_fail_unless_in_baseline():
    run = make_run()
    run.adapters[1].scenarios[0].violations = []
    run.adapters[2].scenarios[1] = scen("crash", status="error", error="Traceback\nKeyError: 'x'")
    code, msgs = gate.decide(run, None, ["tinydb-legacy"])
    assert code == 1 and any("scenario error: sqlite / crash: KeyError: 'x'" in m for m in msgs)
    assert gate.decide(run, clone(run), ["tinydb-legacy"])[0] == 0


# ------------------------------------------------------------------------------ JUnit XML

def junit_counts(path: Path) -> dict[str, int]:
    root = ET.parse(path).getroot()
    cases = root.findall(".//testcase")
    return {"tests": len(cases), "failures": sum(1 for c in cases if c.find("failure") is not None),
            "skipped": sum(1 for c in cases if c.find("skipped") is not None),
            "errors": sum(1 for c in cases if c.find("error") is not None),
            "root_tests": int(root.get("tests")), "root_failures": int(root.get("failures"))}


def expected_counts(results: dict) -> dict[str, int]:
    invariants = set(INVARIANT_IDS) | {v["invariant"] for a in results["adapters"]
                                       for s in a["scenarios"] for v in s["violations"]}
    scenarios = [(a["name"], s) for a in results["adapters"] for s in a["scenarios"]]
    failures = {(name, v["invariant"], s["name"]) for name, s in scenarios
                for v in s["violations"] if v["claimed"]}
    return {"tests": len(scenarios) * len(invariants), "failures": len(failures)}


def test_junit_matches_results(tmp_path):
    run = make_run()
    run.adapters[2].scenarios[1] = scen("crash", status="error", error="boom")
    write(run, tmp_path)
    path = gate.write_junit(run, tmp_path / "ci" / "junit.xml")
    counts = junit_counts(path)
    want = expected_counts(json.loads((tmp_path / "results.json").read_text()))
    assert counts["tests"] == counts["root_tests"] == want["tests"] == 3 * 2 * len(INVARIANT_IDS)
    assert counts["failures"] == counts["root_failures"] == want["failures"] == 2
    assert counts["skipped"] == 2  # legacy races, locked crash: expected findings only
    assert counts["errors"] == len(INVARIANT_IDS)
    root = ET.parse(path).getroot()
    case = root.find(".//testcase[@classname='tinydb-locked.stateful'][@name='one-master']")
    assert case is not None and "2 violation(s)" in case.find("failure").get("message")
    skipped = root.find(".//testcase[@classname='tinydb-legacy.races']"
                        "[@name='no-lost-preview-hashes']")
    assert skipped.find("skipped") is not None and skipped.find("system-out") is not None


# ------------------------------------------------------------------------- main / CLI paths

def test_gate_defaults_budget_and_checks_expect_names(monkeypatch, tmp_path, capsys):
    seen = {}

    def fake_execute(cfg):
        seen["cfg"] = cfg
        run = make_run()
        run.adapters[1].scenarios[0].violations = []
        write(run, tmp_path)
        return run, tmp_path

    monkeypatch.setattr("harness.runner.execute", fake_execute)
    code = cli_main(["gate", "--no-progress", "--expect-violations", "tinydb-legacy",
                     "--junit", str(tmp_path / "j.xml"), "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr()
    assert seen["cfg"].budget_s == gate.DEFAULT_BUDGET_S
    assert list(seen["cfg"].adapters) == []  # runner defaults: embedded (+ postgres with --dsn)
    assert (tmp_path / "j.xml").exists()
    assert cli_main(["gate", "--budget", "1", "--expect-violations", "postgres"]) == 2
    assert "not among the adapters" in capsys.readouterr().err
    assert cli_main(["gate", "--baseline", str(tmp_path / "nope.json")]) == 2


@pytest.mark.slow
def test_real_gate_run_baseline_and_junit(tmp_path, capsys):
    common = ["gate", "--no-progress", "--adapter", CLAIMING, "--adapter", "sqlite",
              "--scenario", "races", "--option", "pair=preview-preview", "--budget", "4"]
    first = tmp_path / "first"
    code = cli_main([*common, "--out", str(first), "--junit", str(first / "junit.xml")])
    out = capsys.readouterr().out
    assert code == 1, out
    run = load(first)
    keys = gate.violation_keys(run)
    assert keys and all(k[0] == "legacy-claims-thread-safe" for k in keys)
    assert "gate: violation: legacy-claims-thread-safe /" in out
    assert (first / "report.html").exists()

    counts = junit_counts(first / "junit.xml")
    want = expected_counts(json.loads((first / "results.json").read_text()))
    assert counts["tests"] == want["tests"] == 2 * len(INVARIANT_IDS)
    assert counts["failures"] == want["failures"] == len(keys)

    # all current violations in the baseline -> 0; sensitivity check on the claiming adapter
    second = tmp_path / "second"
    code = cli_main([*common, "--out", str(second), "--baseline", str(first / "results.json"),
                     "--expect-violations", "legacy-claims-thread-safe"])
    assert code == 0, capsys.readouterr().out
    rerun = load(second)
    # one violation removed from the baseline -> 1, naming it
    baseline = load(first)
    dropped = next(v for _a, _s, v in baseline.violations() if v.claimed)
    for s in baseline.adapters[0].scenarios:
        s.violations = [v for v in s.violations if v.invariant != dropped.invariant]
    code, msgs = gate.decide(rerun, baseline)
    assert code == 1
    assert any(m.startswith("NEW violation") and dropped.invariant in m for m in msgs)
    # a fixed adapter under --expect-violations fails the gate
    code, msgs = gate.decide(rerun, None, ["sqlite"])
    assert code == 1 and any("sqlite no longer shows its violations" in m for m in msgs)


# ---------------------------------------------------------------------------------- replay

PASSING = "def test_reproduces():\n    assert True\n"
FAILING = "def test_reproduces():\n    assert False, 'no longer reproduces'\n"


def replay_run_dir(tmp_path) -> Path:
    run = make_run()
    run.adapters[0].scenarios[0].violations[0].reproduction = PASSING
    run.adapters[1].scenarios[0].violations[0].reproduction = FAILING
    run.adapters[0].scenarios[1].violations[0].context = {"pair": "preview-preview",
                                                          "schedule": "001110"}
    write(run, tmp_path)
    return tmp_path


@pytest.mark.slow
def test_replay_pytest_reproduction(tmp_path, capsys):
    d = str(replay_run_dir(tmp_path))
    assert replay.main(argparse.Namespace(dir=d, violation_id="tinydb-legacy.stateful.1")) == 1
    assert "STILL REPRODUCES" in capsys.readouterr().out
    assert replay.main(argparse.Namespace(dir=d, violation_id="tinydb-locked.stateful.1")) == 0
    assert "no longer reproduces" in capsys.readouterr().out


def test_replay_unknown_id_lists_known(tmp_path, capsys):
    d = str(replay_run_dir(tmp_path))
    assert cli_main(["replay", d, "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown violation 'nope'" in err and "tinydb-legacy.stateful.1" in err
    assert cli_main(["replay", str(tmp_path / "missing"), "x"]) == 2


def test_replay_race_schedule(tmp_path, monkeypatch, capsys):
    d = str(replay_run_dir(tmp_path))
    seen = {}

    def fake_execute(cfg):
        seen["cfg"] = cfg
        rerun = make_run()
        rerun.adapters = [rerun.adapters[0]]
        rerun.adapters[0].scenarios = [rerun.adapters[0].scenarios[1]]
        return rerun, Path(cfg.out_dir)

    monkeypatch.setattr("harness.runner.execute", fake_execute)
    assert replay.main(argparse.Namespace(dir=d, violation_id="tinydb-legacy.races.1")) == 1
    cfg = seen["cfg"]
    assert cfg.scenarios == ["races"] and cfg.adapters == ["tinydb-legacy"]
    assert cfg.options == {"pair": "preview-preview", "schedule": "001110"}
    assert "STILL REPRODUCES" in capsys.readouterr().out
