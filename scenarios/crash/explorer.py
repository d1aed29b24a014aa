"""The crash explorer (DESIGN section 6): every write operation x every fault point it passes ->
a forked child dies exactly there -> re-open -> check every invariant.

For each case of :mod:`scenarios.crash.plans` the explorer prepares a store (setup calls through
a :class:`RecordingClient`), traces the fault points the operation passes on a separate copy
(named points plus the automatic ``write#k`` / ``sql#k`` / ``commit#k``), and then, for each point,
prepares a fresh store the same way, runs the operation in a child that ``os._exit``s at that
point (``crash``; also ``torn-write`` at each ``write#k`` of file stores), re-opens the store in
the parent and runs its family's ``check_all`` over the setup calls plus the crashed,
``pending`` call. A crash-free run of each case is the baseline: findings it shows too are
contract bugs of the operation itself (the stateful scenario's business), not crash damage, and
are listed in the row's ``preexisting`` but not reported as violations here.

Speed: file stores are set up once per case and copied per cell; server stores reuse one
location per case, emptied with ``reset()`` and set up again on the adapter that just checked the
previous cell. Cells run in ``crash_workers`` forked worker processes (default 4), each owning
whole cases so that a case's cells run in the same order as serially; rows are assembled in plan
order, so the matrix does not depend on the number of workers. Options (``ctx.options``):
``crash_workers`` (1: everything in this process), ``crash_reuse_setup`` (False: every cell
gets a new location set up from scratch), ``crash_case`` (only those cases, comma-separated).
"""

from __future__ import annotations

import copy
import os
import pickle
import select
import shutil
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.client import RecordingClient
from harness.families import check_all_for, family_of
from harness.faults import CRASH, TORN_WRITE, FaultController, FaultRule, parse_rule
from harness.forked import run_in_child, trace_points
from harness.history import OK, History, OpRecord
from harness.invariants import Finding
from harness.results import SKIPPED, ScenarioResult, ViolationRecord
from harness.scenario import ScenarioContext
from harness.store import Store
from harness.violations import to_violation
from scenarios.crash import repro
from scenarios.crash.plans import CrashCase

CHILD_TIMEOUT_S = 30.0
#: Worker processes for the crash cells (option ``crash_workers``; 1: all in this process).
DEFAULT_WORKERS = 4
_MESSAGE_LIMIT = 400


class SetupFailed(RuntimeError):
    """A setup call of a case was not acknowledged: the case cannot be explored."""


def exact_pattern(point: str) -> str:
    """An fnmatch pattern matching exactly ``point``."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in point)


@dataclass(frozen=True)
class Cell:
    case: CrashCase
    point: str      # the point name as traced
    after: int      # how many earlier passes of the same point to skip
    action: str

    @property
    def label(self) -> str:
        return self.point if self.after == 0 else f"{self.point}@{self.after + 1}"


def _prepare(ctx: ScenarioContext, case: CrashCase) -> tuple[str, History]:
    """A fresh location holding the case's setup, and the history of that setup."""
    location = ctx.new_location("crash")
    return location, _setup(ctx, case, location)


def _setup(ctx: ScenarioContext, case: CrashCase, location: str, *, reset: bool = False) -> History:
    """Run the case's setup calls on ``location`` (emptied first when ``reset``)."""
    adapter = ctx.open(location)
    try:
        return _setup_on(adapter, case, reset=reset)
    finally:
        adapter.close()


def _environment(case: CrashCase) -> list[FaultRule]:
    """The case's own fault rules (its environment), parsed afresh."""
    return [parse_rule(text) for text in case.rules]


def _setup_on(adapter: Store, case: CrashCase, *, reset: bool) -> History:
    history = History()
    if reset:
        adapter.reset()
    saved = adapter.faults
    if case.rules:
        adapter.faults = FaultController(_environment(case))
    try:
        client = RecordingClient(adapter, history, process="setup")
        for op, args in case.setup:
            rec = client.call(op, **args)
            if rec.status != OK:
                raise SetupFailed(f"{case.name}: setup {op} -> {rec.status} ({rec.error})")
    finally:
        adapter.faults = saved
    return history


