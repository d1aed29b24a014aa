"""Median time to the first violation of each invariant on tinydb-legacy, over several seeds.

    .venv/bin/python benchmarks/time_to_detect.py --seeds 10

The stateful scenario runs with its default settings (plain, error and crash modes); the times
are seconds from the start of the scenario to the step that first broke the invariant. The crash
explorer's time to its first torn-write finding (store-readable) is measured the same way.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from harness.registry import resolve
from harness.runner import run_scenario
from harness.scenario import ScenarioContext
from scenarios.crash import CrashScenario
from scenarios.stateful import StatefulScenario

TARGETS = ("one-master", "no-orphan-improvements", "honest-results", "valid-data")


def _ctx(seed: int, tmp: str, **options: object) -> ScenarioContext:
    workdir = Path(tmp) / f"s{seed}"
    workdir.mkdir(exist_ok=True)
    return ScenarioContext(adapter_cls=resolve("tinydb-legacy"), adapter_name="tinydb-legacy",
                           seed=seed, workdir=workdir, location_root=tmp, options=dict(options))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--budget", type=float, default=None, help="stateful budget (default: its own)")
    args = p.parse_args()
    times: dict[str, list[float | None]] = {t: [] for t in (*TARGETS, "store-readable")}
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory() as tmp:
            ctx = _ctx(seed, tmp)
            ctx.budget_s = args.budget
            result = run_scenario(StatefulScenario(), ctx)
            ttf = result.details.get("time_to_first", {})
            for t in TARGETS:
                times[t].append(ttf.get(t))
            t0 = time.monotonic()
            crash = run_scenario(CrashScenario(), _ctx(seed, tmp))
            found = any(v.invariant == "store-readable" for v in crash.violations)
            times["store-readable"].append(round(time.monotonic() - t0, 3) if found else None)
        print(f"seed {seed}: " + ", ".join(f"{k}={v[-1]}" for k, v in times.items()), flush=True)
    print("\n| invariant | median s | max s | found in |")
    print("|---|---|---|---|")
    for inv, vals in times.items():
        got = [v for v in vals if v is not None]
        med = f"{statistics.median(got):.2f}" if got else "-"
        mx = f"{max(got):.2f}" if got else "-"
        print(f"| `{inv}` | {med} | {mx} | {len(got)}/{len(vals)} seeds |")


if __name__ == "__main__":
    main()
