"""One load worker process: a local Locust ``Environment`` whose users drive one adapter.

Started by :mod:`scenarios.load.scenario` as ``python -c BOOT config.json``; ``BOOT`` monkey-
patches gevent *before anything else is imported*, with ``thread=False`` (and Locust told not
to patch again through ``LOCUST_SKIP_MONKEY_PATCH``):

- Locust users are greenlets on one hub. Storage drivers are blocking C code (sqlite3, libpq
  under psycopg, file I/O in TinyDB): run on the hub they would block every user at once, so
  there would be no parallelism at all. Every adapter call therefore runs in a real OS thread
  of a :class:`gevent.threadpool.ThreadPool` (one thread per user); the calling greenlet waits
  cooperatively, the drivers really run side by side (they release the GIL while they wait).
- ``threading`` stays unpatched, so the locks adapters take (``tinydb-locked``'s RLocks,
  SQLAlchemy's pool), the history's lock and the fault controller's thread-locals are native
  and correct across those OS threads. Patched (gevent) locks shared between native threads
  are slow and fragile (gevent's own advice: do not share them across threads).

The worker writes its history (timestamps on the common ``time.time()`` clock), Locust's
request statistics, the observer's findings and the overhead measurement to ``out`` as JSON.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

#: What the parent runs: patch first, then import the worker.
BOOT = ("import os, sys; os.environ['LOCUST_SKIP_MONKEY_PATCH'] = '1'; "
        "from gevent import monkey; monkey.patch_all(thread=False); "
        "from scenarios.load.worker import main; sys.exit(main(sys.argv[1:]))")

OBSERVER_INTERVAL_S = 0.05
MAX_OBSERVED = 5
SNAPSHOT_RETRIES = 20


class ClockHistory:
    """Factory for a History whose timestamps are ``time.time() - epoch`` (common clock)."""

    @staticmethod
    def make(epoch: float):  # noqa: ANN205
        from harness.history import History

        class _History(History):
            def now(self) -> float:
                return round(time.time() - epoch, 6)

        return _History()


class InFlight:
    """Counts concurrent adapter calls and the native threads they ran on (the proof of
    parallelism that ``details["parallelism"]`` reports)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.max = 0
        self.threads: set[int] = set()

    def run(self, fn, op: str, args: dict[str, Any]):  # noqa: ANN001, ANN201
        with self._lock:
            self.now += 1
            self.max = max(self.max, self.now)
            self.threads.add(threading.get_native_id())
        try:
            return fn(op, **args)
        finally:
            with self._lock:
                self.now -= 1


def _acked_previews(history) -> set[int]:  # noqa: ANN001
    """Indices of the ``record_preview`` calls acknowledged by now (before a snapshot starts):
    a consistent snapshot taken afterwards must reflect them."""
    return {r.index for r in history.records if r.op == "record_preview" and r.status == "ok"}


def _previews_for_check(history, acked_before: set[int]) -> list:  # noqa: ANN001
    """The ``record_preview`` calls, copied after the snapshot, as that snapshot may see them:
    acknowledged only if acknowledged before it started, otherwise pending (may have applied,
    not required). Only the calls that may be the last of their (job, prompt) are kept, so that
    the check stays linear in the history."""
    import dataclasses

    by_key: dict[tuple[str, str], list] = {}
    for r in history.records:
        if r.op != "record_preview":
            continue
        c = dataclasses.replace(r)
        if c.index not in acked_before:
            c.status, c.end = "pending", None
        elif not c.may_have_applied:
            continue
        by_key.setdefault((c.args.get("job_id"), c.args.get("prompt_id")), []).append(c)
    keep = []
    for recs in by_key.values():
        latest_ok = max((r.start for r in recs if r.status == "ok"), default=None)
        if latest_ok is None:
            continue
        keep.extend(r for r in recs if r.may_have_applied and (r.end is None or r.end >= latest_ok))
    return keep