class _Stores:
    """Prepared stores for a case, each as good as fresh and cheap to get.

    File stores are prepared once per case and then copied: the adapter is closed, so the
    directory is the whole store. Server stores (a schema per location is slow to make and drop)
    get one location per case that is emptied with the contract's ``reset()`` and set up again;
    when that fails (the crash left it unusable) a new location is prepared instead.
    """

    def __init__(self, ctx: ScenarioContext, reuse: bool) -> None:
        self.ctx = ctx
        self.reuse = reuse
        self.file = ctx.adapter_cls.location_kind == "file"
        self._templates: dict[str, tuple[str, list[OpRecord]]] = {}
        self._locations: dict[str, str] = {}
        self._ready: dict[str, History] = {}
        #: In a worker process new locations cannot be made safely (ctx's counter is shared).
        self.in_worker = False

    def prepare_next(self, case: CrashCase, location: str, adapter: Store) -> None:
        """Server stores: right after a check, set the case up again on the still-open adapter
        (saves one open per cell). Any failure leaves it to :meth:`fresh`."""
        if not self.reuse or self.file or self._locations.get(case.name) != location:
            return
        try:
            self._ready[case.name] = _setup_on(adapter, case, reset=True)
        except Exception:  # noqa: BLE001 - fresh() retries the slow way
            self._ready.pop(case.name, None)

    def fresh(self, case: CrashCase, location: str | None = None) -> tuple[str, History]:
        """A store holding the case's setup (in ``location`` when given, for file stores)."""
        if not self.reuse:
            return _prepare(self.ctx, case)
        if self.file:
            return self._copy(case, location)
        location = self._locations.get(case.name)
        if location is not None and case.name in self._ready:
            return location, self._ready.pop(case.name)
        if location is not None:
            try:
                return location, _setup(self.ctx, case, location, reset=True)
            except Exception:  # noqa: BLE001 - unusable after the crash: start afresh
                if self.in_worker:
                    raise
        location, history = _prepare(self.ctx, case)
        self._locations[case.name] = location
        return location, history

    def _copy(self, case: CrashCase, location: str | None) -> tuple[str, History]:
        if case.name not in self._templates:
            made, history = _prepare(self.ctx, case)
            if not os.path.isdir(made):  # not a directory store: prepare every time
                self.reuse = False
                return made, history
            self._templates[case.name] = (made, history.records)
        template, records = self._templates[case.name]
        location = location or self.ctx.new_location("crash")
        shutil.copytree(template, location, dirs_exist_ok=True)
        history = History()
        for rec in records:  # replayed with fresh, ordered timestamps
            new = history.invoke(rec.process, rec.op, copy.deepcopy(rec.args))
            history.complete(new, rec.status, result=copy.deepcopy(rec.result))
            new.error, new.error_type = rec.error, rec.error_type
            new.faults.extend(copy.deepcopy(rec.faults))
        return location, history


def _check(ctx: ScenarioContext, location: str, history: History,
           then: Callable[[Store], None] | None = None) -> list[Finding]:
    """Re-open ``location``, snapshot, check every invariant; ``then(adapter)`` runs on the open
    adapter after a successful snapshot."""
    snapshot, error = None, None
    try:
        adapter = ctx.open(location)
        try:
            snapshot = adapter.snapshot()
            if then is not None:
                then(adapter)
        finally:
            adapter.close()
    except Exception as exc:  # noqa: BLE001 - any failure to open or read: store-readable
        error = f"{type(exc).__name__}: {exc}"
    return check_all_for(ctx.adapter_cls)(snapshot, history.records, snapshot_error=error)


def _cells(ctx: ScenarioContext, case: CrashCase, points: Sequence[str]) -> list[Cell]:
    seen: dict[str, int] = {}
    cells = []
    for p in points:
        n = seen.get(p, 0)
        seen[p] = n + 1
        cells.append(Cell(case, p, n, CRASH))
        if ctx.adapter_cls.location_kind == "file" and "write#" in p:
            cells.append(Cell(case, p, n, TORN_WRITE))
    return cells


def _merge(invariant: str, findings: list[Finding], cell: Cell) -> Finding:
    text = "; ".join(f.message for f in findings)
    if len(text) > _MESSAGE_LIMIT:
        text = text[:_MESSAGE_LIMIT - 1] + "…"
    ids = list(dict.fromkeys(i for f in findings for i in f.ids))
    ops = sorted({o for f in findings for o in f.ops})
    return Finding(invariant, f"{cell.case.name} {cell.action} at {cell.label}: {text}", ids, ops)


def _error_row(cell: Cell, error: str) -> dict[str, Any]:
    return {"operation": cell.case.op, "case": cell.case.name, "point": cell.label,
            "action": cell.action, "broken": [], "messages": [], "outcome": "error",
            "preexisting": [], "error": error[:_MESSAGE_LIMIT]}


