"""The Hypothesis state machine over the resume contract (DESIGN section 6, stateful/).

Each example drives one adapter on a fresh location (``ctx.new_location()``) through a
:class:`RecordingClient`, the adapter sharing a :class:`FaultController` with the driver. Rules are
the contract operations on Faker data (seeded from Hypothesis-drawn ints: several scripts, long
texts, sometimes invalid ``processed_data``), on existing and on missing ids, with deterministic
ids (:class:`IdFactory`). Under the ``error`` and ``crash`` modes every write rule also draws an
optional fault for its own operation: an ``error`` at one of its fault points (the adapter's named
ones, then ``<op>.write#k`` / ``<op>.sql#k`` / ``<op>.commit#1``), or a crash there: the operation
runs in a forked child (:func:`run_in_child`) that dies at the point, and the machine goes on
with a re-opened adapter.

After every step the invariants run on a fresh snapshot plus the history (an unreadable store is
``store-readable``). When a target invariant breaks, the step raises :class:`InvariantBroken`
carrying the finding and the exact steps run so far, so the exception Hypothesis raises after
shrinking holds the program; :func:`minimize` then removes what is still removable by exact
replays.
"""

from __future__ import annotations

import time
import unittest
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, precondition, rule

from harness.client import RecordingClient
from harness.domain import DataFactory, IdFactory, preview_hash
from harness.families import check_all_for, family_of
from harness.faults import CRASH, ERROR, FaultController, FaultRule
from harness.forked import run_in_child
from harness.history import OK, History, OpRecord
from harness.invariants import Finding
from harness.scenario import ScenarioContext
from harness.store import Store

PLAIN, ERRORS, CRASHES = "plain", "error", "crash"
MODES: tuple[str, ...] = (PLAIN, ERRORS, CRASHES)
#: Mode -> the fault action a write rule's fault draw injects.
MODE_ACTION = {ERRORS: ERROR, CRASHES: CRASH}

MISSING_RESUME = "r-missing"
MISSING_JOB = "j-missing"
MISSING_TAILORED = "t-missing"
PROMPTS = ("p1", "p2")
#: Storage-boundary points tried after an operation's named ones (see harness.boundaries).
BOUNDARY_POINTS = ("write#1", "write#2", "write#3", "sql#1", "sql#2", "sql#3", "commit#1")

#: Drawn by every write rule: under the error / crash modes, a fault at the k-th candidate point
#: of that operation (None: no fault). Ignored in the plain mode.
FAULT = st.none() | st.integers(0, 31)


#: Drawn next to a bundle id: True replaces it with an id that never existed. (A bundle inside
#: ``one_of`` is drawn far less often than a ``just``, so the choice is a separate draw.)
MISS = st.integers(0, 4).map(lambda n: n == 4)

_factory: DataFactory | None = None


def data_for(seed: int) -> DataFactory:
    """The shared Faker factory, re-seeded: a pure function of ``seed`` (Faker is slow to build)."""
    global _factory
    if _factory is None:
        _factory = DataFactory(0)
    _factory.fake.seed_instance(seed)
    _factory.rng.seed(seed)
    return _factory


def fault_points_for(adapter_cls: type[Store], op: str) -> list[str]:
    """Candidate fault points of ``op``: the adapter's named ones, then storage-boundary ones."""
    named = list(adapter_cls.fault_points.get(op, ()))
    return named + [f"{op}.{b}" for b in BOUNDARY_POINTS]


class BudgetSpent(unittest.SkipTest):
    """The search's time is up before it found anything (a skip ends a Hypothesis run at once)."""


class InvariantBroken(AssertionError):
    """A target invariant broke; carries the finding, the steps run and the history."""

    def __init__(self, finding: Finding, steps: list[dict[str, Any]], history: list[OpRecord]) -> None:
        super().__init__(f"[{finding.invariant}] {finding.message}")
        self.finding = finding
        self.steps = steps
        self.history = history


