"""Run one operation in a forked child that may die at a fault point.

The child opens its own adapter on the location, arms the rules with ``crash_exits=True`` and
runs the operation through a :class:`RecordingClient`. A ``crash`` or ``torn-write`` makes it
``os._exit`` on the spot: no ``finally``, no ``__exit__``, no compensation, no atexit. Injections
stream to the parent over a pipe as they happen, so the parent knows where the child died even
though it never returned. The parent records the call in its own history: ``ok`` / ``fail`` /
``info`` as the child saw it, or ``pending`` when the child died.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.client import RecordingClient
from harness.faults import CRASH_EXIT_CODE, FaultController, FaultRule
from harness.history import INFO, PENDING, History, OpRecord
from harness.store import Store

_CHILD_ERROR_EXIT = 87


@dataclass
class ChildOutcome:
    record: OpRecord
    crashed: bool
    exit_code: int
    injections: list[dict[str, Any]] = field(default_factory=list)
    timed_out: bool = False


def _child(adapter_cls: type[Store], location: str, op: str, args: dict[str, Any],
           rules: Sequence[FaultRule], seed: int, process: str, wfd: int) -> None:
    def send(obj: dict[str, Any]) -> None:
        os.write(wfd, (json.dumps(obj, default=str) + "\n").encode())

    try:
        faults = FaultController(rules, seed=seed, crash_exits=True)
        faults.on_injection = lambda inj: send({"injection": inj.to_dict()})
        adapter = adapter_cls(location, faults)
        rec = RecordingClient(adapter, History(), process=process).call(op, **args)
        send({"record": rec.to_dict()})
        adapter.close()
    except BaseException as exc:  # noqa: BLE001 - report anything, then die quietly
        send({"error": f"{type(exc).__name__}: {exc}"})
        os._exit(_CHILD_ERROR_EXIT)
    os._exit(0)


def run_in_child(adapter_cls: type[Store], location: str, op: str,
                 args: dict[str, Any], rules: Sequence[FaultRule] = (), *, seed: int = 0,
                 history: History | None = None, process: str = "child",
                 timeout_s: float = 60.0) -> ChildOutcome:
    """Fork, run ``op(**args)`` in the child under ``rules``, wait, and record the outcome."""
    history = history if history is not None else History()
    rec = history.invoke(process, op, args)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(rfd)
        _child(adapter_cls, location, op, args, rules, seed, process, wfd)
    os.close(wfd)
    buf, deadline, timed_out = b"", time.monotonic() + timeout_s, False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            os.kill(pid, signal.SIGKILL)
            break
        ready, _, _ = select.select([rfd], [], [], left)
        if not ready:
            continue
        chunk = os.read(rfd, 65536)
        if not chunk:
            break
        buf += chunk
    os.close(rfd)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    messages = [json.loads(line) for line in buf.decode().splitlines() if line.strip()]
    injections = [m["injection"] for m in messages if "injection" in m]
    child_rec = next((m["record"] for m in messages if "record" in m), None)
    error = next((m["error"] for m in messages if "error" in m), None)
    crashed = code == CRASH_EXIT_CODE or timed_out
    if child_rec is not None and not crashed:
        history.complete(rec, child_rec["status"], result=child_rec.get("result"))
        rec.error, rec.error_type = child_rec.get("error"), child_rec.get("error_type")
        rec.faults.extend(child_rec.get("faults", []))
    elif crashed:
        rec.status = PENDING
        rec.faults.extend(injections)
        if timed_out:
            rec.error = f"child did not finish within {timeout_s}s and was killed"
    else:
        history.complete(rec, INFO)
        rec.error = error or f"child exited with status {code}"
        rec.error_type = (error or "ChildError").split(":")[0]
        rec.faults.extend(injections)
    return ChildOutcome(record=rec, crashed=crashed, exit_code=code, injections=injections,
                        timed_out=timed_out)


def trace_points(adapter_cls: type[Store], location: str, op: str,
                 args: dict[str, Any], *, seed: int = 0,
                 rules: Sequence[FaultRule] = ()) -> list[str]:
    """Every fault point (named and storage-boundary) ``op`` passes, found by a traced run in a
    child that does not die (so the store at ``location`` is left as the operation leaves it);
    ``rules`` are armed during the run (the environment, e.g. a store that is down)."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(rfd)
        try:
            faults = FaultController(rules, seed=seed, tracing=True)
            adapter = adapter_cls(location, faults)
            RecordingClient(adapter, History()).call(op, **args)
            os.write(wfd, json.dumps(faults.trace).encode())
            adapter.close()
        finally:
            os._exit(0)
    os.close(wfd)
    chunks = []
    while chunk := os.read(rfd, 65536):
        chunks.append(chunk)
    os.close(rfd)
    os.waitpid(pid, 0)
    data = b"".join(chunks)
    return json.loads(data) if data else []


__all__ = ["ChildOutcome", "run_in_child", "trace_points"]
