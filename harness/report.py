"""``report.html``: one self-contained page per run (DESIGN section 7).

:func:`render` turns a :class:`RunResult` into ``report.html`` next to ``results.json``: run
metadata, the adapter x invariant matrix, every violation with its reproduction and a timeline
of the operations involved, the crash matrix, failing race schedules and load charts. The page
has inline CSS and inline SVG only: no scripts, no network, no external fonts or images.

All text comes from the run (resume content is user data): it is escaped by Jinja2's autoescape,
and every string is passed through :func:`harness.redact.redact` before rendering, so DSN
passwords never reach the page. Sections whose data is missing are omitted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from harness import timeline
from harness.errors import ConfigError
from harness.families import DEFAULT_FAMILY, family_invariant_ids
from harness.redact import redact
from harness.results import RunResult, load, write_atomic

TEMPLATE = "report.html.j2"
TEMPLATE_DIR = Path(__file__).with_name("templates")
#: Violations shown in full per (adapter, scenario); the rest are listed by id and message.
FULL_VIOLATIONS_PER_SCENARIO = 25
CRASH_ROWS_LIMIT = 400


def deep_redact(value: Any) -> Any:
    """``value`` with :func:`redact` applied to every string in it (keys included)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {deep_redact(str(k)): deep_redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [deep_redact(v) for v in value]
    return value


def anchor(violation_id: str) -> str:
    """An HTML id for a violation (safe characters only, stable across renders)."""
    return "v-" + re.sub(r"[^A-Za-z0-9_.-]", "_", str(violation_id))


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=1, default=str)


