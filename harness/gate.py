"""``harness gate``: a run with CI defaults plus a pass/fail decision for pipelines.

- ``--baseline results.json``: fail only on claimed violations whose (adapter, invariant,
  scenario) the baseline lacks, and on scenario errors the baseline does not have;
- ``--expect-violations ADAPTER`` (repeatable): the harness' own sensitivity check, failing when
  that known-bad adapter shows no violation at all; its violations do not fail the gate;
- ``--junit FILE``: JUnit XML, one testcase per adapter x invariant x scenario.

The decision is the pure function :func:`decide`; :func:`main` runs, decides and reports.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

from harness.errors import ConfigError
from harness.families import family_invariant_ids
from harness.redact import redact
from harness.results import ERROR, SKIPPED, RunResult, load

#: Budget per scenario and adapter when the gate is not given ``--budget``.
DEFAULT_BUDGET_S = 20.0

Key = tuple[str, str, str]


def violation_keys(run: RunResult, *, claimed_only: bool = True) -> set[Key]:
    """(adapter, invariant, scenario) of every (claimed) violation in ``run``."""
    return {(a.name, v.invariant, s.name) for a, s, v in run.violations()
            if v.claimed or not claimed_only}


def error_keys(run: RunResult) -> set[tuple[str, str]]:
    return {(a.name, s.name) for a in run.adapters for s in a.scenarios if s.status == ERROR}


def decide(run: RunResult, baseline: RunResult | None = None,
           expect: Iterable[str] = ()) -> tuple[int, list[str]]:
    """The gate's verdict: ``(exit_code, messages)``; 0 pass, 1 fail. Pure, no I/O."""
    expect = list(dict.fromkeys(expect))
    messages: list[str] = []
    failed = False
    known = violation_keys(baseline) if baseline is not None else set()
    known_errors = error_keys(baseline) if baseline is not None else set()
    seen: set[Key] = set()
    for a, s, v in run.violations():
        if not v.claimed or a.name in expect:
            continue
        key = (a.name, v.invariant, s.name)
        if baseline is not None and key in known:
            if key not in seen:
                messages.append(f"known violation (in baseline): {a.name} / {v.invariant} / "
                                f"{s.name}")
            seen.add(key)
            continue
        failed = True
        prefix = "NEW violation" if baseline is not None else "violation"
        messages.append(f"{prefix}: {a.name} / {v.invariant} / {s.name}: {v.id} "
                        f"[{v.guarantee}] {v.message}")
    for a in run.adapters:
        for s in a.scenarios:
            if s.status != ERROR:
                continue
            last = (s.error or "").strip().splitlines()[-1:] or ["(no traceback)"]
            if (a.name, s.name) in known_errors:
                messages.append(f"known scenario error (in baseline): {a.name} / {s.name}")
                continue
            failed = True
            messages.append(f"scenario error: {a.name} / {s.name}: {last[0]}")
    names = {a.name: a for a in run.adapters}
    for name in expect:
        adapter = names.get(name)
        if adapter is None:
            failed = True
            messages.append(f"expected violations: adapter {name} was not part of this run")
            continue
        count = sum(len(s.violations) for s in adapter.scenarios)
        if count == 0:
            failed = True
            messages.append(f"expected violations: the adapter {name} no longer shows its "
                            f"violations (the harness lost sensitivity, or the adapter was fixed)")
        else:
            messages.append(f"expected violations: {name} shows {count} violation(s), as it should")
    messages = [redact(m) for m in messages]
    return (1 if failed else 0), messages


# ------------------------------------------------------------------------------ JUnit XML

