"""The run results and ``results.json`` (schema 1, DESIGN section 7).

Scenarios return :class:`ScenarioResult`s holding :class:`ViolationRecord`s; the runner groups
them per adapter into a :class:`RunResult` and writes it. A violation is *claimed* when its
guarantee is one the adapter claims (or ``contract``, which every adapter owes): claimed
violations fail the run; the others are expected findings.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.redact import redact
from harness.store import ATOMIC, CONTRACT, CRASH_SAFE, DURABLE, PROCESS_SAFE, THREAD_SAFE

SCHEMA_VERSION = 1

PASSED, VIOLATED, FINDINGS, ERROR, SKIPPED = "passed", "violated", "findings", "error", "skipped"


@dataclass
class ViolationRecord:
    invariant: str
    guarantee: str
    message: str
    id: str = ""
    faults: list[dict[str, Any]] = field(default_factory=list)
    reproduction: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    claimed: bool = True
    context: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ScenarioResult:
    name: str
    kind: str
    status: str = PASSED
    steps: int = 0
    duration_s: float = 0.0
    violations: list[ViolationRecord] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def finalize(self, claimed: frozenset[str]) -> None:
        """Mark each violation claimed or expected, then derive ``status``."""
        for v in self.violations:
            v.claimed = v.guarantee == CONTRACT or v.guarantee in claimed
        if self.status in (ERROR, SKIPPED):
            return
        if any(v.claimed for v in self.violations):
            self.status = VIOLATED
        elif self.violations:
            self.status = FINDINGS
        else:
            self.status = PASSED

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["violations"] = [v.to_dict() for v in self.violations]
        return d


@dataclass
class AdapterResult:
    name: str
    guarantees: list[str]
    scenarios: list[ScenarioResult] = field(default_factory=list)
    location: str = ""
    family: str = "resumes"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.family, "guarantees": self.guarantees,
                "location": self.location,
                "scenarios": [s.to_dict() for s in self.scenarios]}


@dataclass
class RunResult:
    run_id: str
    seed: int
    started: str
    finished: str = ""
    adapters: list[AdapterResult] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def violations(self) -> list[tuple[AdapterResult, ScenarioResult, ViolationRecord]]:
        return [(a, s, v) for a in self.adapters for s in a.scenarios for v in s.violations]

    def failed(self) -> bool:
        """True when a claimed guarantee was violated or a scenario errored."""
        return any(s.status in (VIOLATED, ERROR) for a in self.adapters for s in a.scenarios)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA_VERSION, "run_id": self.run_id, "seed": self.seed,
                "started": self.started, "finished": self.finished, "meta": self.meta,
                "adapters": [a.to_dict() for a in self.adapters]}


def attribute_guarantee(*, fault_actions: set[str] | frozenset[str] = frozenset(),
                        concurrency: str = "none", reopened: bool = False,
                        invariant: str = "") -> str:
    """The guarantee a violation breaks, from the conditions it was found under.

    Crashes and torn writes -> crash-safe; injected errors -> atomic; several processes ->
    process-safe; several threads -> thread-safe; a lost write after re-open -> durable;
    otherwise the plain contract.
    """
    if fault_actions & {"crash", "torn-write"}:
        return CRASH_SAFE
    if "error" in fault_actions:
        return ATOMIC
    if concurrency == "processes":
        return PROCESS_SAFE
    if concurrency == "threads":
        return THREAD_SAFE
    if reopened and invariant == "acked-writes-durable":
        return DURABLE
    return CONTRACT


def _scenario_from_dict(d: dict[str, Any]) -> ScenarioResult:
    viols = [ViolationRecord(**v) for v in d.get("violations", [])]
    return ScenarioResult(name=d["name"], kind=d["kind"], status=d.get("status", PASSED),
                          steps=d.get("steps", 0), duration_s=d.get("duration_s", 0.0),
                          violations=viols, details=d.get("details", {}), error=d.get("error"))


def from_dict(d: dict[str, Any]) -> RunResult:
    if d.get("schema") != SCHEMA_VERSION:
        raise ValueError(f"results.json schema {d.get('schema')!r} is not {SCHEMA_VERSION}")
    adapters = [AdapterResult(name=a["name"], guarantees=list(a.get("guarantees", [])),
                              location=a.get("location", ""), family=a.get("family", "resumes"),
                              scenarios=[_scenario_from_dict(s) for s in a.get("scenarios", [])])
                for a in d.get("adapters", [])]
    return RunResult(run_id=d["run_id"], seed=d["seed"], started=d["started"],
                     finished=d.get("finished", ""), adapters=adapters, meta=d.get("meta", {}))


def load(path: str | os.PathLike[str]) -> RunResult:
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read results from {p}: {exc}") from exc
    return from_dict(data)


def write_atomic(out_dir: str | os.PathLike[str], name: str, text: str) -> Path:
    """Write ``out_dir/name`` via a temp file and a rename: readers never see half a file."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem, dot, suffix = name.rpartition(".")
    fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{stem}.", suffix=f"{dot}{suffix}")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    target = out / name
    os.replace(tmp, target)
    return target


def write(result: RunResult, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``results.json`` atomically, secrets redacted."""
    text = redact(json.dumps(result.to_dict(), indent=2, ensure_ascii=False, sort_keys=False,
                             default=str))
    return write_atomic(out_dir, "results.json", text)