def _duration(started: str, finished: str) -> str:
    try:
        secs = (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
    except (TypeError, ValueError):
        return ""
    minutes, seconds = divmod(int(round(secs)), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{secs:.0f} s"


# ------------------------------------------------------------------------ view model builders

def _matrices(adapters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One adapter x invariant matrix per family, in the order families first appear."""
    by_family: dict[str, list[dict[str, Any]]] = {}
    for a in adapters:
        by_family.setdefault(str(a.get("family") or DEFAULT_FAMILY), []).append(a)
    out = []
    for family, members in by_family.items():
        columns, rows = _matrix(members, family_invariant_ids(family))
        out.append({"family": family, "columns": columns, "rows": rows})
    return out


def _matrix(adapters: list[dict[str, Any]],
            known: Sequence[str] = ()) -> tuple[list[str], list[dict[str, Any]]]:
    extra = sorted({v.get("invariant", "") for a in adapters for s in a.get("scenarios", [])
                    for v in s.get("violations", [])} - set(known) - {""})
    columns = [*known, *extra]
    rows = []
    for a in adapters:
        scenarios = a.get("scenarios", [])
        ran = any(s.get("status") not in ("error", "skipped") for s in scenarios)
        cells = []
        for inv in columns:
            found = [(s, v) for s in scenarios for v in s.get("violations", [])
                     if v.get("invariant") == inv]
            claimed = [v for _s, v in found if v.get("claimed", True)]
            if claimed:
                state, label = "violated", f"violated ({len(claimed)})"
                if len(found) > len(claimed):
                    label += f" + {len(found) - len(claimed)} expected"
            elif found:
                state, label = "expected", f"expected ({len(found)})"
            elif ran:
                state, label = "pass", "pass"
            else:
                state, label = "none", "not run"
            links = [{"href": "#" + anchor(v.get("id", "")), "id": v.get("id", ""),
                      "claimed": v.get("claimed", True),
                      "title": f"{s.get('name', '')}: {v.get('message', '')}"} for s, v in found]
            cells.append({"invariant": inv, "state": state, "label": label, "links": links})
        rows.append({"name": a.get("name", ""), "guarantees": a.get("guarantees", []),
                     "cells": cells})
    return columns, rows


def _violation_view(a: dict[str, Any], s: dict[str, Any], v: dict[str, Any],
                    full: bool) -> dict[str, Any]:
    history = [h for h in v.get("history") or [] if isinstance(h, Mapping)]
    faults = [f if isinstance(f, Mapping) else {"fault": f} for f in v.get("faults") or []]
    view = {"id": v.get("id", ""), "anchor": anchor(v.get("id", "")), "adapter": a.get("name", ""),
            "scenario": s.get("name", ""), "invariant": v.get("invariant", ""),
            "guarantee": v.get("guarantee", ""), "claimed": v.get("claimed", True),
            "message": v.get("message", ""), "ids": v.get("ids") or [], "full": full,
            "faults": faults, "context": {k: _as_text(val) for k, val in
                                          (v.get("context") or {}).items()},
            "reproduction": _as_text(v.get("reproduction") or ""), "history_count": len(history)}
    if full:
        view["timeline"] = Markup(timeline.timeline_svg(history)) if history else ""
        view["ops"] = [{"index": h.get("index", ""), "process": h.get("process", ""),
                        "op": h.get("op", ""), "status": h.get("status", ""),
                        "start": h.get("start"), "end": h.get("end"),
                        "args": timeline._short(h.get("args"), 300),
                        "error": h.get("error") or "", "faults": len(h.get("faults") or [])}
                       for h in history]
    return view


def _violations(adapters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for a in adapters:
        for s in a.get("scenarios", []):
            viols = s.get("violations", [])
            # claimed ones first, so the limit never hides a failure
            ordered = sorted(viols, key=lambda v: not v.get("claimed", True))
            for n, v in enumerate(ordered):
                out.append(_violation_view(a, s, v, full=n < FULL_VIOLATIONS_PER_SCENARIO
                                           or v.get("claimed", True)))
    return out


def _scenario_rows(adapters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for a in adapters:
        for s in a.get("scenarios", []):
            viols = s.get("violations", [])
            claimed = sum(1 for v in viols if v.get("claimed", True))
            rows.append({"adapter": a.get("name", ""), "name": s.get("name", ""),
                         "kind": s.get("kind", ""), "status": s.get("status", ""),
                         "steps": s.get("steps", 0), "duration_s": s.get("duration_s", 0),
                         "claimed": claimed, "expected": len(viols) - claimed,
                         "error": s.get("error") or "",
                         "reason": str((s.get("details") or {}).get("reason") or "")})
    return rows


def _crash(adapters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for a in adapters:
        for s in a.get("scenarios", []):
            details = s.get("details") or {}
            rows = details.get("crash_matrix")
            if not isinstance(rows, list):
                continue
            rows = [r for r in rows if isinstance(r, Mapping)]
            view = [{"operation": r.get("case") or r.get("operation", ""), "point": r.get("point", ""),
                     "action": r.get("action", ""), "outcome": r.get("outcome", ""),
                     "broken": [str(b) for b in r.get("broken") or []],
                     "messages": [str(m) for m in r.get("messages") or []]} for r in rows]
            out.append({"adapter": a.get("name", ""), "scenario": s.get("name", ""),
                        "rows": view[:CRASH_ROWS_LIMIT], "omitted": max(len(view) - CRASH_ROWS_LIMIT, 0),
                        "broken": sum(1 for r in view if r["broken"]),
                        "truncated": bool(details.get("truncated")), "points": details.get("points")})
    return out


def _races(adapters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for a in adapters:
        for s in a.get("scenarios", []):
            details = s.get("details") or {}
            schedules = details.get("schedules")
            counts = details.get("counts")
            if not isinstance(schedules, list) and not isinstance(counts, Mapping):
                continue
            rows = [{"pair": r.get("pair", ""), "schedule": r.get("schedule", ""),
                     "result": r.get("result", ""),
                     "invariants": [str(i) for i in r.get("invariants") or []],
                     "messages": [str(m) for m in r.get("messages") or []],
                     "reproduction": _as_text(r.get("reproduction") or "")}
                    for r in schedules or [] if isinstance(r, Mapping)
                    and r.get("result", "violation") != "ok"]
            count_rows = [{"pair": p, **{k: c.get(k, "") for k in
                                         ("schedules", "ok", "violation", "deadlock", "error",
                                          "exhausted", "max_preemptions")}}
                          for p, c in (counts or {}).items() if isinstance(c, Mapping)]
            out.append({"adapter": a.get("name", ""), "scenario": s.get("name", ""),
                        "rows": rows, "counts": count_rows})
    return out


def _latency(op: Mapping[str, Any], key: str) -> float:
    for k in (f"{key}_ms", key):
        if op.get(k) is not None:
            return timeline._num(op.get(k))
    return 0.0


def _load_modes(stats: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """``{mode: {operation: stats}}`` from either ``{mode: {"operations": {...}}}`` or a flat
    ``{operation: stats}``."""
    modes: dict[str, Mapping[str, Any]] = {}
    flat: dict[str, Any] = {}
    for key, value in stats.items():
        if not isinstance(value, Mapping):
            continue
        if isinstance(value.get("operations"), Mapping):
            modes[str(key)] = value["operations"]
        elif any(k in value for k in ("requests", "rps", "p50", "p50_ms")):
            flat[str(key)] = value
    if flat:
        modes[""] = flat
    return modes


def _load(adapters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for a in adapters:
        for s in a.get("scenarios", []):
            details = s.get("details") or {}
            stats = details.get("stats")
            overhead = details.get("overhead")
            if not isinstance(stats, Mapping) and not isinstance(overhead, Mapping):
                continue
            charts = []
            for mode, ops in _load_modes(stats or {}).items():
                items = sorted((str(k), v) for k, v in ops.items() if isinstance(v, Mapping))
                if not items:
                    continue
                table = [{"op": name, "requests": st.get("requests", ""),
                          "failures": st.get("failures", ""), "rps": st.get("rps", ""),
                          "p50": _latency(st, "p50"), "p95": _latency(st, "p95"),
                          "p99": _latency(st, "p99")} for name, st in items]
                lat = timeline.bar_chart_svg(
                    [(r["op"], (r["p50"], r["p95"], r["p99"])) for r in table],
                    ("p50", "p95", "p99"), unit="ms", title="latency (ms)")
                rps = timeline.bar_chart_svg(
                    [(r["op"], (timeline._num(r["rps"]),)) for r in table], ("requests/s",),
                    unit="/s", title="throughput (requests/s)")
                charts.append({"mode": mode, "table": table, "latency": Markup(lat),
                               "throughput": Markup(rps)})
            modes = details.get("modes") if isinstance(details.get("modes"), Mapping) else {}
            mode_rows = [{"mode": m, **{k: info.get(k, "") for k in
                                        ("processes", "users_per_process", "duration_s",
                                         "operations", "ops_s")}}
                         for m, info in modes.items() if isinstance(info, Mapping)]
            out.append({"adapter": a.get("name", ""), "scenario": s.get("name", ""),
                        "charts": charts, "modes": mode_rows,
                        "overhead": {str(k): _as_text(v) for k, v in (overhead or {}).items()}})
    return out


def build_context(run: RunResult) -> dict[str, Any]:
    """Everything the template shows, redacted, as plain data (Markup only for built SVG)."""
    data = deep_redact(run.to_dict())
    adapters = [a for a in data.get("adapters", []) if isinstance(a, Mapping)]
    meta = data.get("meta") or {}
    matrices = _matrices(adapters)
    violations = _violations(adapters)
    claimed = sum(1 for v in violations if v["claimed"])
    return {
        "run_id": data.get("run_id", ""), "seed": data.get("seed", ""),
        "started": data.get("started", ""), "finished": data.get("finished", ""),
        "duration": _duration(data.get("started", ""), data.get("finished", "")),
        "schema": data.get("schema", ""),
        "versions": meta.get("versions") or {},
        "meta": {k: _as_text(v) for k, v in meta.items() if k not in ("versions",)
                 and v not in (None, "", [], {})},
        "adapters": [{"name": a.get("name", ""), "guarantees": a.get("guarantees", []),
                      "location": a.get("location", "")} for a in adapters],
        "matrices": matrices, "scenarios": _scenario_rows(adapters),
        "violations": violations, "claimed": claimed, "expected": len(violations) - claimed,
        "failed": run.failed(), "crash": _crash(adapters), "races": _races(adapters),
        "load": _load(adapters), "legend": list(timeline.legend_items()),
    }


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATE_DIR)), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = lambda v, spec=".3g": format(v, spec) if isinstance(v, int | float) \
        and not isinstance(v, bool) else v
    return env


def render_html(run: RunResult) -> str:
    html = _environment().get_template(TEMPLATE).render(**build_context(run))
    return redact(html)


def render(run: RunResult, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``out_dir/report.html`` (atomically) and return its path."""
    return write_atomic(out_dir, "report.html", render_html(run))


def main(args: argparse.Namespace) -> int:
    """``harness report DIR``: re-render DIR/report.html from DIR/results.json."""
    directory = Path(args.dir)
    try:
        run = load(directory)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{directory}: results.json is malformed ({exc!r})") from exc
    out = directory if directory.is_dir() else directory.parent
    print(render(run, out))
    return 0
