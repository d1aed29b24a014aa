"""report.html: content, escaping, redaction, self-containment, and a headless Chromium check."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from harness import report, timeline
from harness.errors import ConfigError
from harness.invariants import INVARIANT_IDS
from harness.results import AdapterResult, RunResult, ScenarioResult, ViolationRecord, write

CHROMIUM = "/usr/bin/chromium"
SECRET = "s3cr3t-pw"
XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = '"><img src=x onerror=alert(1)>'
NASTY = f"{XSS_SCRIPT} {XSS_IMG}"


# ------------------------------------------------------------------------------- builders

def op(index, process, name, start, end, status="ok", args=None, faults=None, error=None):
    return {"index": index, "process": process, "op": name, "args": args or {}, "start": start,
            "end": end, "status": status, "result": None, "error": error,
            "error_type": None, "faults": faults or []}


def hand_run(*, nasty: bool = False) -> RunResult:
    text = NASTY if nasty else "resume.md"
    history = [
        op(0, "race-0", "upload_resume", 0.0, 0.004, args={"filename": f"cv {text}.md",
                                                           "content": f"# Name\n{text}"}),
        op(1, "race-1", "set_master", 0.001, 0.006, status="info", error=f"StorageError: {text}",
           faults=[{"point": "set_master.write#1", "action": "crash", "process": "race-1"}]),
        op(2, "race-1", "get_resume", 0.007, None, status="pending", args={"resume_id": "r-1"}),
        op(3, "race-0", "delete_resume", 0.005, 0.008, status="fail", args={"resume_id": text}),
    ]
    claimed = ViolationRecord(invariant="one-master", guarantee="contract",
                              message=f"two masters: r-1, r-2 {text if nasty else ''}",
                              id="legacy.stateful.1", history=history,
                              faults=[{"point": "set_master.write#1", "action": "crash"}],
                              reproduction=f"def test_x():\n    name = {text!r}\n",
                              ids=["r-1", "r-2"], claimed=True, context={"mode": "plain"})
    expected = ViolationRecord(invariant="acked-writes-durable", guarantee="thread-safe",
                               message="resume r-2 is gone", id="legacy.races.1",
                               history=history[:2], claimed=False,
                               reproduction="python -m harness run --scenario races",
                               context={"pair": "upload-upload", "schedule": "0110"})
    legacy = AdapterResult(name="legacy", guarantees=[], location="files", scenarios=[
        ScenarioResult(name="stateful", kind="stateful", status="violated", steps=10,
                       duration_s=1.5, violations=[claimed]),
        ScenarioResult(name="races", kind="races", status="findings", steps=4, duration_s=2.0,
                       violations=[expected], details={
                           "counts": {"upload-upload": {"schedules": 4, "ok": 3, "violation": 1,
                                                        "deadlock": 0, "error": 0,
                                                        "exhausted": True}},
                           "schedules": [{"pair": "upload-upload", "schedule": "0110",
                                          "result": "violation",
                                          "invariants": ["acked-writes-durable"],
                                          "messages": [f"lost {text}"]}]}),
        ScenarioResult(name="crash", kind="crash", status="passed", steps=2, duration_s=1.0,
                       details={"crash_matrix": [
                           {"operation": "upload_resume", "point": "upload_resume.write#1",
                            "action": "torn-write", "broken": ["store-readable"],
                            "messages": [f"cannot read {text}"]},
                           {"operation": "set_master", "point": "set_master.write#1",
                            "action": "crash", "broken": [], "messages": []}]}),
        ScenarioResult(name="load", kind="load", status="passed", steps=100, duration_s=3.0,
                       details={"stats": {"threads": {"operations": {
                           "get_resume": {"requests": 50, "failures": 0, "rps": 25.0,
                                          "p50_ms": 1.0, "p95_ms": 4.0, "p99_ms": 9.0},
                           f"upload {text}": {"requests": 50, "failures": 1, "rps": 20.0,
                                              "p50_ms": 3.0, "p95_ms": 8.0, "p99_ms": 12.0}}},
                           "upload_resume": {"requests": 5, "failures": 0, "rps": 2.5, "p50": 1,
                                             "p95": 2, "p99": 3}},
                           "overhead": {"ratio": 1.2, "note": text}}),
    ])
    solid = AdapterResult(name="solid", guarantees=["atomic", "thread-safe"], location="files",
                          scenarios=[ScenarioResult(name="stateful", kind="stateful",
                                                    status="error", error="Traceback: boom")])
    return RunResult(run_id="20260101-000000-s0", seed=0, started="2026-01-01T00:00:00+00:00",
                     finished="2026-01-01T00:01:05+00:00", adapters=[legacy, solid],
                     meta={"versions": {"python": "3.11"}, "budget_s": 5.0,
                           "argv": ["run", "--dsn", f"postgresql://u:{SECRET}@db/test"]})


def with_password(dsn: str, password: str = SECRET) -> str:
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or "postgres"
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


class _Collector(HTMLParser):
    """Tags, attributes and the adapter rows of the matrix."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def parse(html: str) -> _Collector:
    c = _Collector()
    c.feed(html)
    return c