def _run_in_workers(groups: list[list[int]], workers: int, stores: _Stores,
                    run_cells: Callable[[list[int], Callable[[int, Any], None]], None],
                    collect: Callable[[int, Any], None]) -> None:
    """Fork up to ``workers`` processes, give each whole groups (balanced by size, largest
    first: deterministic), stream each cell's result back as a length-prefixed pickle."""
    loads = [0] * min(workers, len(groups))
    shares: list[list[int]] = [[] for _ in loads]
    for group in sorted(groups, key=lambda g: (-len(g), g[0])):
        k = loads.index(min(loads))
        loads[k] += len(group)
        shares[k].extend(group)
    readers: dict[int, tuple[int, bytearray]] = {}
    for share in shares:
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the worker
            os.close(rfd)
            status = 0
            try:
                stores.in_worker = True

                def emit(idx: int, out: Any, wfd: int = wfd) -> None:
                    data = pickle.dumps((idx, out))
                    view = memoryview(struct.pack("!I", len(data)) + data)
                    while view:
                        view = view[os.write(wfd, view):]

                run_cells(sorted(share), emit)
            except BaseException:  # noqa: BLE001 - the parent marks the missing cells
                status = 1
            finally:
                os._exit(status)
        os.close(wfd)
        readers[rfd] = (pid, bytearray())
    while readers:
        ready, _, _ = select.select(list(readers), [], [])
        for rfd in ready:
            pid, buf = readers[rfd]
            chunk = os.read(rfd, 1 << 16)
            if chunk:
                buf.extend(chunk)
                while len(buf) >= 4:
                    (size,) = struct.unpack("!I", buf[:4])
                    if len(buf) < 4 + size:
                        break
                    idx, out = pickle.loads(bytes(buf[4:4 + size]))
                    del buf[:4 + size]
                    collect(idx, out)
                continue
            os.close(rfd)
            os.waitpid(pid, 0)
            del readers[rfd]


def _selected(cases: list[CrashCase], wanted: Any) -> list[CrashCase]:
    """The cases named in the ``crash_case`` option (all when it is empty)."""
    if not wanted:
        return cases
    names = [w.strip() for w in str(wanted).split(",") if w.strip()]
    known = {c.name for c in cases}
    missing = [n for n in names if n not in known]
    if missing:
        from harness.errors import ConfigError

        raise ConfigError(f"crash: unknown case(s) {', '.join(missing)}; known: "
                          f"{', '.join(sorted(known))}")
    return [c for c in cases if c.name in names]


