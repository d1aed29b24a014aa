"""``races``: enumerate thread interleavings of small operation pairs (DESIGN section 6).

For every pair (see :mod:`scenarios.races.pairs`) the explorer runs the setup alone, then one
real thread per racing operation on one shared adapter instance, each through its own
:class:`~harness.client.RecordingClient` (process ``race-0``, ``race-1``) into one history. The
fault controller's ``on_point`` hook is the :class:`~scenarios.races.scheduler.Scheduler`, which
lets one thread at a time advance from one fault point (named or storage-boundary) to the next.

Exploration: every run starts from a schedule prefix and continues by default (the thread that
ran last keeps running); every decision it made by default that had another runnable thread
becomes a new prefix. Prefixes run fewest-preemptions first (then in lexicographic order), each
on a fresh store, so the enumeration is exhaustive when it ends and, under the cap, still covers
every single-preemption interleaving before deeper ones. After each schedule every invariant is
checked on the snapshot and the history; a finding becomes a violation (``thread-safe``) whose
reproduction replays that exact schedule. All threads blocked in the store is a ``no-deadlock``
violation. A pair's own fault rules (``Pair.rules``, e.g. a store that is down) are armed afresh
for every schedule, setup included.

Options (``--option KEY=VALUE``): ``pair`` (only those pairs, comma-separated), ``schedule``
(replay just that schedule string), ``max_schedules`` (cap per pair, default 64),
``step_timeout`` (seconds before a granted thread counts as blocked in the store, default 0.25),
``deadlock_timeout`` (seconds every unfinished thread may stay blocked, default 3).

``details``: ``counts`` per pair (schedules, ok, violation, deadlock, error, exhausted,
max_preemptions), ``schedules`` (failing schedules only, at most 5 per pair, each with pair,
schedule, result, invariants, messages, reproduction).
"""

from __future__ import annotations

import copy
import heapq
import time
from collections.abc import Sequence
from typing import Any

from harness.client import RecordingClient
from harness.families import check_all_for, family_of
from harness.faults import FaultController, parse_rule
from harness.history import OK, History
from harness.invariants import NO_DEADLOCK, Finding
from harness.results import ScenarioResult, ViolationRecord
from harness.scenario import ScenarioContext
from harness.store import THREAD_SAFE
from harness.violations import to_violation
from scenarios.races.pairs import PAIRS, Pair
from scenarios.races.scheduler import Decision, Outcome, Scheduler

__all__ = ["NO_DEADLOCK", "PAIRS", "Pair", "RaceScenario", "Scheduler", "children",
           "preemptions"]

DEFAULT_BUDGET_S = 60.0
DEFAULT_MAX_SCHEDULES = 64
#: Failing schedules listed in ``details["schedules"]`` per pair (counts cover them all).
LISTED_PER_PAIR = 5


def preemptions(decisions: Sequence[Decision]) -> int:
    """Context switches away from a thread that could have continued."""
    return sum(1 for prev, d in zip(decisions, decisions[1:], strict=False)
               if prev.chosen in d.options and d.chosen != prev.chosen)


def children(outcome: Outcome, start: int) -> list[tuple[int, str]]:
    """Every schedule prefix that departs from ``outcome`` at a decision it made by default
    (position ``start`` on), with its preemption count."""
    decisions = outcome.decisions
    out = []
    for i in range(start, len(decisions)):
        d = decisions[i]
        for o in d.options:
            if o != d.chosen:
                branch = [*decisions[:i], Decision(o, d.options)]
                out.append((preemptions(branch), "".join(str(x.chosen) for x in branch)))
    return out


def _float(options: dict[str, Any], key: str, default: float) -> float:
    value = options.get(key)
    return default if value in (None, "") else float(value)


