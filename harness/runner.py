"""Runs scenarios against adapters and collects a :class:`RunResult` (``harness run``).

Adapters and scenarios are resolved first, so usage errors (unknown names, a missing or bad
DSN) surface as :class:`ConfigError` before any work starts. Every store lives in a fresh
location under a temporary directory (or a fresh schema for server stores) that is removed at
the end. Progress goes to stderr through rich.
"""

from __future__ import annotations

import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from harness import families as families_mod
from harness import results as results_mod
from harness.errors import ConfigError
from harness.families import family_of
from harness.redact import redact
from harness.registry import adapter_name, embedded, resolve
from harness.results import ERROR, SKIPPED, AdapterResult, RunResult, ScenarioResult
from harness.scenario import BUILTIN_SCENARIOS, Scenario, ScenarioContext, resolve_scenario
from harness.store import Store


@dataclass
class RunConfig:
    adapters: Sequence[str] = ()
    scenarios: Sequence[str] = ()
    families: Sequence[str] = ()
    seed: int = 0
    budget_s: float | None = None
    dsn: str | None = None
    out_dir: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    argv: Sequence[str] = ()


def expand_scenarios(names: Sequence[str]) -> list[str]:
    if not names or "all" in names:
        return list(BUILTIN_SCENARIOS)
    return list(dict.fromkeys(names))


def default_adapters(dsn: str | None, families: Sequence[str] = ()) -> list[str]:
    """Every embedded adapter of the selected families, plus their server ones with a DSN."""
    if not dsn:
        return list(embedded(families))
    return [name for fam in families_mod.expand(families) for name in fam.adapters]


def scenarios_for(cls: type[Store], requested: Sequence[str]) -> list[str]:
    """The scenarios to run on ``cls``: all of its family's (default) or the requested ones."""
    own = family_of(cls).scenarios
    if not requested or "all" in requested:
        return list(own)
    return list(dict.fromkeys(requested))


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("resume-storage-harness", "tinydb", "sqlalchemy", "psycopg", "hypothesis",
                "locust", "pydantic"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def resolve_adapters(names: Sequence[str], dsn: str | None,
                     families: Sequence[str] = ()) -> list[type[Store]]:
    wanted = {f.name for f in families_mod.expand(families)}
    classes = []
    for name in names:
        cls = resolve(name)
        fam = family_of(cls).name
        if fam not in wanted:
            raise ConfigError(f"adapter {name!r} belongs to family {fam!r}, which --family "
                              f"does not select")
        if getattr(cls, "location_kind", "file") == "server":
            if not dsn:
                raise ConfigError(f"adapter {name!r} needs a server: give --dsn URL")
            cls.validate_root(dsn)
        classes.append(cls)
    return classes


class _Progress:
    """A rich progress display, or nothing when disabled / not a terminal."""

    def __init__(self, enabled: bool) -> None:
        self._progress = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            console = Console(stderr=True)
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                      TextColumn("{task.completed}/{task.total}"),
                                      TimeElapsedColumn(), console=console, transient=False)

    def __enter__(self) -> _Progress:
        if self._progress is not None:
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def task(self, label: str):  # noqa: ANN201 - returns the ctx.progress callback
        if self._progress is None:
            return lambda done, total, note="": None
        task_id = self._progress.add_task(label, total=None)

        def update(done: int, total: int | None, note: str = "") -> None:
            desc = f"{label} {note}".rstrip()
            self._progress.update(task_id, completed=done, total=total, description=desc)

        return update


def run_scenario(scenario: Scenario, ctx: ScenarioContext) -> ScenarioResult:
    t0 = time.monotonic()
    try:
        result = scenario.run(ctx)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - a scenario failure is reported, not fatal
        result = ScenarioResult(name=scenario.name, kind=scenario.kind, status=ERROR,
                                error=redact("".join(traceback.format_exception(exc))[-4000:]))
    finally:
        ctx.cleanup()
    result.duration_s = round(result.duration_s or (time.monotonic() - t0), 3)
    result.finalize(ctx.guarantees)
    for n, v in enumerate(result.violations, 1):
        v.id = v.id or f"{ctx.adapter_name}.{result.name}.{n}"
    return result


