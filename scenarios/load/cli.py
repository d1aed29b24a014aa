"""``harness load``: the load scenario against one adapter, headless unless ``--web``.

``--processes 1`` (the default) runs the threads mode (all users in one process, a local Locust
runner), ``--processes N`` (N >= 2) the processes mode (Locust's distributed mode on loopback: a
master process and N worker processes on the same store). ``--web`` serves Locust's web UI on
127.0.0.1 only (port 8089; on the master in processes mode) while the run lasts. Writes
``results.json`` under ``--out`` (default ``reports/load-<time>``) and prints the statistics.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import results as results_mod
from harness.errors import ConfigError
from harness.redact import redact
from harness.registry import adapter_name, resolve
from harness.results import AdapterResult, RunResult
from harness.runner import run_scenario
from harness.scenario import ScenarioContext

DEFAULT_BUDGET_S = 30.0


def format_stats(stats: dict[str, Any]) -> list[str]:
    lines = [f"{'operation':<36} {'reqs':>7} {'fails':>6} {'rps':>8} {'p50':>7} {'p95':>7} "
             f"{'p99':>7}  (ms)"]
    rows = [*stats["operations"].items(), ("TOTAL", stats["total"])]
    for name, r in rows:
        lines.append(f"{name:<36} {r['requests']:>7} {r['failures']:>6} {r['rps']:>8.1f} "
                     f"{r['p50_ms']:>7.1f} {r['p95_ms']:>7.1f} {r['p99_ms']:>7.1f}")
    return lines


def main(args: argparse.Namespace) -> int:
    from scenarios.load.scenario import LoadScenario

    cls = resolve(args.adapter)
    name = adapter_name(cls)
    if getattr(cls, "location_kind", "file") == "server":
        if not args.dsn:
            raise ConfigError(f"adapter {name!r} needs a server: give --dsn URL")
        cls.validate_root(args.dsn)
    processes = args.processes or 1
    if processes < 1 or (args.users is not None and args.users < 1):
        raise ConfigError("--users and --processes must be at least 1")
    mode = "threads" if processes == 1 else "processes"
    budget = args.budget if args.budget is not None else DEFAULT_BUDGET_S
    options: dict[str, Any] = {"modes": mode, "processes": processes, "web": args.web}
    if args.users:
        options["users"] = args.users
    started = datetime.now(UTC)
    run = RunResult(run_id=f"{started:%Y%m%d-%H%M%S}-load-s{args.seed}", seed=args.seed,
                    started=started.isoformat(timespec="seconds"),
                    meta={"command": "load", "mode": mode, "budget_s": budget})
    out_dir = Path(args.out) if args.out else Path("reports") / run.run_id
    workdir = Path(tempfile.mkdtemp(prefix="harness-load-"))
    try:
        root = args.dsn if cls.location_kind == "server" else str(workdir / "stores")
        ctx = ScenarioContext(adapter_cls=cls, adapter_name=name, seed=args.seed,
                              workdir=workdir / "load", budget_s=budget, location_root=root,
                              options=options)
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        if args.web:
            print("locust web UI: http://127.0.0.1:8089 (for the duration of the run)", flush=True)
        scenario = run_scenario(LoadScenario(), ctx)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    run.adapters.append(AdapterResult(name=name, guarantees=sorted(cls.guarantees),
                                      location=redact(args.dsn or "") if cls.location_kind == "server"
                                      else "files", scenarios=[scenario]))
    run.finished = datetime.now(UTC).isoformat(timespec="seconds")
    results_mod.write(run, out_dir)

    print(f"{name} · load ({mode}) · {scenario.status} · {scenario.steps} operations")
    if scenario.error:
        print(f"error: {scenario.error.strip().splitlines()[-1]}")
    stats = scenario.details.get("stats", {}).get(mode)
    if stats:
        print("\n".join(format_stats(stats)))
    overhead = scenario.details.get("overhead")
    if overhead:
        print(f"overhead: harness {overhead['harness_ops_s']} ops/s vs plain loop "
              f"{overhead['plain_ops_s']} ops/s (ratio {overhead['ratio']})")
    for v in scenario.violations:
        tag = "VIOLATION" if v.claimed else "expected "
        print(f"  {tag} {v.id} [{v.invariant} / {v.guarantee}] {v.message}")
    print(f"results: {out_dir / 'results.json'}")
    return 1 if run.failed() else 0