def _observer(adapter, history, stop: threading.Event, epoch: float,  # noqa: ANN001
              out: dict[str, Any]) -> None:
    """A reader sampling the store during the run: one-master on every sample, and every
    acknowledged preview hash still stored on every tenth."""
    from harness.invariants import check_no_lost_preview_hashes, check_one_master

    seen: set[str] = set()
    n = 0
    while not stop.wait(OBSERVER_INTERVAL_S):
        n += 1
        acked = _acked_previews(history) if n % 10 == 0 else None
        snap = None
        for _attempt in range(SNAPSHOT_RETRIES):  # a reader retries a torn read, as an app would
            try:
                snap = adapter.snapshot()
                break
            except Exception as exc:  # noqa: BLE001 - a reader failing mid-run is counted
                out["snapshot_errors"] += 1
                out.setdefault("first_error", f"{type(exc).__name__}: {exc}"[:300])
        if snap is None:
            continue
        out["samples"] += 1
        findings = check_one_master(snap)
        if acked is not None:
            findings += check_no_lost_preview_hashes(snap, _previews_for_check(history, acked))
        for f in findings:
            out["violations"] += 1
            key = f.invariant + f.message.split(":")[0]
            if key in seen or len(out["findings"]) >= MAX_OBSERVED:
                continue
            seen.add(key)
            d = f.to_dict()
            d["ops"] = []  # indices of this worker's history, not of the merged one
            d["message"] = f"observer at t={time.time() - epoch:.3f}s saw {f.message}"
            out["findings"].append(d)


def _stats(env) -> dict[str, Any]:  # noqa: ANN001
    ops = {}
    for (name, _method), e in env.stats.entries.items():
        ops[name] = {"num_requests": e.num_requests, "num_failures": e.num_failures,
                     "total_response_time": e.total_response_time,
                     "min_response_time": e.min_response_time or 0,
                     "max_response_time": e.max_response_time,
                     "response_times": {str(k): v for k, v in e.response_times.items()}}
    return ops


