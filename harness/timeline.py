"""Pure SVG builders for report.html: operation timelines and bar charts.

Every function takes plain data (dicts from ``results.json``) and returns SVG markup as a string
in which *all* text taken from the data is escaped. No I/O, no network, no scripts: the SVG is
inlined into the report and readable without JavaScript (tooltips are ``<title>`` elements).

The timeline follows Jepsen's / porcupine's layout: one lane per process, one bar per operation
from invocation to completion, coloured by status (ok / fail / info / pending), with fault
markers where faults were injected.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

STATUS_COLOURS = {"ok": "#2e7d32", "fail": "#c62828", "info": "#ef8f00", "pending": "#7e57c2"}
UNKNOWN_COLOUR = "#607d8b"
FAULT_COLOUR = "#b71c1c"
SERIES_COLOURS = ("#1565c0", "#ef8f00", "#c62828", "#2e7d32")

TOOLTIP_LIMIT = 400


def esc(value: Any) -> str:
    """Escape any value for use as SVG/HTML text or attribute content."""
    return escape(str(value), quote=True)


def _short(value: Any, limit: int = TOOLTIP_LIMIT) -> str:
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(value: Any, default: float = 0.0) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out if out == out else default  # NaN -> default


def _fmt_s(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def _op_tooltip(op: Mapping[str, Any]) -> str:
    start, end = op.get("start"), op.get("end")
    lines = [f"#{op.get('index', '?')} {op.get('process', '?')}: {op.get('op', '?')} "
             f"→ {op.get('status', '?')}"]
    if start is not None:
        span = f"{_num(start):.6f}"
        span += f" – {_num(end):.6f} ({_fmt_s(_num(end) - _num(start))})" if end is not None \
            else " – (never returned)"
        lines.append(f"time: {span}")
    if op.get("args"):
        lines.append(f"args: {_short(op.get('args'))}")
    if op.get("error"):
        lines.append(f"error: {_short(op.get('error'))}")
    elif op.get("result") is not None:
        lines.append(f"result: {_short(op.get('result'), 200)}")
    for f in op.get("faults") or []:
        lines.append(f"fault: {_fault_label(f)}")
    return "\n".join(lines)


def _fault_label(fault: Any) -> str:
    if isinstance(fault, Mapping):
        return f"{fault.get('action', '?')} at {fault.get('point', '?')}"
    return _short(fault, 120)


def timeline_svg(history: Sequence[Mapping[str, Any]], *, width: int = 960,
                 lane_height: int = 30, label_width: int = 110) -> str:
    """One lane per process, one bar per operation, coloured by status, fault markers on top."""
    ops = [op for op in history if isinstance(op, Mapping)]
    if not ops:
        return ""
    processes: list[str] = list(dict.fromkeys(str(op.get("process", "?")) for op in ops))
    starts = [_num(op.get("start")) for op in ops]
    ends = [_num(op["end"]) for op in ops if op.get("end") is not None]
    t0 = min(starts)
    t1 = max([*ends, *starts])
    span = t1 - t0
    pending_tail = span * 0.08 if span > 0 else 1.0
    t1 += pending_tail
    span = (t1 - t0) or 1.0
    top, axis_h = 8, 22
    plot_w = width - label_width - 10
    height = top + lane_height * len(processes) + axis_h

    def x(t: float) -> float:
        return label_width + (t - t0) / span * plot_w

    parts = [f'<svg class="timeline" role="img" '
             f'viewBox="0 0 {width} {height}" width="100%" '
             f'style="max-width:{width}px" preserveAspectRatio="xMinYMin meet">',
             f"<title>Timeline of {len(ops)} operations in {len(processes)} processes</title>"]
    for lane, proc in enumerate(processes):
        y = top + lane * lane_height
        fill = "#f5f7fa" if lane % 2 == 0 else "#ffffff"
        parts.append(f'<rect x="0" y="{y}" width="{width}" height="{lane_height}" fill="{fill}"/>')
        parts.append(f'<text x="4" y="{y + lane_height / 2 + 4:.1f}" class="lane">'
                     f"{esc(_short(proc, 16))}<title>{esc(proc)}</title></text>")
    # axis
    axis_y = top + lane_height * len(processes)
    parts.append(f'<line x1="{label_width}" y1="{axis_y}" x2="{width - 10}" y2="{axis_y}" '
                 f'stroke="#90a4ae"/>')
    for i in range(5):
        t = t0 + (t1 - t0 - pending_tail) * i / 4
        tx = x(t)
        parts.append(f'<line x1="{tx:.1f}" y1="{axis_y}" x2="{tx:.1f}" y2="{axis_y + 4}" '
                     f'stroke="#90a4ae"/>')
        anchor = "start" if i == 0 else ("end" if i == 4 else "middle")
        parts.append(f'<text x="{tx:.1f}" y="{axis_y + 15}" class="tick" text-anchor="{anchor}">'
                     f"{esc(_fmt_s(t - t0) if i else '0')}</text>")
    # bars
    for op in ops:
        lane = processes.index(str(op.get("process", "?")))
        y = top + lane * lane_height + 4
        h = lane_height - 8
        start = _num(op.get("start"))
        end = _num(op["end"]) if op.get("end") is not None else t1
        x0, x1 = x(start), max(x(end), x(start) + 3)
        status = str(op.get("status", ""))
        colour = STATUS_COLOURS.get(status, UNKNOWN_COLOUR)
        dash = ' stroke-dasharray="4 2"' if status == "pending" else ""
        tooltip = esc(_op_tooltip(op))
        parts.append(f'<g class="op op-{esc(status)}"><title>{tooltip}</title>'
                     f'<rect x="{x0:.1f}" y="{y}" width="{x1 - x0:.1f}" height="{h}" rx="3" '
                     f'fill="{colour}" fill-opacity="0.85" stroke="{colour}"{dash}/>')
        label = str(op.get("op", "?"))
        room = int((x1 - x0 - 6) / 6.2)
        if room >= 3:
            shown = label if len(label) <= room else label[: max(room - 1, 1)] + "…"
            parts.append(f'<text x="{x0 + 3:.1f}" y="{y + h / 2 + 4:.1f}" class="oplabel">'
                         f"{esc(shown)}</text>")
        parts.append("</g>")
        for k, fault in enumerate(op.get("faults") or []):
            fx = x1 - 2 - k * 9
            fy = y - 2
            parts.append(f'<g class="fault"><title>{esc("fault: " + _fault_label(fault))}</title>'
                         f'<path d="M{fx:.1f} {fy} l5 6 l-5 6 l-5 -6 z" fill="{FAULT_COLOUR}" '
                         f'stroke="#fff" stroke-width="1"/></g>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart_svg(rows: Sequence[tuple[str, Sequence[float]]], series: Sequence[str], *,
                  unit: str = "", title: str = "", width: int = 640,
                  label_width: int = 230) -> str:
    """A horizontal grouped bar chart: one group per row label, one bar per series."""
    rows = [(str(label), [_num(v) for v in values]) for label, values in rows]
    if not rows or not series:
        return ""
    bar_h, gap = 11, 8
    group_h = bar_h * len(series) + gap
    legend_h = 20
    top = legend_h + (18 if title else 4)
    height = top + group_h * len(rows) + 22
    vmax = max((v for _, values in rows for v in values), default=0.0) or 1.0
    plot_w = width - label_width - 70

    parts = [f'<svg class="chart" role="img" '
             f'viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px">']
    if title:
        parts.append(f'<text x="0" y="14" class="ctitle">{esc(title)}</text>')
    lx = label_width
    for i, name in enumerate(series):
        colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
        ly = top - 14
        parts.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{lx + 14}" y="{ly}" class="tick">{esc(name)}</text>')
        lx += 24 + 7 * len(str(name))
    for r, (label, values) in enumerate(rows):
        gy = top + r * group_h
        parts.append(f'<text x="{label_width - 6}" y="{gy + group_h / 2:.1f}" class="lane" '
                     f'text-anchor="end">{esc(_short(label, 34))}<title>{esc(label)}</title></text>')
        for i, value in enumerate(values[: len(series)]):
            colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
            w = max(value / vmax * plot_w, 0.5)
            by = gy + i * bar_h
            text = f"{value:.4g}{(' ' + unit) if unit else ''}"
            parts.append(f'<g><title>{esc(f"{label} {series[i]}: {text}")}</title>'
                         f'<rect x="{label_width}" y="{by}" width="{w:.1f}" height="{bar_h - 2}" '
                         f'fill="{colour}"/>'
                         f'<text x="{label_width + w + 4:.1f}" y="{by + bar_h - 3}" class="val">'
                         f"{esc(text)}</text></g>")
    axis_y = top + group_h * len(rows)
    parts.append(f'<line x1="{label_width}" y1="{top - 2}" x2="{label_width}" y2="{axis_y}" '
                 f'stroke="#90a4ae"/>')
    parts.append("</svg>")
    return "".join(parts)


def legend_items() -> Iterable[tuple[str, str]]:
    """(status, colour) pairs for the timeline legend."""
    return STATUS_COLOURS.items()