def assert_self_contained(html: str) -> None:
    tags = parse(html).tags
    names = {t for t, _ in tags}
    assert "script" not in names and "link" not in names and "iframe" not in names
    assert "img" not in names and "object" not in names and "embed" not in names
    for tag, attrs in tags:
        for key in ("src", "href", "srcset", "action", "data", "xlink:href"):
            if key not in attrs:
                continue
            value = attrs[key] or ""
            assert not re.match(r"\s*(https?:)?//", value, re.I), (tag, key, value)
            if key == "href":
                assert value.startswith("#"), (tag, value)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", html, re.I)
    assert "@import" not in html


def matrix_rows(html: str) -> int:
    """Adapter rows over every family's matrix."""
    tables = re.findall(r'<table class="matrix">(.*?)</table>', html, re.S)
    assert tables, "no matrix"
    return sum(len(re.findall(r'<tr class="adapter-row">', t)) for t in tables)


# ------------------------------------------------------------------------------ unit tests

def test_render_shows_every_section(tmp_path):
    run = hand_run()
    path = report.render(run, tmp_path)
    assert path == tmp_path / "report.html"
    html = path.read_text(encoding="utf-8")
    assert matrix_rows(html) == 2
    for inv in INVARIANT_IDS:
        assert f'<th class="inv">{inv}</th>' in html
    assert 'id="v-legacy.stateful.1"' in html and 'href="#v-legacy.stateful.1"' in html
    assert 'id="v-legacy.races.1"' in html and 'href="#v-legacy.races.1"' in html
    assert "violated claimed guarantee" in html and "expected finding" in html
    assert 'class="cell violated"' in html and 'class="cell expected"' in html
    assert 'class="cell pass"' in html and 'class="cell none"' in html  # solid only errored
    assert html.count('class="timeline"') == 2
    assert 'id="crash"' in html and "upload_resume.write#1" in html and 'class="broken"' in html
    assert 'id="races"' in html and "0110" in html
    assert 'id="load"' in html and html.count('class="chart"') == 4  # 2 modes x (latency, rps)
    assert "Traceback: boom" in html
    assert "1 min 5 s" in html and "20260101-000000-s0" in html
    assert '<pre class="repro">def test_x():' in html
    assert_self_contained(html)


def test_missing_details_omit_sections(tmp_path):
    run = hand_run()
    for a in run.adapters:
        for s in a.scenarios:
            s.details = {}
            s.violations = []
    html = report.render(run, tmp_path).read_text(encoding="utf-8")
    for section in ('id="crash"', 'id="races"', 'id="load"', 'id="violations"'):
        assert section not in html
    assert matrix_rows(html) == 2


