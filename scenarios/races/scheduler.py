"""A cooperative scheduler over real threads, driven by the fault controller's ``on_point`` hook.

Each worker thread runs one contract operation. It stops at a start gate and at every fault point
(named and automatic storage-boundary points) until the scheduler grants it the next *segment*:
from the point where it waits to its next point, or to the end of its operation. Exactly one
thread is granted at a time, so an interleaving is the sequence of threads granted, written as a
schedule string (``"0110"``: thread 0 runs its first segment, then thread 1 two, then thread 0).

A granted thread that does not reach its next point within ``step_timeout_s`` is blocked inside
the store (a lock, ``SQLITE_BUSY`` retries, a row lock): it is marked blocked and the scheduler
lets another thread run. A blocked thread becomes runnable again when it reaches a point (its
lock holder moved on). When no thread can run and every unfinished thread stays blocked for
``deadlock_s``, that is a deadlock: the scheduler stops gating (every later point passes
through) and reports which thread was stuck after which point.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

WAITING, RUNNING, BLOCKED, DONE = "waiting", "running", "blocked", "done"


@dataclass
class Worker:
    index: int
    label: str
    state: str = "new"
    at: str = "start"
    arrivals: int = 0
    granted: bool = False
    points: list[str] = field(default_factory=list)
    thread: threading.Thread | None = None


@dataclass
class Decision:
    chosen: int
    options: tuple[int, ...]


@dataclass
class Outcome:
    decisions: list[Decision]
    deadlock: str | None = None
    #: The prefix asked for a thread that could not run there (replay diverged).
    diverged: bool = False
    stuck: bool = False

    @property
    def schedule(self) -> str:
        return "".join(str(d.chosen) for d in self.decisions)


class Scheduler:
    """Runs ``bodies`` (one per thread) under one interleaving that starts with ``prefix``."""

    def __init__(self, *, step_timeout_s: float = 0.25, settle_s: float = 0.02,
                 release_settle_s: float = 0.2, deadlock_s: float = 3.0,
                 join_s: float = 10.0) -> None:
        self.step_timeout_s = step_timeout_s
        self.settle_s = settle_s
        self.release_settle_s = release_settle_s
        self.deadlock_s = deadlock_s
        self.join_s = join_s
        self._cv = threading.Condition()
        self._workers: list[Worker] = []
        self._by_thread: dict[int, Worker] = {}
        self._aborted = False

    # -- the hook (runs on worker threads)
    def hook(self, point: str) -> None:
        """``FaultController.on_point``: park the calling worker until it is granted."""
        worker = self._by_thread.get(threading.get_ident())
        if worker is None:
            return
        with self._cv:
            worker.state, worker.at = WAITING, point
            worker.points.append(point)
            worker.arrivals += 1
            self._cv.notify_all()
            while not worker.granted and not self._aborted:
                self._cv.wait()
            worker.granted = False
            worker.state = RUNNING

    def _finish(self, worker: Worker) -> None:
        with self._cv:
            worker.state = DONE
            worker.arrivals += 1
            self._cv.notify_all()

    # -- the driver (runs on the calling thread)
    def run(self, bodies: Sequence[tuple[str, Callable[[], None]]], prefix: str = "") -> Outcome:
        self._workers = [Worker(i, label) for i, (label, _) in enumerate(bodies)]
        outcome = Outcome(decisions=[])
        for worker, (_, body) in zip(self._workers, bodies, strict=True):
            worker.thread = threading.Thread(target=self._main, args=(worker, body),
                                             name=f"race-{worker.index}", daemon=True)
        for worker in self._workers:
            assert worker.thread is not None
            worker.thread.start()
        try:
            self._drive(outcome, prefix)
        finally:
            with self._cv:
                self._aborted = True
                self._cv.notify_all()
            deadline = time.monotonic() + self.join_s
            for worker in self._workers:
                assert worker.thread is not None
                worker.thread.join(max(0.0, deadline - time.monotonic()))
            outcome.stuck = any(w.thread is not None and w.thread.is_alive()
                                for w in self._workers)
        return outcome

    def _main(self, worker: Worker, body: Callable[[], None]) -> None:
        with self._cv:
            self._by_thread[threading.get_ident()] = worker
        try:
            self.hook("start")
            body()
        finally:
            self._finish(worker)

    def _wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait on the condition (held) until ``predicate`` or ``timeout``."""
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._cv.wait(left)
        return True

    def _drive(self, outcome: Outcome, prefix: str) -> None:
        workers = self._workers
        with self._cv:
            if not self._wait(lambda: all(w.state == WAITING for w in workers), 10.0):
                raise RuntimeError("race workers did not reach their start gate")
            last_done = False
            while True:
                if all(w.state == DONE for w in workers):
                    return
                if any(w.state == BLOCKED for w in workers):
                    # A lock holder may just have let a blocked thread go: give it time to
                    # reach its next point so that the choice below does not depend on timing.
                    self._wait(lambda: not any(w.state == BLOCKED for w in workers),
                               self.release_settle_s if last_done else self.settle_s)
                if all(w.state == DONE for w in workers):
                    return
                waiting = [w.index for w in workers if w.state == WAITING]
                if not waiting:
                    if not self._wait(lambda: any(w.state in (WAITING, DONE) for w in workers),
                                      self.deadlock_s):
                        outcome.deadlock = self._describe_deadlock(outcome)
                        return
                    continue
                pos = len(outcome.decisions)
                if pos < len(prefix):
                    want = int(prefix[pos])
                    if want not in waiting and want < len(workers) and \
                            workers[want].state == BLOCKED:
                        self._wait(lambda w=workers[want]: w.state != BLOCKED, self.deadlock_s)
                        waiting = [w.index for w in workers if w.state == WAITING]
                    if want in waiting:
                        chosen = want
                    else:
                        outcome.diverged = True
                        chosen = self._default(outcome, waiting)
                else:
                    chosen = self._default(outcome, waiting)
                outcome.decisions.append(Decision(chosen, tuple(waiting)))
                worker = workers[chosen]
                before = worker.arrivals
                worker.granted, worker.state = True, RUNNING
                self._cv.notify_all()
                arrived = self._wait(lambda w=worker, n=before: w.arrivals > n,
                                     self.step_timeout_s)
                if not arrived and worker.state == RUNNING:
                    worker.state = BLOCKED
                last_done = worker.state == DONE

    @staticmethod
    def _default(outcome: Outcome, waiting: list[int]) -> int:
        """Past the prefix: keep running the thread that ran last (no preemption), else the
        lowest-numbered runnable thread."""
        if outcome.decisions and outcome.decisions[-1].chosen in waiting:
            return outcome.decisions[-1].chosen
        return waiting[0]

    def _describe_deadlock(self, outcome: Outcome) -> str:
        stuck = [w for w in self._workers if w.state != DONE]
        parts = [f"thread {w.index} ({w.label}) blocked inside the store after point {w.at}"
                 for w in stuck]
        return (f"deadlock: every unfinished thread blocked for more than {self.deadlock_s:g}s "
                f"under schedule {outcome.schedule!r}: " + "; ".join(parts))