def junit_xml(run: RunResult) -> ET.ElementTree:
    """One testsuite per adapter, one testcase per invariant x scenario: ``failure`` for a
    claimed violation, ``skipped`` (with system-out) for expected findings only, ``error`` for
    every invariant of a scenario that errored, ``skipped`` for a skipped scenario."""
    root = ET.Element("testsuites", name=f"harness {run.run_id}")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for a in run.adapters:
        known = family_invariant_ids(a.family)
        extra = sorted({v.invariant for s in a.scenarios for v in s.violations} - set(known))
        invariants = [*known, *extra]
        suite = ET.SubElement(root, "testsuite", name=a.name)
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        suite_time = 0.0
        for s in a.scenarios:
            suite_time += s.duration_s or 0.0
            for inv in invariants:
                case = ET.SubElement(suite, "testcase", classname=f"{a.name}.{s.name}", name=inv,
                                     time=f"{(s.duration_s or 0.0) / len(invariants):.3f}")
                counts["tests"] += 1
                found = [v for v in s.violations if v.invariant == inv]
                claimed = [v for v in found if v.claimed]
                text = "\n".join(f"{v.id} [{v.guarantee}{'' if v.claimed else ', not claimed'}] "
                                 f"{v.message}" for v in found)
                if claimed:
                    counts["failures"] += 1
                    el = ET.SubElement(case, "failure", type=claimed[0].guarantee,
                                       message=redact(f"{len(claimed)} violation(s) of "
                                                      f"{inv}: {claimed[0].message}"))
                    el.text = redact(text + "\n\nreproduction of " + claimed[0].id + ":\n"
                                     + claimed[0].reproduction)
                elif s.status == ERROR:
                    counts["errors"] += 1
                    el = ET.SubElement(case, "error", message="scenario error")
                    el.text = redact(s.error or "")
                elif found:
                    counts["skipped"] += 1
                    ET.SubElement(case, "skipped",
                                  message=f"expected finding: {len(found)} violation(s) of "
                                          f"guarantees {a.name} does not claim")
                    ET.SubElement(case, "system-out").text = redact(text)
                elif s.status == SKIPPED:
                    counts["skipped"] += 1
                    ET.SubElement(case, "skipped", message=redact(s.error or "scenario skipped"))
        for k, n in counts.items():
            suite.set(k, str(n))
            totals[k] += n
        suite.set("time", f"{suite_time:.3f}")
    for k, n in totals.items():
        root.set(k, str(n))
    tree = ET.ElementTree(root)
    ET.indent(tree)
    return tree


def write_junit(run: RunResult, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    junit_xml(run).write(p, encoding="utf-8", xml_declaration=True)
    return p


# ---------------------------------------------------------------------------------- main

def _load_baseline(path: str | None) -> RunResult | None:
    if not path:
        return None
    try:
        return load(path)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--baseline {path}: {exc}") from exc


def _check_expected_names(expect: list[str], run_config) -> None:  # noqa: ANN001
    """Every --expect-violations name must be an adapter of the run (else exit 2 up front)."""
    from harness.registry import adapter_name, resolve
    from harness.runner import default_adapters

    specs = list(dict.fromkeys(run_config.adapters)) or default_adapters(run_config.dsn, run_config.families)
    names = set(specs)
    for spec in specs:
        try:
            names.add(adapter_name(resolve(spec)))
        except ConfigError:
            pass  # reported by the run itself
    missing = [n for n in expect if n not in names]
    if missing:
        raise ConfigError(f"--expect-violations {', '.join(missing)}: not among the adapters of "
                          f"this run ({', '.join(sorted(names))})")


def main(args: argparse.Namespace, run_config) -> int:  # noqa: ANN001 - a runner.RunConfig
    from harness.runner import execute, summary_lines

    baseline = _load_baseline(getattr(args, "baseline", None))
    expect = list(getattr(args, "expect_violations", None) or [])
    if run_config.budget_s is None:
        run_config = dataclasses.replace(run_config, budget_s=DEFAULT_BUDGET_S)
    _check_expected_names(expect, run_config)
    run, out_dir = execute(run_config)
    for line in summary_lines(run):
        print(redact(line))
    code, messages = decide(run, baseline, expect)
    for msg in messages:
        print(f"gate: {msg}")
    if getattr(args, "junit", None):
        print(f"junit:   {write_junit(run, args.junit)}")
    print(f"results: {out_dir / 'results.json'}")
    if (out_dir / "report.html").exists():
        print(f"report:  {out_dir / 'report.html'}")
    verdict = "FAIL" if code else "PASS"
    print(f"gate: {verdict}", file=sys.stderr if code else sys.stdout)
    return code