def test_odd_details_do_not_break_rendering(tmp_path):
    run = hand_run()
    run.adapters[0].scenarios[1].details = {"schedules": "nope", "counts": {"p": 3}}
    run.adapters[0].scenarios[2].details = {"crash_matrix": [None, {"operation": 1}]}
    run.adapters[0].scenarios[3].details = {"stats": {"x": 1, "y": {"operations": []}},
                                            "overhead": {"ratio": None}}
    run.adapters[0].scenarios[0].violations[0].history = [{"op": "x"}, "junk"]
    run.adapters[0].scenarios[0].violations[0].faults = ["not-a-dict"]
    html = report.render(run, tmp_path).read_text(encoding="utf-8")
    assert matrix_rows(html) == 2


def test_xss_is_escaped(tmp_path):
    html = report.render(hand_run(nasty=True), tmp_path).read_text(encoding="utf-8")
    assert "<script>alert" not in html and "<script" not in html
    assert "<img src=x" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert_self_contained(html)
    tags = parse(html).tags
    assert not any(k.startswith("on") for _t, attrs in tags for k in attrs)


def test_timeline_svg_lanes_statuses_faults():
    run = hand_run(nasty=True)
    svg = timeline.timeline_svg(run.adapters[0].scenarios[0].violations[0].history)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count('class="lane"') == 2  # race-0, race-1
    for status in ("ok", "info", "pending", "fail"):
        assert f'class="op op-{status}"' in svg
    assert svg.count('class="fault"') == 1 and "crash at set_master.write#1" in svg
    assert "<script" not in svg and "<img" not in svg
    assert timeline.timeline_svg([]) == ""
    assert timeline.bar_chart_svg([], ("a",)) == ""


def test_report_redacts_dsn_passwords(tmp_path):
    run = hand_run()
    run.adapters[1].location = f"postgresql://postgres:{SECRET}@127.0.0.1:5432/test"
    run.adapters[0].scenarios[0].violations[0].message = f"password={SECRET} leaked"
    html = report.render(run, tmp_path).read_text(encoding="utf-8")
    assert SECRET not in html
    assert "postgres:***@127.0.0.1" in html


def test_report_main_rerenders(tmp_path, capsys):
    write(hand_run(), tmp_path)
    assert report.main(argparse.Namespace(dir=str(tmp_path))) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "report.html")
    assert (tmp_path / "report.html").stat().st_size > 1000


def test_report_main_bad_input_is_config_error(tmp_path):
    with pytest.raises(ConfigError):
        report.main(argparse.Namespace(dir=str(tmp_path / "missing")))
    (tmp_path / "results.json").write_text(json.dumps({"schema": 99}))
    with pytest.raises(ConfigError):
        report.main(argparse.Namespace(dir=str(tmp_path)))


def test_cli_report_exit_codes(tmp_path, capsys):
    from harness.cli import main

    assert main(["report", str(tmp_path)]) == 2
    assert "harness: error:" in capsys.readouterr().err
    write(hand_run(), tmp_path)
    assert main(["report", str(tmp_path)]) == 0


# ---------------------------------------------------------------- a real run, in Chromium

def _chromium_or_skip() -> str:
    if os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    reason = f"{CHROMIUM} not installed (apt-get install -y chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; .ci/run must install it")
    pytest.skip(reason)


def _chromium(browser: str, tmp: Path, *extra: str, url: str) -> subprocess.CompletedProcess:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0",
           "--window-size=1366,900", *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp)


@pytest.fixture(scope="module")
def real_gate_run(tmp_path_factory, pg_dsn):
    """``harness gate`` on all four adapters (races, one pair, short budget), the postgres DSN
    carrying a password: (out_dir, exit code, stdout, stderr, dsn)."""
    out = tmp_path_factory.mktemp("gate-run")
    dsn = with_password(pg_dsn)
    cmd = [sys.executable, "-m", "harness", "gate", "--no-progress", "--budget", "4",
           "--scenario", "races", "--option", "pair=preview-preview", "--dsn", dsn,
           "--out", str(out), "--junit", str(out / "junit.xml"),
           "--expect-violations", "tinydb-legacy"]
    for name in ("tinydb-legacy", "tinydb-locked", "sqlite", "postgres"):
        cmd += ["--adapter", name]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env,
                          cwd=Path(__file__).resolve().parents[1])
    return out, proc.returncode, proc.stdout, proc.stderr, dsn


