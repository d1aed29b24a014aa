"""``StatefulScenario``: Hypothesis searches over the resume contract, one finding per search.

The run is split into three modes, each with its share of the budget:

- ``plain``: contract operations only (no faults): violations of the plain contract;
- ``error``: write rules may inject an ``error`` into their own operation; a finding counts only
  when it appears at the step whose operation got the fault and the same program without its
  faults does not break the invariant (so it is the fault's doing): the ``atomic`` guarantee;
- ``crash``: the same with a crash (the operation dies in a forked child, the store is
  re-opened): the ``crash-safe`` guarantee.

Within a mode, a search fails on any invariant not yet found in that mode, locks onto the first
one it sees, and Hypothesis shrinks the step list for that invariant (a bounded number of runs),
then :func:`minimize` deletes steps by exact replay. Other invariants the search saw on the way are
minimized from their first program too. The search is then repeated without the invariants found
until a search finds nothing or the mode's budget is spent. Each finding becomes one
:class:`ViolationRecord` whose reproduction is the shrunk step list as a runnable pytest file.
Searches are seeded from ``ctx.seed`` (no example database unless ``options["stateful_db"]``
names a directory), so the same seed gives the same findings and reproductions.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, Verbosity, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.errors import Unsatisfiable
from hypothesis.stateful import run_state_machine_as_test

from harness.families import family_of
from harness.results import ScenarioResult
from harness.scenario import ScenarioContext
from harness.violations import to_violation
from scenarios.stateful.machine import (
    MODES,
    BudgetSpent,
    InvariantBroken,
    Search,
    machine_for,
    minimize,
)
from scenarios.stateful.render import render_reproduction

try:  # the function behind run_state_machine_as_test; lets a seed be attached to the test
    from hypothesis.stateful import get_state_machine_test
except ImportError:  # pragma: no cover - older or newer Hypothesis
    get_state_machine_test = None

DEFAULT_BUDGET_S = 60.0
DEFAULT_MAX_EXAMPLES = 300
DEFAULT_STEP_COUNT = 15
DEFAULT_MAX_SHRINK_RUNS = 20
#: Share of the budget per mode (unused time rolls over to the next mode).
MODE_SHARE = {"plain": 0.4, "error": 0.3, "crash": 0.3}


def _search_seed(seed: int, mode: str, targets: frozenset[str]) -> int:
    text = f"{seed}|{mode}|{','.join(sorted(targets))}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _find_broken(exc: BaseException) -> InvariantBroken | None:
    if isinstance(exc, InvariantBroken):
        return exc
    for inner in getattr(exc, "exceptions", ()) or ():
        found = _find_broken(inner)
        if found is not None:
            return found
    for inner in (exc.__cause__, exc.__context__):
        if inner is not None and inner is not exc:
            found = _find_broken(inner)
            if found is not None:
                return found
    return None


def _is_budget_stop(exc: BaseException) -> bool:
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, BudgetSpent):
            return True
        stack += [x for x in (e.__cause__, e.__context__) if x is not None]
        stack += list(getattr(e, "exceptions", ()) or ())
    return False


class StatefulScenario:
    name = "stateful"
    kind = "stateful"

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        t0 = time.monotonic()
        opts = ctx.options
        budget = float(ctx.budget_s if ctx.budget_s is not None
                       else opts.get("stateful_budget_s", DEFAULT_BUDGET_S))
        max_examples = int(opts.get("stateful_max_examples", DEFAULT_MAX_EXAMPLES))
        step_count = int(opts.get("stateful_step_count", DEFAULT_STEP_COUNT))
        modes = [m for m in _names(opts.get("stateful_modes", MODES)) if m in MODES]
        own_ids = family_of(ctx.adapter_cls).invariant_ids()
        targets_all = frozenset(_names(opts.get("stateful_invariants", own_ids))) & set(own_ids)
        max_shrinks = int(opts.get("stateful_max_shrink_runs", DEFAULT_MAX_SHRINK_RUNS))
        max_replays = int(opts.get("stateful_max_replays", 80))
        shrink_budget = float(opts.get("stateful_shrink_budget_s", max(10.0, budget / 4)))
        db_dir = opts.get("stateful_db")
        database = DirectoryBasedExampleDatabase(str(db_dir)) if db_dir else None
        hyp_settings = settings(max_examples=max_examples, stateful_step_count=step_count,
                                deadline=None, database=database, derandomize=False,
                                report_multiple_bugs=False, verbosity=Verbosity.quiet,
                                suppress_health_check=list(HealthCheck), print_blob=False)

        result = ScenarioResult(name=self.name, kind=self.kind)
        time_to_first: dict[str, float] = {}
        step_counts: dict[str, dict[str, int]] = {}
        findings_meta: list[dict[str, Any]] = []
        searches: list[dict[str, Any]] = []
        #: Findings that did not replay or (under faults) broke without the fault too.
        discarded: list[dict[str, Any]] = []
        total_steps = 0
        end = t0 + budget
        share_left = sum(MODE_SHARE[m] for m in modes) or 1.0
        for mode in modes:
            left = max(0.0, end - time.monotonic())
            mode_deadline = time.monotonic() + left * MODE_SHARE[mode] / share_left
            share_left -= MODE_SHARE[mode]
            found: set[str] = set()
            while True:
                targets = targets_all - found
                if not targets:
                    break
                search = Search(ctx=ctx, mode=mode, targets=targets, deadline=mode_deadline,
                                max_shrink_runs=max_shrinks, shrink_budget_s=shrink_budget)
                broken = self._search(search, hyp_settings)
                total_steps += search.steps
                ctx.progress(len(searches) + 1, None, f"{mode}: {len(found)} found")
                searches.append({"mode": mode, "examples": search.examples, "steps": search.steps,
                                 "found": broken.finding.invariant if broken else None,
                                 "duration_s": round(time.monotonic() - search.started, 3)})
                if broken is None:
                    break
                found_now = [(broken, search.first_at)] + [
                    (other, search.seen_at.get(inv)) for inv, other in search.seen.items()
                    if inv != broken.finding.invariant and inv not in found]
                for candidate, first_at in found_now:
                    inv = candidate.finding.invariant
                    if inv in found:
                        continue
                    found.add(inv)
                    small = minimize(ctx, mode, candidate, max_replays=max_replays,
                                     deadline=time.monotonic() + shrink_budget)
                    if small is None:
                        discarded.append({"invariant": inv, "mode": mode})
                        continue
                    n = len(small.steps)
                    # seconds from the start of the scenario to the first step that broke it
                    ttf = round(search.started - t0 + (first_at or 0.0), 3)
                    time_to_first.setdefault(inv, ttf)
                    step_counts.setdefault(inv, {})[mode] = n
                    violation = to_violation(small.finding, small.history, concurrency="none",
                                             context={"mode": mode, "steps": n, "seed": ctx.seed,
                                                      "time_to_first_s": ttf,
                                                      "examples": search.examples})
                    violation.reproduction = render_reproduction(
                        adapter_cls=ctx.adapter_cls, invariant=inv, message=small.finding.message,
                        guarantee=violation.guarantee, mode=mode, seed=ctx.seed, steps=small.steps)
                    result.violations.append(violation)
                    findings_meta.append({"invariant": inv, "mode": mode, "steps": n,
                                          "guarantee": violation.guarantee,
                                          "time_to_first_s": ttf})
                if time.monotonic() >= mode_deadline:
                    break
        result.steps = total_steps
        result.duration_s = round(time.monotonic() - t0, 3)
        result.details = {"time_to_first": time_to_first, "steps": step_counts,
                          "findings": findings_meta, "searches": searches,
                          "discarded": discarded,
                          "modes": list(modes), "budget_s": budget, "max_examples": max_examples,
                          "stateful_step_count": step_count}
        return result

    def _search(self, search: Search, hyp_settings: settings) -> InvariantBroken | None:
        machine = machine_for(search)
        try:
            if get_state_machine_test is not None:
                test = get_state_machine_test(machine, settings=hyp_settings)
                hypothesis_seed(_search_seed(search.ctx.seed, search.mode, search.targets))(test)
                test()
            else:  # pragma: no cover
                run_state_machine_as_test(machine, settings=settings(hyp_settings, derandomize=True))
        except Unsatisfiable:
            return search.best
        except Exception as exc:  # noqa: BLE001 - Hypothesis re-raises the minimal failure
            broken = _find_broken(exc)
            if broken is not None:
                return broken
            if isinstance(exc, BudgetSpent) or _is_budget_stop(exc):
                return search.best  # stopped by BudgetSpent (Hypothesis may call that flaky)
            raise
        return search.best


def _names(value: str | Sequence[str]) -> list[str]:
    """A list option given in code (a sequence) or on the command line (``a,b``)."""
    return [v for v in value.split(",") if v] if isinstance(value, str) else list(value)
