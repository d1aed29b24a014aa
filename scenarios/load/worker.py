"""One load process: Locust users driving one adapter, either under a local Locust runner
(threads mode) or as a Locust ``WorkerRunner`` of the master (:mod:`scenarios.load.master`,
processes mode), which decides when the users start and stop and aggregates the statistics.

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

The process writes its history (timestamps on the common ``time.time()`` clock), the observer's
findings and last readable sample, the overhead measurement and (local runner only) Locust's
request statistics to ``out`` as JSON. A watchdog thread ends the process if it outlives its
hard deadline or its parent.
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


def boot(module: str) -> str:
    """The ``python -c`` program of a load process: patch first, then import ``module``."""
    return ("import os, sys; os.environ['LOCUST_SKIP_MONKEY_PATCH'] = '1'; "
            "from gevent import monkey; monkey.patch_all(thread=False); "
            f"from scenarios.load.{module} import main; sys.exit(main(sys.argv[1:]))")


BOOT = boot("worker")
#: Exit status of a process ended by its watchdog.
EXIT_WATCHDOG = 4
#: How long after the mode's deadline a process may still live (then its watchdog ends it).
GRACE_S = 20.0
USER_CLASS = "StoreUser"


def start_watchdog(hard_deadline: float) -> None:
    """End this process (``os._exit``) past ``hard_deadline`` or when its parent is gone."""
    parent = os.getppid()

    def watch() -> None:
        tick = threading.Event()
        while not tick.wait(0.25):
            if time.time() > hard_deadline or os.getppid() != parent:
                print("load process: watchdog ends it", file=sys.stderr, flush=True)
                os._exit(EXIT_WATCHDOG)

    threading.Thread(target=watch, name="watchdog", daemon=True).start()


def run_until(cfg: dict[str, Any]) -> float:
    """When the users must stop (``time.time()``): the mode's deadline less what comes after
    the run (the plain-loop baseline, writing the history, the final check)."""
    return cfg["deadline"] - cfg.get("tail_s", 0.0) - (cfg.get("plain_s") or 0.0)


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

    adapters = [cls(location) for _ in range(users)]  # one per thread, like the Locust users
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
                getattr(adapters[i], op)(**args)
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
    for adapter in adapters:
        try:
            adapter.close()
        except Exception:  # noqa: BLE001
            pass
    return {"ops": sum(counts), "seconds": round(elapsed, 3)}


class Process:
    """The state of one load process: adapters, users, history, observer."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        from gevent.threadpool import ThreadPool

        from harness.faults import FaultController, parse_rule
        from harness.registry import resolve
        from scenarios.load.workload import Samples, Workload

        self.cfg = cfg
        self.w = cfg["worker"]
        self.users = cfg["users"]
        self.epoch = cfg["epoch"]
        self.out_dir = Path(cfg["out"])
        self.cls = resolve(cfg["adapter"])
        self.faults = None
        if cfg.get("faults"):
            self.faults = FaultController([parse_rule(t) for t in cfg["faults"]],
                                          seed=cfg["seed"] + self.w)
        self.opened: list[Any] = []
        self.history = ClockHistory.make(self.epoch)
        self.samples = Samples(data=json.loads(Path(cfg["samples"]).read_text()))
        self.workload = Workload(self.samples, prefix=f"w{self.w}-")
        self.pool = ThreadPool(self.users)
        self.gauge = InFlight()
        self.stop = threading.Event()
        self.outcomes: dict[str, dict[str, int]] = {}
        self.user_ids = itertools.count()
        self.t_start: float | None = None
        self.t_end: float | None = None
        self.observer = None
        self.phases: dict[str, float] = {}
        # Open every user's adapter now, in OS threads: connecting is blocking I/O and must
        # neither stall the hub nor fall inside the measured run.
        if cfg.get("shared_adapter"):
            self.clients = [self.open_client()] * self.users
        else:
            self.clients = self.pool.map(lambda _i: self.open_client(), range(self.users))
        self.observer_adapter = self.open_client() if cfg.get("observer") else None

    def open_client(self):  # noqa: ANN201
        a = self.cls(self.cfg["location"], self.faults)
        self.opened.append(a)
        return a

    def user_class(self) -> type:
        import gevent
        from locust import User, constant

        from harness.client import RecordingClient
        from scenarios.load.workload import WEIGHTS

        proc = self

        class StoreUser(User):
            wait_time = constant(0)

            def on_start(self) -> None:
                proc.began()
                self.n = next(proc.user_ids)
                self.rng = random.Random(proc.cfg["seed"] * 1_000_003 + proc.w * 1009 + self.n)
                # One client per user, Jepsen-style: its own adapter instance (its own file
                # handle or connection) on the shared store, unless the run asks for one shared.
                self.client = RecordingClient(proc.clients[self.n % len(proc.clients)],
                                              proc.history, process=f"w{proc.w}.u{self.n}")

            def do(self, wanted: str) -> None:
                if proc.stop.is_set():
                    gevent.sleep(0.05)
                    return
                if proc.workload.opening:  # the opening phase picks the racing flows itself
                    wanted = proc.workload.choose(self.rng)
                op, args = proc.workload.plan(wanted, self.rng)
                t = time.perf_counter()
                rec = proc.pool.apply(proc.gauge.run, (self.client.call, op, args))
                ms = (time.perf_counter() - t) * 1000.0
                proc.workload.observe(op, args, rec.status)
                by = proc.outcomes.setdefault(op, {})
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
        StoreUser.__name__ = StoreUser.__qualname__ = USER_CLASS
        return StoreUser

    def began(self) -> None:
        """The first user starts: the load (and the observer's opening phase) begins."""
        if self.t_start is not None:
            return
        self.t_start = time.time()
        if self.observer_adapter is not None:
            from scenarios.load.observer import Observer

            self.observer = Observer(self.observer_adapter.snapshot, lambda: self.history.records,
                                     self.history.now, self.stop)
            self.observer.start()

    def mark(self, phase: str) -> None:
        self.phases[phase] = round(time.time() - self.epoch, 3)

    def drain(self) -> None:
        """Stop issuing calls and wait for the ones in flight (they are recorded)."""
        import gevent

        self.mark("drain")
        self.stop.set()
        deadline = time.time() + 30
        while self.gauge.now and time.time() < deadline:
            gevent.sleep(0.01)
        self.t_end = time.time()
        if self.observer is not None:
            self.observer.join()
        self.mark("drained")

    def write(self, stats: dict[str, Any] | None) -> dict[str, Any]:
        t_start = self.t_start if self.t_start is not None else time.time()
        t_end = self.t_end if self.t_end is not None else t_start
        result: dict[str, Any] = {
            "worker": self.w, "pid": os.getpid(), "users": self.users,
            "shared_adapter": bool(self.cfg.get("shared_adapter")),
            "load_start": round(t_start - self.epoch, 6), "load_end": round(t_end - self.epoch, 6),
            "stats": stats, "outcomes": self.outcomes,
            "observer": self.observer.to_dict() if self.observer is not None
            else {"samples": 0, "snapshot_errors": 0, "violations": 0, "findings": []},
            "parallelism": {"pool_threads": len(self.gauge.threads), "max_in_flight": self.gauge.max},
        }
        plain_s = self.cfg.get("plain_s") or 0
        if plain_s:
            plain = _plain_loop(self.cls, self.cfg["plain_location"], self.users, plain_s,
                                self.samples, self.cfg["seed"])
            recs = self.history.records
            first = min((r.start for r in recs), default=0.0)
            window = [r for r in recs if r.end is not None and r.end <= first + plain_s]
            result["overhead"] = {"window_s": plain_s, "harness_ops": len(window),
                                  "plain_ops": plain["ops"], "plain_seconds": plain["seconds"]}
            self.mark("plain_done")
        self.mark("written")
        result["phases"] = self.phases
        (self.out_dir / f"history-{self.w}.json").write_text(json.dumps(self.history.to_list(),
                                                                        default=str))
        (self.out_dir / f"result-{self.w}.json").write_text(json.dumps(result, default=str))
        return result

    def close(self) -> None:
        self.mark("close")
        self.pool.join()
        self.pool.kill()
        for a in self.opened:
            try:
                a.close()
            except Exception:  # noqa: BLE001
                pass


