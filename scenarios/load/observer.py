"""The load scenario's observer: a reader sampling the store while the load runs, and the
real-time cut of the history that makes a snapshot checkable.

No Locust or gevent import here: the observer runs in a native OS thread of a worker, and the
parent uses :func:`history_before` for the final check against the last readable snapshot.

A sample is checked against the history *acknowledged before it started*: operations that
finished before the snapshot started count as they are; operations still running while it was
read may or may not be reflected (``pending``); operations invoked after it ended are ignored.
``one-master`` holds on every sample (a reader that ever sees zero or two masters while resumes
exist is a violation); ``no-lost-preview-hashes`` is checked on every sample of the opening
phase and on every tenth afterwards (it is linear in the history).

The observer keeps the last sample it could read, with its time window on the common clock:
a store that later becomes unreadable (``store-readable``) must not hide the violations it
showed while it was still readable.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from harness.contract import (
    Snapshot,
    improvement_from_dict,
    job_from_dict,
    resume_from_dict,
)
from harness.history import OK, PENDING, OpRecord
from harness.invariants import Finding, check_no_lost_preview_hashes, check_one_master

#: Sampling interval during the opening phase of the load, and afterwards.
FAST_INTERVAL_S = 0.002
INTERVAL_S = 0.05
#: Length of the opening phase (seconds from the observer's start).
OPENING_S = 1.0
MAX_OBSERVED = 5
SNAPSHOT_RETRIES = 20


def history_before(records: Iterable[OpRecord], start: float, end: float) -> list[OpRecord]:
    """The history as a snapshot read between ``start`` and ``end`` may reflect it: calls that
    finished before ``start`` keep their outcome, calls overlapping the read become ``pending``
    (may have applied, not required), calls invoked after ``end`` are dropped. Copies; indices
    are kept so that findings name the operations of the full history."""
    out = []
    for r in records:
        if r.start > end:
            continue
        if r.end is None or r.end >= start:
            r = dataclasses.replace(r, status=PENDING, end=None, result=None)
        out.append(r)
    return out


def previews_for_check(records: Iterable[OpRecord], start: float, end: float) -> list[OpRecord]:
    """The ``record_preview`` calls of :func:`history_before`, only those that may be the last
    applied one of their (job, prompt): enough for ``no-lost-preview-hashes``' stored-hash
    check and linear in the history."""
    by_key: dict[tuple[Any, Any], list[OpRecord]] = {}
    for r in history_before((r for r in records if r.op == "record_preview"), start, end):
        if r.may_have_applied:
            by_key.setdefault((r.args.get("job_id"), r.args.get("prompt_id")), []).append(r)
    keep: list[OpRecord] = []
    for recs in by_key.values():
        latest_ok = max((r.start for r in recs if r.status == OK), default=None)
        if latest_ok is not None:
            keep.extend(r for r in recs if r.end is None or r.end >= latest_ok)
    return keep


def snapshot_from_dict(d: dict[str, Any]) -> Snapshot:
    """The inverse of :meth:`Snapshot.to_dict`."""
    return Snapshot(resumes={k: resume_from_dict(v) for k, v in d["resumes"].items()},
                    jobs={k: job_from_dict(v) for k, v in d["jobs"].items()},
                    improvements={k: improvement_from_dict(v) for k, v in d["improvements"].items()})


def check_sample(snap: Snapshot, records: list[OpRecord], start: float, end: float,
                 previews: bool) -> list[Finding]:
    """``one-master`` and (when ``previews``) ``no-lost-preview-hashes`` on one sample."""
    findings = check_one_master(snap)
    if previews:
        findings += check_no_lost_preview_hashes(snap, previews_for_check(records, start, end))
    return findings


class Observer:
    """Samples ``read()`` in a native thread until ``stop`` is set; ``now()`` is the history's
    clock, ``records()`` the history so far."""

    def __init__(self, read: Callable[[], Snapshot], records: Callable[[], list[OpRecord]],
                 now: Callable[[], float], stop: threading.Event) -> None:
        self.read, self.records, self.now, self.stop = read, records, now, stop
        self.samples = 0
        self.snapshot_errors = 0
        self.violations = 0
        self.first_error: str | None = None
        self.findings: list[dict[str, Any]] = []
        self.last: tuple[Snapshot, float, float] | None = None
        self._seen: set[str] = set()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="observer", daemon=True)
        self._thread.start()

    def join(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def sample(self, previews: bool) -> None:
        for _attempt in range(SNAPSHOT_RETRIES):  # a reader retries a torn read, as an app would
            t0 = self.now()
            try:
                snap = self.read()
            except Exception as exc:  # noqa: BLE001 - a reader failing mid-run is counted
                self.snapshot_errors += 1
                if self.first_error is None:
                    self.first_error = f"{type(exc).__name__}: {exc}"[:300]
                continue
            t1 = self.now()
            self.samples += 1
            self.last = (snap, t0, t1)
            for f in check_sample(snap, self.records(), t0, t1, previews):
                self.record(f, t0)
            return

    def record(self, f: Finding, at: float) -> None:
        self.violations += 1
        key = f.invariant + f.message.split(":")[0]
        if key in self._seen or len(self.findings) >= MAX_OBSERVED:
            return
        self._seen.add(key)
        d = f.to_dict()
        d["ops"] = []  # indices of this worker's history, not of the merged one
        d["message"] = f"observer at t={at:.3f}s saw {f.message}"
        self.findings.append(d)

    def run(self) -> None:
        began = time.monotonic()
        n = 0
        while True:
            opening = time.monotonic() - began < OPENING_S
            if self.stop.wait(FAST_INTERVAL_S if opening else INTERVAL_S):
                break
            n += 1
            self.sample(previews=opening or n % 10 == 0)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"samples": self.samples, "snapshot_errors": self.snapshot_errors,
                               "violations": self.violations, "findings": self.findings}
        if self.first_error:
            out["first_error"] = self.first_error
        if self.last is not None:
            snap, t0, t1 = self.last
            out["last_readable"] = {"start": t0, "end": t1, "snapshot": snap.to_dict()}
        return out