class RaceScenario:
    name = "races"
    kind = "races"

    def __init__(self, pairs: Sequence[Pair] | None = None) -> None:
        self.pairs = tuple(pairs) if pairs is not None else None

    # -- entry point
    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        t0 = time.monotonic()
        opts = ctx.options
        own = self.pairs if self.pairs is not None else family_of(ctx.adapter_cls).load("race_pairs")
        pairs = self._selected(own, opts.get("pair"))
        replay = opts.get("schedule") or None
        cap = int(opts.get("max_schedules") or DEFAULT_MAX_SCHEDULES)
        budget = ctx.budget_s if ctx.budget_s is not None else DEFAULT_BUDGET_S
        timing = {"step_timeout_s": _float(opts, "step_timeout", 0.25),
                  "deadlock_s": _float(opts, "deadlock_timeout", 3.0)}
        result = ScenarioResult(name=self.name, kind=self.kind)
        counts: dict[str, dict[str, Any]] = {}
        listed: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()
        total = None if replay is None else len(pairs)
        for n, pair in enumerate(pairs):
            share = (budget - (time.monotonic() - t0)) / (len(pairs) - n)
            deadline = time.monotonic() + max(share, 0.0)
            tally = counts[pair.name] = {"schedules": 0, "ok": 0, "violation": 0,
                                         "deadlock": 0, "error": 0, "exhausted": False,
                                         "max_preemptions": 0}
            setup, racing = pair.calls(ctx.seed)
            # Fewest preemptions first (then lexicographic), so that a cap still covers every
            # point at which one thread can cut into the other before deeper interleavings.
            queue: list[tuple[int, str]] = [(0, replay or "")]
            queued = {replay or ""}
            pair_listed = 0
            while queue:
                _, prefix = heapq.heappop(queue)
                entry, violations = self._one(ctx, pair, setup, racing, prefix, timing,
                                              replaying=replay is not None)
                outcome = entry.pop("_outcome")
                entry["preemptions"] = preemptions(outcome.decisions)
                result.steps += 1
                tally["schedules"] += 1
                tally[entry["result"]] += 1
                tally["max_preemptions"] = max(tally["max_preemptions"], entry["preemptions"])
                for v in violations:
                    if (pair.name, v.invariant) not in seen:
                        seen.add((pair.name, v.invariant))
                        result.violations.append(v)
                if entry["result"] != "ok" and pair_listed < LISTED_PER_PAIR:
                    listed.append(entry)
                    pair_listed += 1
                ctx.progress(result.steps, total, f"{pair.name} {entry['schedule']}")
                if replay is not None:
                    break
                for child in children(outcome, len(prefix)):
                    if child[1] not in queued:
                        queued.add(child[1])
                        heapq.heappush(queue, child)
                if not queue:
                    tally["exhausted"] = True
                elif tally["schedules"] >= cap or time.monotonic() > deadline:
                    break
        result.details = {"pairs": [p.name for p in pairs], "counts": counts,
                          "schedules": listed, "max_schedules": cap, **timing,
                          "replay": replay}
        result.duration_s = round(time.monotonic() - t0, 3)
        return result

    @staticmethod
    def _selected(own: Sequence[Pair], wanted: Any) -> list[Pair]:
        if not wanted:
            return list(own)
        known = {p.name: p for p in own}
        names = [w.strip() for w in str(wanted).split(",") if w.strip()]
        missing = [w for w in names if w not in known]
        if missing:
            from harness.errors import ConfigError

            raise ConfigError(f"races: unknown pair(s) {', '.join(missing)}; known: "
                              f"{', '.join(known)}")
        return [known[w] for w in names]

    # -- one schedule on a fresh store
    def _one(self, ctx: ScenarioContext, pair: Pair, setup: list, racing: list, prefix: str,
             timing: dict[str, float], *, replaying: bool
             ) -> tuple[dict[str, Any], list[ViolationRecord]]:
        check_all = check_all_for(ctx.adapter_cls)
        faults = FaultController([parse_rule(r) for r in pair.rules], seed=ctx.seed)
        history = History()
        location = ctx.new_location(f"race_{pair.name}")
        adapter = ctx.open(location, faults)
        keep_open = False
        try:
            setup_client = RecordingClient(adapter, history, process="setup")
            for op, args in setup:
                rec = setup_client.call(op, **copy.deepcopy(args))
                if rec.status != OK:
                    entry = {"pair": pair.name, "schedule": prefix, "result": "error",
                             "invariants": [], "error": f"setup {op} failed: {rec.error}",
                             "_outcome": Outcome(decisions=[])}
                    return entry, []
            scheduler = Scheduler(step_timeout_s=timing["step_timeout_s"],
                                  deadlock_s=timing["deadlock_s"])
            bodies = []
            for i, (op, args) in enumerate(racing):
                client = RecordingClient(adapter, history, process=f"race-{i}")
                call_args = copy.deepcopy(args)
                bodies.append((op, lambda c=client, o=op, a=call_args: c.call(o, **a)))
            faults.on_point = scheduler.hook
            try:
                outcome = scheduler.run(bodies, prefix)
            finally:
                faults.on_point = None
            keep_open = outcome.stuck
            findings: list[Finding] = []
            if outcome.deadlock:
                findings.append(Finding(NO_DEADLOCK, outcome.deadlock))
            if not outcome.stuck:
                try:
                    snap = adapter.snapshot()
                except Exception as exc:  # noqa: BLE001 - an unreadable store is a finding
                    findings.extend(check_all(None, history, snapshot_error=repr(exc)))
                else:
                    findings.extend(check_all(snap, history.records))
            schedule = outcome.schedule
            reproduction = self._reproduction(ctx, pair, schedule)
            context = {"pair": pair.name, "schedule": schedule,
                       "operations": [op for op, _ in racing]}
            records = history.records
            # The pair's own fault rules are the same in every schedule: what a failing schedule
            # adds is the interleaving, so its errors do not make the finding an atomicity one.
            guarantee = THREAD_SAFE if pair.rules else None
            violations = [to_violation(f, records, concurrency="threads", guarantee=guarantee,
                                       reproduction=reproduction, context=context)
                          for f in findings]
            status = ("deadlock" if outcome.deadlock else "violation" if findings else "ok")
            entry = {"pair": pair.name, "schedule": schedule, "result": status,
                     "invariants": sorted({f.invariant for f in findings}),
                     "_outcome": outcome}
            if findings:
                entry["messages"] = [f.message for f in findings][:5]
                entry["reproduction"] = reproduction
            if outcome.diverged:
                entry["diverged"] = True
            if replaying:
                entry["findings"] = [f.to_dict() for f in findings]
            return entry, violations
        finally:
            if not keep_open:
                try:
                    adapter.close()
                    ctx.adapter_cls.drop_location(location)  # ctx.cleanup() retries it
                except Exception:  # noqa: BLE001 - best effort
                    pass

    @staticmethod
    def _reproduction(ctx: ScenarioContext, pair: Pair, schedule: str) -> str:
        return (f"python -m harness run --adapter {ctx.adapter_name} --scenario races "
                f"--seed {ctx.seed} --option pair={pair.name} --option schedule={schedule}")