def execute(cfg: RunConfig) -> tuple[RunResult, Path]:
    """Run every (adapter, scenario) pair; write results.json; return the result and out dir."""
    names = list(dict.fromkeys(cfg.adapters)) or default_adapters(cfg.dsn, cfg.families)
    classes = resolve_adapters(names, cfg.dsn, cfg.families)
    scenarios = {s: resolve_scenario(s) for c in classes for s in scenarios_for(c, cfg.scenarios)}
    started = datetime.now(UTC)
    run_id = f"{started:%Y%m%d-%H%M%S}-s{cfg.seed}"
    out_dir = Path(cfg.out_dir) if cfg.out_dir else Path("reports") / run_id
    run = RunResult(run_id=run_id, seed=cfg.seed, started=started.isoformat(timespec="seconds"),
                    meta={"versions": _versions(), "argv": [redact(a) for a in cfg.argv],
                          "budget_s": cfg.budget_s, "platform": platform.platform(),
                          "cpus": _cpu_count(), "options": cfg.options})
    workdir = Path(tempfile.mkdtemp(prefix="harness-stores-"))
    try:
        with _Progress(cfg.progress and sys.stderr.isatty()) as progress:
            for cls in classes:
                name = adapter_name(cls)
                family = family_of(cls)
                ares = AdapterResult(name=name, guarantees=sorted(cls.guarantees),
                                     location=redact(cfg.dsn or "") if cls.location_kind == "server"
                                     else "files", family=family.name)
                for scenario_name in scenarios_for(cls, cfg.scenarios):
                    scenario = scenarios[scenario_name]
                    if scenario_name in BUILTIN_SCENARIOS and scenario_name not in family.scenarios:
                        ares.scenarios.append(_not_applicable(scenario, family.name))
                        continue
                    root = cfg.dsn if cls.location_kind == "server" else str(workdir / name)
                    ctx = ScenarioContext(adapter_cls=cls, adapter_name=name, seed=cfg.seed,
                                          workdir=workdir / name / scenario.name,
                                          budget_s=cfg.budget_s, location_root=root or "",
                                          options={**family.defaults, **cfg.options},
                                          progress=progress.task(f"{name} · {scenario.name}"))
                    ctx.workdir.mkdir(parents=True, exist_ok=True)
                    ares.scenarios.append(run_scenario(scenario, ctx))
                run.adapters.append(ares)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    run.finished = datetime.now(UTC).isoformat(timespec="seconds")
    results_mod.write(run, out_dir)
    render_report(run, out_dir)
    return run, out_dir


def _not_applicable(scenario: Scenario, family: str) -> ScenarioResult:
    return ScenarioResult(name=scenario.name, kind=scenario.kind, status=SKIPPED,
                          details={"reason": f"{scenario.name} has no workload for the {family} "
                                             f"family"})


def render_report(run: RunResult, out_dir: Path) -> Path | None:
    try:
        from harness.report import render
    except ImportError:
        return None
    return render(run, out_dir)


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def summary_lines(run: RunResult) -> list[str]:
    """One line per adapter x scenario, then each claimed violation: for the terminal."""
    lines = []
    for a in run.adapters:
        for s in a.scenarios:
            claimed = sum(v.claimed for v in s.violations)
            expected = len(s.violations) - claimed
            lines.append(f"{a.name:<16} {s.name:<9} {s.status:<9} steps={s.steps:<6} "
                         f"{s.duration_s:>7.1f}s  violations={claimed} expected={expected}")
            if s.error:
                lines.append(f"    error: {s.error.strip().splitlines()[-1]}")
    for _a, _s, v in run.violations():
        if v.claimed:
            lines.append(f"  VIOLATION {v.id} [{v.invariant} / {v.guarantee}] {v.message}")
    return lines