@dataclass
class Search:
    """One Hypothesis search: the adapter, the mode, the invariants that fail it, a deadline."""

    ctx: ScenarioContext
    mode: str
    targets: frozenset[str]
    deadline: float
    started: float = field(default_factory=time.monotonic)
    #: The invariant this search locked onto at its first failure (shrinking keeps to it).
    locked: str | None = None
    first_at: float | None = None
    examples: int = 0
    steps: int = 0
    #: Shrinking stops after this many runs (deterministic) or at ``shrink_deadline`` (safety).
    max_shrink_runs: int = 150
    shrink_budget_s: float = 20.0
    shrink_deadline: float = float("inf")
    shrink_runs: int = 0
    #: The shortest failing program seen for the locked invariant.
    best: InvariantBroken | None = None
    #: The first program seen breaking each target invariant, and when (seconds into the search).
    seen: dict[str, InvariantBroken] = field(default_factory=dict)
    seen_at: dict[str, float] = field(default_factory=dict)


class Driver:
    """Runs steps on one adapter at a fresh location and checks the invariants after each.

    A step is ``{"op", "args", "fault": None | {"action", "point"[, "count"]}, "recipes"}``; a
    ``crash`` runs the call in a forked child that dies at the point, then the store is
    re-opened; any other action (``error``, or what a family's ``fault_for`` picks, e.g.
    ``corrupt``) is armed on the shared controller for that one call, firing ``count`` times
    (default 1).
    """

    def __init__(self, ctx: ScenarioContext, mode: str) -> None:
        self.ctx, self.mode, self.cls = ctx, mode, ctx.adapter_cls
        self.check_all = check_all_for(ctx.adapter_cls)
        self.location = ctx.new_location("stateful")
        self.faults = FaultController(seed=ctx.seed)
        self.adapter: Store | None = ctx.open(self.location, self.faults)
        self.history = History()
        self.client = RecordingClient(self.adapter, self.history, process="machine")
        self.steps: list[dict[str, Any]] = []
        self.present: set[tuple[str, str]] = set()  # findings after the previous step

    def close(self) -> None:
        if self.adapter is not None:
            try:
                self.adapter.close()
            except Exception:  # noqa: BLE001 - best effort
                pass
            self.adapter = None
        try:
            self.cls.drop_location(self.location)
        except Exception:  # noqa: BLE001 - the runner's cleanup tries again
            pass

    def run_step(self, step: dict[str, Any], wanted: set[str]) -> tuple[OpRecord, list[Finding]]:
        """Run one step; return its record and the findings of ``wanted`` that count as new."""
        self.steps.append(step)
        op, args, fault = step["op"], step["args"], step.get("fault")
        assert self.adapter is not None
        if fault and fault["action"] == CRASH:
            self.adapter.close()
            self.adapter = None
            rec = run_in_child(self.cls, self.location, op, args,
                               [FaultRule(point=fault["point"], action=CRASH)],
                               seed=self.ctx.seed, history=self.history, process="child").record
            self.adapter = self.ctx.open(self.location, self.faults)
            self.client = RecordingClient(self.adapter, self.history, process="machine")
        elif fault:
            self.faults.arm(FaultRule(point=fault["point"], action=fault.get("action", ERROR),
                                      count=fault.get("count", 1)))
            try:
                rec = self.client.call(op, **args)
            finally:
                self.faults.clear()
        else:
            rec = self.client.call(op, **args)
        return rec, self.check(rec, wanted)

    def check(self, rec: OpRecord, wanted: set[str]) -> list[Finding]:
        assert self.adapter is not None
        try:
            snapshot, error = self.adapter.snapshot(), None
        except Exception as exc:  # noqa: BLE001 - an unreadable store is a finding
            snapshot, error = None, f"{type(exc).__name__}: {exc}"
        findings = self.check_all(snapshot, self.history.records, snapshot_error=error,
                                  only=wanted)
        now = {(f.invariant, f.message) for f in findings}
        if self.mode == PLAIN:
            fresh = findings
        else:
            # Under faults, count only what broke at the step whose operation got the fault.
            fresh = ([f for f in findings if (f.invariant, f.message) not in self.present]
                     if rec.faults else [])
        self.present = now
        return fresh


def replay(ctx: ScenarioContext, mode: str, invariant: str,
           steps: list[dict[str, Any]]) -> InvariantBroken | None:
    """Run ``steps`` on a fresh store; the program up to the first step where ``invariant``
    breaks (as the mode counts it), or None when it never does. Under the error / crash modes
    the same program without its faults must not break it (else the fault is not the cause)."""
    driver = Driver(ctx, mode)
    found: InvariantBroken | None = None
    try:
        for step in steps:
            _rec, fresh = driver.run_step(dict(step), {invariant})
            if fresh:
                found = InvariantBroken(fresh[0], [dict(x) for x in driver.steps],
                                        driver.history.records)
                break
    finally:
        driver.close()
    if found is not None and mode != PLAIN:
        plain = [{**x, "fault": None} for x in found.steps]
        if replay(ctx, PLAIN, invariant, plain) is not None:
            return None
    return found