def _plain_loop(cls, location: str, users: int, seconds: float, samples, seed: int) -> dict:  # noqa: ANN001
    """The same call mix, straight on the adapter from ``users`` native threads: no Locust,
    no greenlets, no recording."""
    from scenarios.load.workload import Workload

    adapter = cls(location)
    workload = Workload(samples, prefix="x")
    counts = [0] * users
    deadline = [0.0]
    go = threading.Event()

    def loop(i: int) -> None:
        rng = random.Random(seed * 7919 + i)
        go.wait()
        n = 0
        while time.perf_counter() < deadline[0]:
            op, args = workload.plan(workload.choose(rng), rng)
            try:
                getattr(adapter, op)(**args)
                status = "ok"
            except Exception as exc:  # noqa: BLE001
                status = "fail" if type(exc).__name__ in ("NotFound", "Conflict", "InvalidData") \
                    else "info"
            workload.observe(op, args, status)
            n += 1
        counts[i] = n

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(users)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    deadline[0] = t0 + seconds
    go.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    try:
        adapter.close()
    except Exception:  # noqa: BLE001
        pass
    return {"ops": sum(counts), "seconds": round(elapsed, 3)}


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    import gevent
    from gevent.threadpool import ThreadPool
    from locust import User, constant
    from locust.env import Environment

    from harness.client import RecordingClient
    from harness.faults import FaultController, parse_rule
    from harness.registry import resolve
    from scenarios.load.workload import WEIGHTS, Samples, Workload

    out_dir = Path(cfg["out"])
    w = cfg["worker"]
    users = cfg["users"]
    epoch = cfg["epoch"]
    cls = resolve(cfg["adapter"])
    faults = None
    if cfg.get("faults"):
        faults = FaultController([parse_rule(t) for t in cfg["faults"]], seed=cfg["seed"] + w)
    opened: list[Any] = []

    def open_client():  # noqa: ANN202
        a = cls(cfg["location"], faults)
        opened.append(a)
        return a

    history = ClockHistory.make(epoch)
    samples = Samples(data=json.loads(Path(cfg["samples"]).read_text()))
    workload = Workload(samples, prefix=f"w{w}-")
    pool = ThreadPool(users)
    gauge = InFlight()
    stop = threading.Event()
    outcomes: dict[str, dict[str, int]] = {}
    user_ids = itertools.count()

    class StoreUser(User):
        wait_time = constant(0)

        def on_start(self) -> None:
            self.n = next(user_ids)
            self.rng = random.Random(cfg["seed"] * 1_000_003 + w * 1009 + self.n)
            # One client per user, Jepsen-style: its own adapter instance (its own file handle
            # or connection) on the shared store, unless the run asks for one shared instance.
            self.client = RecordingClient(clients[self.n % len(clients)], history,
                                          process=f"w{w}.u{self.n}")

        def do(self, wanted: str) -> None:
            if stop.is_set():
                gevent.sleep(0.05)
                return
            op, args = workload.plan(wanted, self.rng)
            t = time.perf_counter()
            rec = pool.apply(gauge.run, (self.client.call, op, args))
            ms = (time.perf_counter() - t) * 1000.0
            workload.observe(op, args, rec.status)
            by = outcomes.setdefault(op, {})
            by[rec.status] = by.get(rec.status, 0) + 1
            exc = None if rec.status == "ok" else RuntimeError(f"{rec.status}: {rec.error_type}")
            self.environment.events.request.fire(request_type="store", name=op,
                                                 response_time=ms, response_length=0,
                                                 exception=exc, context={})

    def _task(op: str):  # noqa: ANN202
        def task(user: StoreUser) -> None:
            user.do(op)
        task.__name__ = op
        return task

    StoreUser.tasks = {_task(op): weight for op, weight in WEIGHTS.items()}

    # Open every user's adapter now, in OS threads: connecting is blocking I/O and must neither
    # stall the hub nor fall inside the measured run.
    if cfg.get("shared_adapter"):
        clients = [open_client()] * users
    else:
        clients = pool.map(lambda _i: open_client(), range(users))
    observer_adapter = open_client() if cfg.get("observer") else None
    (out_dir / f"ready-{w}").write_text("1")
    go = out_dir / "go"
    while not go.exists():
        gevent.sleep(0.01)
    start_at = float(go.read_text())
    gevent.sleep(max(0.0, start_at - time.time()))

    env = Environment(user_classes=[StoreUser])
    runner = env.create_local_runner()
    web_ui = None
    if cfg.get("web"):
        web_ui = env.create_web_ui("127.0.0.1", cfg.get("web_port", 8089))
        print(f"locust web UI: http://127.0.0.1:{cfg.get('web_port', 8089)}", flush=True)
    observed = {"samples": 0, "snapshot_errors": 0, "violations": 0, "findings": []}
    observer = None
    if cfg.get("observer"):
        observer = threading.Thread(target=_observer, name="observer", daemon=True,
                                    args=(observer_adapter, history, stop, epoch, observed))
        observer.start()
    t_start = time.time()
    runner.start(users, spawn_rate=100)
    gevent.sleep(cfg["duration"])
    stop.set()
    deadline = time.time() + 30
    while gauge.now and time.time() < deadline:
        gevent.sleep(0.01)
    t_end = time.time()
    runner.quit()
    pool.join()
    pool.kill()
    if observer is not None:
        observer.join(timeout=10)
    if web_ui is not None:
        web_ui.stop()
    for a in opened:
        try:
            a.close()
        except Exception:  # noqa: BLE001
            pass

    result: dict[str, Any] = {
        "worker": w, "pid": os.getpid(), "users": users,
        "shared_adapter": bool(cfg.get("shared_adapter")),
        "load_start": round(t_start - epoch, 6), "load_end": round(t_end - epoch, 6),
        "stats": _stats(env), "outcomes": outcomes, "observer": observed,
        "parallelism": {"pool_threads": len(gauge.threads), "max_in_flight": gauge.max},
    }
    plain_s = cfg.get("plain_s") or 0
    if plain_s:
        plain = _plain_loop(cls, cfg["plain_location"], users, plain_s, samples, cfg["seed"])
        recs = history.records
        first = min((r.start for r in recs), default=0.0)
        window = [r for r in recs if r.end is not None and r.end <= first + plain_s]
        result["overhead"] = {"window_s": plain_s, "harness_ops": len(window),
                              "plain_ops": plain["ops"], "plain_seconds": plain["seconds"]}
    (out_dir / f"history-{w}.json").write_text(json.dumps(history.to_list(), default=str))
    (out_dir / f"result-{w}.json").write_text(json.dumps(result, default=str))
    return result


def main(argv: list[str]) -> int:
    cfg = json.loads(Path(argv[0]).read_text())
    try:
        run(cfg)
    except Exception:  # noqa: BLE001 - reported to the parent through the log and exit status
        traceback.print_exc()
        return 3
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