class CrashScenario:
    name = "crash"
    kind = "crash"

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        t0 = time.monotonic()
        result = ScenarioResult(name=self.name, kind=self.kind)
        cases = _selected(family_of(ctx.adapter_cls).load("crash_cases")(ctx.seed),
                          ctx.options.get("crash_case"))
        spec = repro.adapter_spec(ctx.adapter_cls, ctx.adapter_name)
        truncated = False
        stores = _Stores(ctx, reuse=bool(ctx.options.get("crash_reuse_setup", True)))

        def over_budget() -> bool:
            return ctx.budget_s is not None and time.monotonic() - t0 > ctx.budget_s

        # 1. trace each case's points and record its crash-free baseline
        plan: list[Cell] = []
        cases_info: list[dict[str, Any]] = []
        baselines: dict[str, set[tuple[str, str]]] = {}
        for i, case in enumerate(cases):
            ctx.progress(0, None, f"tracing {case.name} ({i + 1}/{len(cases)})")
            try:
                location, _ = stores.fresh(case)
                points = trace_points(ctx.adapter_cls, location, case.op, case.args,
                                      seed=ctx.seed, rules=_environment(case))
                location, history = stores.fresh(case)
            except SetupFailed as exc:
                cases_info.append({"case": case.name, "operation": case.op, "points": [],
                                   "error": str(exc)})
                continue
            base = run_in_child(ctx.adapter_cls, location, case.op, case.args,
                                _environment(case), seed=ctx.seed,
                                history=history, timeout_s=CHILD_TIMEOUT_S)
            base_findings = _check(ctx, location, history,
                                   lambda a, c=case, loc=location: stores.prepare_next(c, loc, a))
            baselines[case.name] = {(f.invariant, f.message) for f in base_findings}
            cases_info.append({"case": case.name, "operation": case.op, "points": points,
                               "setup": [op for op, _ in case.setup],
                               "baseline_status": base.record.status,
                               "baseline_broken": sorted({f.invariant for f in base_findings})})
            plan.extend(_cells(ctx, case, points))
            if over_budget():
                truncated = True
                break

        # 2. crash at every point (in worker processes, each owning whole cases)
        total = len(plan)
        deadline = None if ctx.budget_s is None else t0 + ctx.budget_s
        workers = max(1, int(ctx.options.get("crash_workers", DEFAULT_WORKERS)))
        locations: list[str | None] = [None] * total
        if stores.file and stores.reuse and workers > 1:
            locations = [ctx.new_location("crash") for _ in plan]
        done = 0

        def run_cells(indices: list[int], emit: Callable[[int, Any], None]) -> None:
            for idx in indices:
                if deadline is not None and time.monotonic() > deadline:
                    return
                cell = plan[idx]
                try:
                    out = self._run_cell(ctx, stores, cell, baselines[cell.case.name], spec,
                                         locations[idx])
                except Exception as exc:  # noqa: BLE001 - one broken cell, not the matrix
                    out = (_error_row(cell, f"{type(exc).__name__}: {exc}"), [])
                emit(idx, out)

        results: dict[int, tuple[dict[str, Any], list[ViolationRecord]]] = {}

        def collect(idx: int, out: Any) -> None:
            nonlocal done
            results[idx] = out
            done += 1
            cell = plan[idx]
            ctx.progress(done, total, f"{cell.case.name} {cell.action}@{cell.label}")

        groups: dict[str, list[int]] = {}
        for idx, cell in enumerate(plan):
            groups.setdefault(cell.case.name, []).append(idx)
        if workers == 1 or len(groups) < 2:
            run_cells(list(range(total)), collect)
        else:
            _run_in_workers(list(groups.values()), workers, stores, run_cells, collect)
        matrix: list[dict[str, Any]] = []
        violations: list[ViolationRecord] = []
        for idx in range(total):
            if idx not in results:
                truncated = truncated or deadline is not None
                if deadline is None:  # a worker died before reporting it
                    matrix.append(_error_row(plan[idx], "worker died before reporting this cell"))
                continue
            row, viols = results[idx]
            matrix.append(row)
            violations.extend(viols)
        ctx.progress(done, total, "done")

        result.violations = violations
        result.steps = len(matrix)
        result.details = {"crash_matrix": matrix, "cases": cases_info, "truncated": truncated,
                          "points": total}
        result.duration_s = round(time.monotonic() - t0, 3)
        if truncated and matrix:  # a partial matrix is not an exhaustive pass: say so
            result.details["reason"] = (f"partial: the budget of {ctx.budget_s}s covered "
                                        f"{len(matrix)} of {total} crash points")
        if not matrix and truncated:  # nothing explored is not a pass
            result.status = SKIPPED
            result.error = f"budget of {ctx.budget_s}s ran out before any crash point was explored"
        return result

    def _run_cell(self, ctx: ScenarioContext, stores: _Stores, cell: Cell,
                  baseline: set[tuple[str, str]], spec: str,
                  location: str | None = None) -> tuple[dict[str, Any], list[ViolationRecord]]:
        case = cell.case
        location, history = stores.fresh(case, location)
        rule = FaultRule(point=exact_pattern(cell.point), action=cell.action, after=cell.after)
        outcome = run_in_child(ctx.adapter_cls, location, case.op, case.args,
                               [*_environment(case), rule],
                               seed=ctx.seed, history=history, timeout_s=CHILD_TIMEOUT_S)
        findings = _check(ctx, location, history,
                          lambda a: stores.prepare_next(case, location, a))
        fresh = [f for f in findings if (f.invariant, f.message) not in baseline]
        old = [f for f in findings if (f.invariant, f.message) in baseline]
        by_inv: dict[str, list[Finding]] = {}
        for f in fresh:
            by_inv.setdefault(f.invariant, []).append(f)
        row = {"operation": case.op, "case": case.name, "point": cell.label, "action": cell.action,
               "broken": sorted(by_inv), "messages": [f.message for f in fresh],
               "outcome": "crashed" if outcome.crashed else outcome.record.status,
               "preexisting": sorted({f.invariant for f in old})}
        if outcome.timed_out:
            row["outcome"] = "timed-out"
        violations = []
        records = history.records
        for inv in sorted(by_inv):
            text = repro.render(spec=spec, adapter=ctx.adapter_name, case=case.name, op=case.op,
                                args=case.args, setup=case.setup, point=cell.label,
                                point_pattern=exact_pattern(cell.point), after=cell.after,
                                action=cell.action, invariant=inv, rules=case.rules)
            v = to_violation(_merge(inv, by_inv[inv], cell), records, reproduction=text,
                             context={"operation": case.op, "case": case.name,
                                      "point": cell.label, "action": cell.action})
            violations.append(v)
        return row, violations