def minimize(ctx: ScenarioContext, mode: str, broken: InvariantBroken, *,
             max_replays: int = 80, deadline: float = float("inf")) -> InvariantBroken | None:
    """Delta debugging on top of Hypothesis' shrinking (which is cut short here): drop chunks of
    steps (halves, quarters, ... single steps) while the violation still reproduces, until no
    single step can go. Deterministic: replays are exact. None when ``broken`` does not count
    on replay (see :func:`replay`)."""
    checked = replay(ctx, mode, broken.finding.invariant, broken.steps)
    if checked is None:
        return None  # does not replay, or (under faults) breaks without the fault as well
    best, replays = checked, 1
    size = max(1, len(best.steps) // 2)
    while len(best.steps) > 1 and replays < max_replays and time.monotonic() < deadline:
        removed = False
        start = len(best.steps) - 1 - size  # keep the failing (last) step; go back to front
        while start >= 0 and replays < max_replays and time.monotonic() < deadline:
            candidate = best.steps[:start] + best.steps[start + size:]
            replays += 1
            found = replay(ctx, mode, best.finding.invariant, candidate)
            if found is not None and len(found.steps) < len(best.steps):
                best, removed = found, True
                start = min(start, len(best.steps) - 1) - size
            else:
                start -= size
        if not removed:
            if size == 1:
                break
            size = max(1, size // 2)
        else:
            size = min(size, max(1, len(best.steps) // 2))
    return best


class FamilyMachine(RuleBasedStateMachine):
    """The base of every family's state machine; ``search`` is set on a per-search subclass.

    A family's machine adds ``@rule``s that call :meth:`_do` with an operation of its contract
    and its arguments, plus ``fault=FAULT`` on write rules: under the error and crash modes that
    draw picks the fault point. ``_do`` runs the step through the :class:`Driver` (which checks
    the family's invariants after it), records it for shrinking and the reproduction, and raises
    :class:`InvariantBroken` when a target invariant breaks. Subclasses that keep state set it
    up in ``setup()``.
    """

    search: Search

    def __init__(self) -> None:
        super().__init__()
        s = self.search
        if s.locked is None and time.monotonic() > s.deadline:
            raise BudgetSpent()  # Hypothesis re-raises skips at once: the search ends
        if s.locked is not None:
            s.shrink_runs += 1
            done = s.best is not None and len(s.best.steps) <= 1  # nothing shorter exists
            if done or s.shrink_runs > s.max_shrink_runs or time.monotonic() > s.shrink_deadline:
                raise BudgetSpent()  # keep the shortest failing program seen so far
        s.examples += 1
        self.driver = Driver(s.ctx, s.mode)
        self.ids = IdFactory()
        self.setup()

    def setup(self) -> None:
        """Per-example state of a subclass (called once the driver and ids exist)."""

    def teardown(self) -> None:
        self.driver.close()

    def fault_for(self, op: str, fault: int | None) -> dict[str, Any] | None:
        """The fault a write rule's draw ``fault`` injects into ``op`` under the search's mode:
        ``{"action", "point"}`` (plus an optional ``"count"``), or None. By default the mode's
        action at the drawn candidate point; a family overrides it to inject faults of its own
        (e.g. a store down for several attempts, a corrupted read)."""
        action = MODE_ACTION.get(self.search.mode) if fault is not None else None
        if action is None:
            return None
        points = fault_points_for(self.search.ctx.adapter_cls, op)
        return {"action": action, "point": points[(fault or 0) % len(points)]}

    def _do(self, op: str, recipes: dict[str, str] | None = None, fault: int | None = None,
            **args: Any) -> OpRecord:
        s = self.search
        step: dict[str, Any] = {"kind": "op", "op": op, "args": args,
                                "fault": self.fault_for(op, fault),
                                "recipes": dict(recipes or {})}
        s.steps += 1
        rec, fresh = self.driver.run_step(step, set(s.targets))
        for f in fresh:  # every target seen, so one search serves several invariants
            if f.invariant not in s.seen:
                s.seen[f.invariant] = InvariantBroken(f, [dict(x) for x in self.driver.steps],
                                                      self.driver.history.records)
                s.seen_at[f.invariant] = time.monotonic() - s.started
        if s.locked is None and fresh:
            s.locked = fresh[0].invariant
            s.first_at = time.monotonic() - s.started
            s.shrink_deadline = time.monotonic() + s.shrink_budget_s
        mine = [f for f in fresh if f.invariant == s.locked]
        if mine:
            broken = InvariantBroken(mine[0], [dict(x) for x in self.driver.steps],
                                     self.driver.history.records)
            if s.best is None or len(broken.steps) < len(s.best.steps):
                s.best = broken
            raise broken
        return rec



class ResumeMachine(FamilyMachine):
    """The resume contract as a state machine."""

    resumes = Bundle("resumes")
    jobs = Bundle("jobs")
    tailored = Bundle("tailored")

    def setup(self) -> None:
        self.made: dict[str, list[str]] = {"r": [], "j": [], "t": []}
        self.hashes: dict[tuple[str, str], list[str]] = {}  # acknowledged, in order

    def _known_hash(self, job_id: str, prompt: str, kind: str) -> str:
        acked = self.hashes.get((job_id, prompt), [])
        if kind == "right" and acked:
            return acked[-1]
        if kind == "stale" and len(acked) > 1:
            return acked[-2]
        if kind == "stale":
            other = [h for (j, _p), hs in sorted(self.hashes.items()) if j == job_id for h in hs]
            if other:
                return other[0]
        return preview_hash(job_id, prompt, "wrong")

    # ------------------------------------------------------------------ resumes

    @rule(fault=FAULT, target=resumes, seed=st.integers(0, 2**16),
          long=st.integers(0, 15).map(lambda n: n == 15), data=st.sampled_from(["none", "valid", "invalid"]))
    def upload_resume(self, fault: int | None, seed: int, long: bool, data: str) -> str:
        df = data_for(seed)
        content = df.resume_content(long=long)
        filename = df.filename()
        processed = {"none": None, "valid": df.resume_data, "invalid": df.invalid_resume_data}[data]
        processed = processed() if processed else None
        rid = self.ids.resume()
        self.made["r"].append(rid)
        recipes = {"content": f"data_for({seed}).resume_content(long=True)"} if long else {}
        self._do("upload_resume", recipes, fault, content=content, content_type="md",
                 filename=filename, processed_data=processed, resume_id=rid)
        return rid

    @rule(fault=FAULT, rid=resumes, miss=MISS, seed=st.integers(0, 2**16),
          what=st.sampled_from(["content", "valid", "invalid", "status", "forbidden"]))
    def update_resume(self, fault: int | None, rid: str, seed: int, what: str, miss: bool) -> None:
        rid = MISSING_RESUME if miss else rid
        df = data_for(seed)
        fields: dict[str, Any] = {
            "content": lambda: {"content": df.resume_content()},
            "valid": lambda: {"processed_data": df.resume_data()},
            "invalid": lambda: {"processed_data": df.invalid_resume_data()},
            "status": lambda: {"processing_status": "failed"},
            "forbidden": lambda: {"is_master": True},
        }[what]()
        self._do("update_resume", fault=fault, resume_id=rid, fields=fields)

    @rule(fault=FAULT, rid=resumes, miss=MISS)
    def set_master(self, fault: int | None, rid: str, miss: bool) -> None:
        rid = MISSING_RESUME if miss else rid
        self._do("set_master", fault=fault, resume_id=rid)

    @rule(fault=FAULT, rid=resumes, miss=MISS)
    def delete_resume(self, fault: int | None, rid: str, miss: bool) -> None:
        rid = MISSING_RESUME if miss else rid
        self._do("delete_resume", fault=fault, resume_id=rid)

    @rule(fault=FAULT, rid=resumes, miss=MISS, seed=st.integers(0, 2**16),
          what=st.sampled_from(["save_cover_letter", "save_outreach_message"]))
    def save_text(self, fault: int | None, rid: str, miss: bool, seed: int, what: str) -> None:
        rid = MISSING_RESUME if miss else rid
        df = data_for(seed)
        text = df.fake.paragraph() if what == "save_cover_letter" else df.fake.sentence()
        self._do(what, fault=fault, resume_id=rid, text=text)

    # ------------------------------------------------------------------ jobs

    @rule(fault=FAULT, target=jobs, seed=st.integers(0, 2**16))
    def create_job(self, fault: int | None, seed: int) -> str:
        df = data_for(seed)
        jid = self.ids.job()
        self.made["j"].append(jid)
        self._do("create_job", fault=fault, content=df.job_content(), job_keywords=df.keywords(), job_id=jid)
        return jid

    @rule(fault=FAULT, jid=jobs, jmiss=MISS, prompt=st.sampled_from(PROMPTS),
          salt=st.integers(0, 3))
    def record_preview(self, fault: int | None, jid: str, prompt: str, salt: int, jmiss: bool) -> None:
        jid = MISSING_JOB if jmiss else jid
        h = preview_hash(jid, prompt, salt)
        rec = self._do("record_preview", fault=fault, job_id=jid, prompt_id=prompt, preview_hash=h)
        if rec.status == OK:
            self.hashes.setdefault((jid, prompt), []).append(h)

    # ------------------------------------------------------------------ improvements

    @rule(fault=FAULT, target=tailored, rid=resumes, miss=MISS,
          jid=jobs, jmiss=MISS, prompt=st.sampled_from(PROMPTS),
          which=st.sampled_from(["right", "right", "stale", "wrong"]), seed=st.integers(0, 2**16),
          valid=st.integers(0, 7).map(lambda n: n != 7))
    def confirm_improvement(self, fault: int | None, rid: str, jid: str, prompt: str, which: str,
                            seed: int, valid: bool, miss: bool, jmiss: bool) -> str:
        rid = MISSING_RESUME if miss else rid
        jid = MISSING_JOB if jmiss else jid
        df = data_for(seed)
        improved = df.resume_data() if valid else df.invalid_resume_data()
        if which == "right" and (jid, prompt) not in self.hashes:
            # confirm what was previewed: another prompt of this job when this one has none,
            # else preview first (the app's flow), as a step of its own
            prompt = next((p for (j, p) in sorted(self.hashes) if j == jid), prompt)
            if (jid, prompt) not in self.hashes and not jmiss:
                h = preview_hash(jid, prompt, 0)
                if self._do("record_preview", job_id=jid, prompt_id=prompt,
                            preview_hash=h).status == OK:
                    self.hashes.setdefault((jid, prompt), []).append(h)
        tid, qid = self.ids.tailored(), self.ids.request()
        self.made["t"].append(tid)
        self._do("confirm_improvement", fault=fault, resume_id=rid, job_id=jid, prompt_id=prompt,
                 preview_hash=self._known_hash(jid, prompt, which), improved_data=improved,
                 improvements=df.improvements(), tailored_resume_id=tid, request_id=qid)
        return tid

    @rule(fault=FAULT, tid=tailored)
    def delete_tailored(self, fault: int | None, tid: str) -> None:
        self._do("delete_resume", fault=fault, resume_id=tid)

    @precondition(lambda self: self.search.mode == PLAIN)
    @rule(what=st.sampled_from(["get_resume", "list_resumes", "get_job", "get_improvement"]),
          i=st.integers(0, 63), miss=MISS)
    def read(self, what: str, i: int, miss: bool) -> None:
        """One read-only operation (reads have no fault points; one rule keeps the others likely)."""
        def pick(ids: list[str], missing: str) -> str:
            return missing if miss or not ids else ids[i % len(ids)]

        if what == "get_resume":
            self._do("get_resume", resume_id=pick(self.made["r"] + self.made["t"], MISSING_RESUME))
        elif what == "list_resumes":
            self._do("list_resumes")
        elif what == "get_job":
            self._do("get_job", job_id=pick(self.made["j"], MISSING_JOB))
        else:
            self._do("get_improvement_by_tailored_resume",
                     tailored_resume_id=pick(self.made["t"], MISSING_TAILORED))


def machine_for(search: Search) -> type[FamilyMachine]:
    """A subclass of the adapter's family machine bound to one search."""
    base = family_of(search.ctx.adapter_cls).load("machine")
    return type(base.__name__, (base,), {"search": search})
