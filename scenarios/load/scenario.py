"""The ``load`` scenario: Locust users run the app's flows against one store, with threads inside
one process and with several OS processes on the same store (DESIGN section 6).

This (parent) process never imports Locust or gevent: Locust monkey-patches on import, which
would change ``threading`` under every other scenario of ``harness run``. Threads mode starts one
process (:mod:`scenarios.load.worker`) running a local Locust runner. Processes mode uses
Locust's distributed mode on loopback: one master process (:mod:`scenarios.load.master`, bound
to 127.0.0.1 on a free port) and N worker processes connecting to it; the master starts and
stops the users and aggregates Locust's statistics, each worker writes its own history. Every
process runs in its own session and is killed with its process group if the mode fails or
overruns; each also ends itself (watchdog) past the deadline or when its parent is gone.

The mode's slice of ``--budget`` covers everything: start-up, the Locust run, the plain-loop
baseline and the final check; the Locust run gets what is left once start-up is over, less an
estimate of the tail. ``details["modes"][mode]["timing"]`` reports the real wall time.

Each Locust user is one client with its own adapter instance (its own file handle or
connection) on the shared store, Jepsen-style; ``shared_adapter=1`` makes every user of a
process share one instance instead. A reader thread (the observer, in worker 0,
:mod:`scenarios.load.observer`) samples ``snapshot()`` during the run. At the end the parent
merges the histories (one ``time.time()`` clock), reads the store once more and runs every
invariant; if the store is no longer readable, ``one-master`` and ``no-lost-preview-hashes`` are
also checked against the last sample the observer could read, with only the history
acknowledged before that sample was taken. Threads mode also measures the harness' overhead:
ops/s of the first ``plain_s`` seconds of the load against the same call mix made by as many
plain OS threads straight on a fresh store, without Locust, gevent or recording.

Options (``ctx.options``): ``modes`` (``threads,processes``), ``users`` (total Locust users per
mode, default 8), ``processes`` (default 2), ``faults`` (fault rules, ``;``-separated, armed in
every worker), ``shared_adapter``, ``web``, ``spawn_rate`` (users started per second; default:
all at once). The budget (default 20 s) is split between modes.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.history import History, OpRecord
from harness.invariants import NO_LOST_PREVIEW_HASHES, ONE_MASTER, Finding, check_all
from harness.results import ScenarioResult, ViolationRecord
from harness.scenario import ScenarioContext
from harness.violations import to_violation
from scenarios.load.observer import history_before, snapshot_from_dict
from scenarios.load.worker import GRACE_S, boot
from scenarios.load.workload import Samples

DEFAULT_BUDGET_S = 20.0
DEFAULT_USERS = 8
DEFAULT_PROCESSES = 2
MODES = ("threads", "processes")
MAX_PER_INVARIANT = 10
#: The run stops this long before the mode's deadline (history, final check, exit).
TAIL_BASE_S = 0.6
TAIL_SHARE = 0.05
#: The Locust run lasts at least this long, even when start-up ate the budget.
MIN_RUN_S = 0.5
REPO_ROOT = Path(__file__).resolve().parents[2]


def percentile(hist: dict[int, int], total: int, q: float) -> float:
    """Locust-style percentile over a ``{rounded_ms: count}`` histogram."""
    if not total:
        return 0.0
    need = math.ceil(total * q)
    seen = 0
    for ms in sorted(hist):
        seen += hist[ms]
        if seen >= need:
            return float(ms)
    return float(max(hist))


def merge_stats(parts: Sequence[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Per operation: requests, failures, rps, mean/p50/p95/p99/max ms; plus totals."""
    ops: dict[str, dict[str, Any]] = {}
    for part in parts:
        for name, e in part.items():
            m = ops.setdefault(name, {"num_requests": 0, "num_failures": 0, "total_ms": 0.0,
                                      "max_ms": 0.0, "hist": {}})
            m["num_requests"] += e["num_requests"]
            m["num_failures"] += e["num_failures"]
            m["total_ms"] += e["total_response_time"]
            m["max_ms"] = max(m["max_ms"], e["max_response_time"])
            for k, v in e["response_times"].items():
                m["hist"][int(k)] = m["hist"].get(int(k), 0) + v

    def row(m: dict[str, Any]) -> dict[str, Any]:
        n = m["num_requests"]
        return {"requests": n, "failures": m["num_failures"],
                "rps": round(n / seconds, 2) if seconds > 0 else 0.0,
                "mean_ms": round(m["total_ms"] / n, 3) if n else 0.0,
                "p50_ms": percentile(m["hist"], n, 0.50), "p95_ms": percentile(m["hist"], n, 0.95),
                "p99_ms": percentile(m["hist"], n, 0.99), "max_ms": round(m["max_ms"], 3)}

    total: dict[str, Any] = {"num_requests": 0, "num_failures": 0, "total_ms": 0.0, "max_ms": 0.0,
                             "hist": {}}
    for m in ops.values():
        total["num_requests"] += m["num_requests"]
        total["num_failures"] += m["num_failures"]
        total["total_ms"] += m["total_ms"]
        total["max_ms"] = max(total["max_ms"], m["max_ms"])
        for k, v in m["hist"].items():
            total["hist"][k] = total["hist"].get(k, 0) + v
    return {"operations": {name: row(m) for name, m in sorted(ops.items())}, "total": row(total),
            "seconds": round(seconds, 3)}


