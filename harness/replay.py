"""``harness replay DIR VIOLATION_ID``: re-run one violation's reproduction.

- A reproduction that is a pytest file (stateful, crash) is written to a temporary directory and
  run with ``python -m pytest``; these files *pass* while the violation reproduces.
- A race (context with ``pair`` and ``schedule``) is re-run through the runner with the
  ``races`` scenario and options ``pair`` / ``schedule`` on the same adapter and seed.
- Anything else (e.g. load) re-runs the violation's scenario on the adapter with the same seed;
  such runs are not deterministic, which is said.

Exit status: 1 the violation still reproduces, 0 it no longer does, 2 it cannot be replayed.
Server adapters need a DSN: ``HARNESS_DSN`` or ``HARNESS_TEST_DSN`` (results store none).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.errors import ConfigError
from harness.redact import redact
from harness.results import AdapterResult, RunResult, ScenarioResult, ViolationRecord, load

STILL_FAILS, FIXED = 1, 0
KNOWN_LISTED = 8
PYTEST_TIMEOUT_S = 600


def find(run: RunResult, violation_id: str) -> tuple[AdapterResult, ScenarioResult, ViolationRecord]:
    for a, s, v in run.violations():
        if v.id == violation_id:
            return a, s, v
    known = [v.id for _a, _s, v in run.violations()]
    listed = ", ".join(known[:KNOWN_LISTED]) + (", ..." if len(known) > KNOWN_LISTED else "")
    raise ConfigError(f"unknown violation {violation_id!r}; known: {listed or 'none in this run'}")


def is_pytest_file(text: str) -> bool:
    return bool(re.search(r"^def test_\w*\(", text, re.MULTILINE))


def _dsn() -> str | None:
    return os.environ.get("HARNESS_DSN") or os.environ.get("HARNESS_TEST_DSN")


def replay_pytest(violation: ViolationRecord) -> int:
    project_root = Path(__file__).resolve().parents[1]
    tmp = Path(tempfile.mkdtemp(prefix="harness-replay-"))
    try:
        slug = re.sub(r"\W", "_", violation.id)[:60] or "violation"
        path = tmp / f"test_replay_{slug}.py"
        path.write_text(violation.reproduction, encoding="utf-8")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project_root),
                                                          env.get("PYTHONPATH")]))
        if _dsn() and "HARNESS_TEST_DSN" not in env:
            env["HARNESS_TEST_DSN"] = _dsn() or ""
        cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
               "--rootdir", str(tmp), str(path)]
        print(f"replay: running the reproduction of {violation.id} with pytest")
        try:
            proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True,
                                  timeout=PYTEST_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise ConfigError(f"the reproduction of {violation.id} did not finish in "
                              f"{PYTEST_TIMEOUT_S} s") from exc
        output = redact((proc.stdout or "") + (proc.stderr or ""))
        print(output.rstrip())
        if proc.returncode == 0:
            if re.search(r"\b\d+ passed\b", output):
                print(f"replay: {violation.id} STILL REPRODUCES ({violation.invariant})")
                return STILL_FAILS
            raise ConfigError(f"the reproduction of {violation.id} was skipped (server adapters "
                              "need HARNESS_TEST_DSN); nothing was checked")
        if proc.returncode == 1:
            print(f"replay: {violation.id} no longer reproduces")
            return FIXED
        raise ConfigError(f"the reproduction of {violation.id} could not run (pytest exit "
                          f"{proc.returncode})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def replay_run(run: RunResult, adapter: AdapterResult, scenario: ScenarioResult,
               violation: ViolationRecord, scenario_name: str, options: dict[str, str]) -> int:
    from harness.registry import resolve
    from harness.runner import RunConfig, execute
    from harness.scenario import resolve_scenario

    resolve_scenario(scenario_name)  # ConfigError ("not available") when the scenario is missing
    cls = resolve(adapter.name)
    dsn = _dsn() if getattr(cls, "location_kind", "file") == "server" else None
    if getattr(cls, "location_kind", "file") == "server" and not dsn:
        raise ConfigError(f"adapter {adapter.name!r} needs a server: set HARNESS_DSN to a test "
                          "database DSN (results.json stores none)")
    tmp = Path(tempfile.mkdtemp(prefix="harness-replay-"))
    try:
        budget = run.meta.get("budget_s") if isinstance(run.meta, dict) else None
        cfg = RunConfig(adapters=[adapter.name], scenarios=[scenario_name], seed=run.seed,
                        budget_s=budget, dsn=dsn, out_dir=str(tmp), options=options,
                        progress=False)
        described = " ".join(f"{k}={v}" for k, v in options.items())
        print(f"replay: re-running {scenario_name} on {adapter.name} (seed {run.seed}"
              f"{', ' + described if described else ''})")
        rerun, _ = execute(cfg)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    same = [v for _a, _s, v in rerun.violations() if v.invariant == violation.invariant]
    for v in same[:5]:
        print(redact(f"  {v.invariant} [{v.guarantee}] {v.message}"))
    errors = [s.error for a in rerun.adapters for s in a.scenarios if s.error]
    if not same and errors:
        print(redact(errors[0].strip()))
        raise ConfigError(f"the re-run of {scenario_name} errored; nothing was checked")
    if same:
        print(f"replay: {violation.id} STILL REPRODUCES ({violation.invariant})")
        return STILL_FAILS
    print(f"replay: {violation.id} no longer reproduces")
    return FIXED


def replay(run: RunResult, violation_id: str) -> int:
    adapter, scenario, violation = find(run, violation_id)
    print(redact(f"replay: {violation.id} [{violation.invariant} / {violation.guarantee}] "
                 f"{violation.message}"))
    if is_pytest_file(violation.reproduction):
        return replay_pytest(violation)
    ctx = violation.context or {}
    if ctx.get("schedule") and ctx.get("pair"):
        return replay_run(run, adapter, scenario, violation, "races",
                          {"pair": str(ctx["pair"]), "schedule": str(ctx["schedule"])})
    print(f"replay: {violation.id} has no deterministic reproduction; re-running its scenario "
          "(the result may vary between runs)")
    return replay_run(run, adapter, scenario, violation, scenario.name, {})


def main(args: argparse.Namespace) -> int:
    try:
        run = load(args.dir)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(str(exc)) from exc
    return replay(run, args.violation_id)