@pytest.mark.slow
@pytest.mark.postgres
def test_real_run_redacts_password_everywhere(real_gate_run):
    out, code, stdout, stderr, dsn = real_gate_run
    password = urlsplit(dsn).password
    assert password and password in dsn
    assert code == 0, stdout + stderr
    for path in out.rglob("*"):
        if path.is_file():
            assert password not in path.read_text(encoding="utf-8", errors="replace"), path
    assert password not in stdout and password not in stderr
    results = json.loads((out / "results.json").read_text())
    pg = [a for a in results["adapters"] if a["name"] == "postgres"][0]
    assert "***" in pg["location"]


@pytest.mark.slow
@pytest.mark.postgres
def test_real_report_in_headless_chromium(real_gate_run, tmp_path):
    browser = _chromium_or_skip()
    out, code, stdout, stderr, _dsn = real_gate_run
    page = out / "report.html"
    html = page.read_text(encoding="utf-8")
    results = json.loads((out / "results.json").read_text())
    assert matrix_rows(html) == len(results["adapters"]) == 4
    assert_self_contained(html)
    # legacy's race findings are in the report with their timelines
    assert 'class="cell expected"' in html and 'class="timeline"' in html

    shot = tmp_path / "shot.png"
    proc = _chromium(browser, tmp_path, f"--screenshot={shot}", url=page.as_uri())
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert shot.exists() and shot.stat().st_size > 20_000, log[-3000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    console = [line for line in log.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    assert not re.search(r"net::ERR_|Failed to load resource", log), log[-3000:]

    dom = _chromium(browser, tmp_path, "--dump-dom", url=page.as_uri())
    assert dom.returncode == 0, dom.stderr[-3000:]
    assert "Adapter × invariant matrix" in dom.stdout
    assert matrix_rows(dom.stdout) == 4
    if os.environ.get("HARNESS_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["HARNESS_KEEP_SCREENSHOT"])


def test_missing_chromium_skips_locally_fails_under_ci(monkeypatch):
    monkeypatch.setattr(f"{__name__}.CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        _chromium_or_skip()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        _chromium_or_skip()


def test_config_error_with_password_dsn_is_redacted(tmp_path, capsys):
    from harness.cli import main

    dsn = f"postgresql://postgres:{SECRET}@127.0.0.1:1/test"
    code = main(["gate", "--adapter", "postgres", "--dsn", dsn, "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 2
    assert SECRET not in captured.out + captured.err
    assert not (tmp_path / "results.json").exists()


def test_one_matrix_per_family_and_scenario_reasons(tmp_path):
    """Adapters of another family get their own matrix with that family's invariants; a
    partial or skipped scenario shows why."""
    from harness.results import AdapterResult, ScenarioResult, ViolationRecord

    run = hand_run()
    run.adapters[0].scenarios[2].details["reason"] = "partial: the budget of 1s covered 3 of 9"
    other = AdapterResult(name="other-store", guarantees=[], family="elsewhere", scenarios=[
        ScenarioResult(name="races", kind="races", status="violated", violations=[
            ViolationRecord(invariant="made-up-invariant", guarantee="contract", message="boom",
                            id="other-store.races.1")]),
        ScenarioResult(name="load", kind="load", status="skipped",
                       details={"reason": "load has no workload for the elsewhere family"})])
    run.adapters.append(other)
    html = report.render(run, tmp_path).read_text(encoding="utf-8")
    tables = re.findall(r'<table class="matrix">(.*?)</table>', html, re.S)
    assert len(tables) == 2
    assert "made-up-invariant" in tables[1] and "made-up-invariant" not in tables[0]
    assert "one-master" in tables[0] and "one-master" not in tables[1]
    assert 'id="family-elsewhere"' in html and 'id="family-resumes"' in html
    assert "partial: the budget of 1s covered 3 of 9" in html
    assert "load has no workload for the elsewhere family" in html
    assert matrix_rows(html) == 3