def merge_histories(parts: Sequence[list[dict[str, Any]]]) -> History:
    """One history from every worker's, ordered by invocation time and re-indexed."""
    recs = [OpRecord.from_dict(d) for part in parts for d in part]
    recs.sort(key=lambda r: (r.start, r.process))
    for i, r in enumerate(recs):
        r.index = i
    return History(recs)


def check_last_readable(last: dict[str, Any], records: Sequence[OpRecord]) -> list[Finding]:
    """``one-master`` and ``no-lost-preview-hashes`` on the observer's last readable sample
    (``{"start", "end", "snapshot"}``), against the history acknowledged before it started."""
    snap = snapshot_from_dict(last["snapshot"])
    found = check_all(snap, history_before(records, last["start"], last["end"]),
                      only=(ONE_MASTER, NO_LOST_PREVIEW_HASHES))
    for f in found:
        f.message = f"last readable snapshot (t={last['start']:.3f}s): {f.message}"
    return found


def _parse_modes(value: Any) -> list[str]:
    if not value:
        return list(MODES)
    items = value if isinstance(value, list | tuple) else str(value).replace("+", ",").split(",")
    modes = [m.strip() for m in items if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad:
        from harness.errors import ConfigError

        raise ConfigError(f"load: unknown mode(s) {', '.join(bad)}; known: {', '.join(MODES)}")
    return modes


def _adapter_spec(ctx: ScenarioContext) -> str:
    cls = ctx.adapter_cls
    return f"{cls.__module__}:{cls.__qualname__}"


class ModeRun:
    """One mode (threads or processes) of the load scenario, within ``seconds`` of wall time:
    start-up, the Locust run, the plain-loop baseline and the final check all fit in it (the
    Locust run gets what is left; at least ``MIN_RUN_S``)."""

    def __init__(self, ctx: ScenarioContext, mode: str, seconds: float, users: int,
                 processes: int, faults: list[str], web: bool = False,
                 shared: bool = False) -> None:
        self.ctx, self.mode = ctx, mode
        self.seconds = seconds
        self.nproc = 1 if mode == "threads" else max(2, processes)
        self.users = max(1, users) if mode == "threads" else max(self.nproc, users)
        self.users_per = math.ceil(self.users / self.nproc)
        # threads mode also measures the plain-loop baseline: a sixth of its slice.
        self.plain_s = round(max(0.5, min(5.0, seconds / 6)), 3) if mode == "threads" else 0
        self.tail_s = round(TAIL_BASE_S + TAIL_SHARE * seconds, 3)
        self.faults = faults
        self.web = web
        self.shared = shared
        self.dir = ctx.workdir / f"load-{mode}"
        self.spawn_rate = float(ctx.options.get("spawn_rate") or 0) or None
        self.names: list[str] = []

    def start(self, location: str, plain_location: str | None, epoch: float,
              deadline: float) -> list[subprocess.Popen[bytes]]:
        """Start the processes of this mode, each in its own session (process group)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep)
        samples = self.dir / "samples.json"
        samples.write_text(json.dumps(Samples(self.ctx.seed).to_dict()))
        common = {"epoch": epoch, "deadline": deadline, "tail_s": self.tail_s,
                  "min_run_s": MIN_RUN_S, "out": str(self.dir), "web": False}
        port_file = str(self.dir / "master.port")
        launches: list[tuple[str, str, dict[str, Any]]] = []
        if self.mode == "processes":
            launches.append(("master", "master", {**common, "processes": self.nproc,
                                                  "users": self.users, "port_file": port_file,
                                                  "web": self.web, "spawn_rate": self.spawn_rate}))
        for w in range(self.nproc):
            launches.append((f"worker-{w}", "worker", {
                **common, "adapter": _adapter_spec(self.ctx), "location": location, "worker": w,
                "users": self.users_per, "seed": self.ctx.seed, "observer": w == 0,
                "role": "worker" if self.mode == "processes" else "local",
                "port_file": port_file, "plain_s": self.plain_s if w == 0 else 0,
                "plain_location": plain_location, "faults": self.faults,
                "web": self.web and self.mode == "threads",
                "shared_adapter": self.shared, "samples": str(samples),
                "spawn_rate": self.spawn_rate}))
        procs = []
        for name, module, cfg in launches:
            path = self.dir / f"config-{name}.json"
            path.write_text(json.dumps(cfg))
            log = open(self.dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
            try:
                procs.append(subprocess.Popen([sys.executable, "-c", boot(module), str(path)],
                                              env=env, cwd=str(REPO_ROOT), stdout=log,
                                              stderr=subprocess.STDOUT, start_new_session=True))
            except BaseException:
                self.kill(procs)
                raise
            finally:
                log.close()
            self.names.append(name)
        return procs

    def wait(self, procs: list[subprocess.Popen[bytes]], deadline: float) -> None:
        """Wait for every process to exit by itself; on a failure or past ``deadline`` plus
        the grace period, kill every process group and raise with the logs."""
        limit = deadline + GRACE_S
        try:
            while True:
                codes = [p.poll() for p in procs]
                if any(c not in (None, 0) for c in codes):
                    raise RuntimeError(f"a load process failed ({self.mode}):\n{self.logs()}")
                if all(c == 0 for c in codes):
                    return
                if time.time() > limit:
                    raise RuntimeError(f"load processes did not stop ({self.mode}):\n{self.logs()}")
                time.sleep(0.02)
        except BaseException:
            self.kill(procs)
            raise

    def kill(self, procs: list[subprocess.Popen[bytes]]) -> None:
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            p.wait(timeout=10)

    def logs(self) -> str:
        out = []
        for name in self.names:
            path = self.dir / f"{name}.log"
            if path.exists():
                out.append(f"--- {name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(out)

    def run(self) -> tuple[list[ViolationRecord], dict[str, Any], int]:
        ctx = self.ctx
        epoch = time.time()
        deadline = epoch + self.seconds
        location = ctx.new_location(f"load_{self.mode}")
        ctx.open(location).close()  # create the schema once, before the workers race for it
        plain_location = None
        if self.plain_s:
            plain_location = ctx.new_location(f"plain_{self.mode}")
            ctx.open(plain_location).close()
        procs = self.start(location, plain_location, epoch, deadline)
        self.wait(procs, deadline)
        t_done = time.time()

        results = [json.loads((self.dir / f"result-{w}.json").read_text())
                   for w in range(self.nproc)]
        history = merge_histories([json.loads((self.dir / f"history-{w}.json").read_text())
                                   for w in range(self.nproc)])
        recs = history.records
        snap, snap_error = None, None
        try:
            store = ctx.open(location)
            try:
                snap = store.snapshot()
            finally:
                store.close()
        except Exception as exc:  # noqa: BLE001 - an unreadable store is a finding
            snap_error = f"{type(exc).__name__}: {exc}"

        t_checked = time.time()
        master = None
        if self.mode == "processes":
            master = json.loads((self.dir / "result-master.json").read_text())
        t0 = min(r["load_start"] for r in results)
        t1 = max(r["load_end"] for r in results)
        timing = {"budget_s": round(self.seconds, 2), "startup_s": round(t0, 2),
                  "run_s": round(t1 - t0, 2), "after_run_s": round(t_done - epoch - t1, 2)}
        concurrency = "threads" if self.mode == "threads" else "processes"
        context = {"mode": self.mode, "processes": self.nproc, "users_per_process": self.users_per,
                   "shared_adapter": self.shared}
        repro = (f"harness load --adapter {ctx.adapter_name} --users {self.users} --processes "
                 f"{self.nproc} --budget {self.seconds:g} --seed {ctx.seed}")
        violations: list[ViolationRecord] = []
        counts: dict[str, int] = {}

        def report(findings: list[Finding], source: str) -> None:
            for f in findings:
                key = f.invariant if source == "final" else f"{source}:{f.invariant}"
                counts[key] = counts.get(key, 0) + 1
                if counts[key] <= MAX_PER_INVARIANT:
                    violations.append(to_violation(f, recs, concurrency=concurrency,
                                                   reproduction=repro,
                                                   context={**context, "source": source}))

        for r in results:
            report([Finding(**f) for f in r["observer"]["findings"]], "observer")
        report(check_all(snap, recs, snapshot_error=snap_error), "final")
        last = next((r["observer"]["last_readable"] for r in results
                     if r["observer"].get("last_readable")), None)
        if snap is None and last is not None:
            report(check_last_readable(last, recs), "last-readable")

        if master is not None:
            stats = merge_stats([master["stats"]], t1 - t0)
            timing["startup_s"] = round(master["ready_at"], 2)
        else:
            stats = merge_stats([r["stats"] for r in results], t1 - t0)
        outcomes: dict[str, dict[str, int]] = {}
        for r in results:
            for op, by in r["outcomes"].items():
                for status, n in by.items():
                    outcomes.setdefault(op, {})[status] = outcomes.setdefault(op, {}).get(status, 0) + n
        observer = {k: sum(r["observer"][k] for r in results)
                    for k in ("samples", "snapshot_errors", "violations")}
        errors = [r["observer"].get("first_error") for r in results if r["observer"].get("first_error")]
        if errors:
            observer["first_error"] = errors[0]
        details: dict[str, Any] = {
            "processes": self.nproc, "users_per_process": self.users_per,
            "duration_s": round(t1 - t0, 3), "operations": len(recs),
            "ops_s": round(len(recs) / (t1 - t0), 2) if t1 > t0 else 0.0,
            "outcomes": outcomes, "observer": observer, "findings": counts,
            "final_snapshot_error": snap_error,
            "last_readable_at": round(last["start"], 3) if snap is None and last else None,
            "stats_source": "locust master" if master is not None else "locust local runner",
            "parallelism": {"pids": [r["pid"] for r in results],
                            "pool_threads": sum(r["parallelism"]["pool_threads"] for r in results),
                            "max_in_flight_per_process": [r["parallelism"]["max_in_flight"]
                                                          for r in results]},
            "stats": stats,
        }
        timing["check_s"] = round(time.time() - t_checked, 2)
        timing["wall_s"] = round(time.time() - epoch, 2)
        details["timing"] = timing
        details["phases"] = {f"worker-{r['worker']}": r.get("phases", {}) for r in results}
        if master is not None:
            details["phases"]["master"] = {"ready": master["ready_at"], "drain": master["drain_at"]}
        for r in results:
            if "overhead" in r:
                o = r["overhead"]
                h = o["harness_ops"] / o["window_s"]
                p = o["plain_ops"] / o["plain_seconds"] if o["plain_seconds"] else 0.0
                details["overhead"] = {"harness_ops_s": round(h, 2), "plain_ops_s": round(p, 2),
                                       "ratio": round(h / p, 3) if p else None,
                                       "window_s": o["window_s"], "threads": self.users_per}
        return violations, details, len(recs)


class LoadScenario:
    """Locust load with real parallelism; invariants checked during and after the run."""

    name = "load"
    kind = "load"

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        opts = ctx.options
        modes = _parse_modes(opts.get("modes"))
        users = int(opts.get("users") or DEFAULT_USERS)
        processes = int(opts.get("processes") or DEFAULT_PROCESSES)
        faults = opts.get("faults") or []
        if isinstance(faults, str):
            faults = [f for f in faults.split(";") if f.strip()]
        budget = float(ctx.budget_s or DEFAULT_BUDGET_S)
        slot = budget / len(modes)
        result = ScenarioResult(name=self.name, kind=self.kind)
        t0 = time.monotonic()
        result.details = {"modes": {}, "stats": {}, "budget_s": budget, "users": users}
        for i, mode in enumerate(modes):
            ctx.progress(i, len(modes), mode)
            run = ModeRun(ctx, mode, slot, users, processes, list(faults),
                          web=bool(opts.get("web")),
                          shared=str(opts.get("shared_adapter", "")).lower() in ("1", "true", "yes"))
            violations, details, steps = run.run()
            result.violations.extend(violations)
            result.steps += steps
            result.details["stats"][mode] = details.pop("stats")
            if "overhead" in details:
                result.details["overhead"] = details["overhead"]
            result.details["modes"][mode] = details
        ctx.progress(len(modes), len(modes), "done")
        result.duration_s = round(time.monotonic() - t0, 3)
        return result