def run_local(proc: Process) -> None:
    """Threads mode: a local Locust runner, started at once, stopped at :func:`run_until`."""
    import gevent
    from locust.env import Environment

    cfg = proc.cfg
    env = Environment(user_classes=[proc.user_class()])
    runner = env.create_local_runner()
    web_ui = None
    if cfg.get("web"):
        web_ui = env.create_web_ui("127.0.0.1", cfg.get("web_port", 8089))
        print(f"locust web UI: http://127.0.0.1:{cfg.get('web_port', 8089)}", flush=True)
    runner.start(proc.users, spawn_rate=cfg.get("spawn_rate") or max(100, proc.users * 10))
    gevent.sleep(max(cfg.get("min_run_s", 0.5), run_until(cfg) - time.time()))
    proc.drain()
    runner.quit()
    if web_ui is not None:
        web_ui.stop()
    proc.close()
    proc.write(_stats(env))


def run_worker(proc: Process) -> None:
    """Processes mode: a Locust ``WorkerRunner`` on the master's loopback port. The master
    spawns the users and sends ``drain`` when the run is over; the worker stops its users,
    sends its last statistics, answers ``drained``, writes its files and waits for ``quit``."""
    import gevent
    from gevent.event import Event
    from locust.env import Environment

    cfg = proc.cfg
    port_file = Path(cfg["port_file"])
    while not port_file.exists():
        if time.time() > cfg["deadline"] + GRACE_S / 4:
            raise RuntimeError("the load master never published its port")
        gevent.sleep(0.01)
    port = int(port_file.read_text())
    env = Environment(user_classes=[proc.user_class()])
    runner = env.create_worker_runner("127.0.0.1", port)
    done = Event()

    def on_drain(environment, msg, **_kw) -> None:  # noqa: ANN001
        proc.drain()
        runner._send_stats()  # the last statistics reach the master before "drained" does
        runner.send_message("drained", {"worker": proc.w, "load_start": proc.t_start,
                                        "load_end": proc.t_end})
        proc.write(None)  # the parent waits for this process; the master need not
        done.set()

    runner.register_message("drain", on_drain, concurrent=True)
    done.wait(timeout=max(1.0, cfg["deadline"] + GRACE_S / 2 - time.time()))
    if not done.is_set():
        raise RuntimeError("the load master never asked this worker to stop")
    runner.greenlet.join(timeout=1)  # the master's "quit"
    proc.close()


def finish(code: int) -> int:
    """Leave at once: every file is written and every adapter closed; skip the interpreter's
    teardown of the hub, the thread pool and Locust's greenlets (it takes seconds)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str]) -> int:
    cfg = json.loads(Path(argv[0]).read_text())
    start_watchdog(cfg["deadline"] + GRACE_S)
    try:
        proc = Process(cfg)
        if cfg.get("role") == "worker":
            run_worker(proc)
        else:
            run_local(proc)
    except Exception:  # noqa: BLE001 - reported to the parent through the log and exit status
        traceback.print_exc()
        return finish(3)
    return finish(0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
