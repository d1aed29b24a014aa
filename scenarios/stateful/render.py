"""Render a shrunk step list as a runnable pytest file that replays it and asserts the violation.

The file opens the adapter through :func:`harness.registry.resolve` on a location under
``tmp_path`` (server stores: ``$HARNESS_TEST_DSN``), replays the exact calls through a
:class:`RecordingClient` with the same fault rules (crash steps through ``run_in_child`` and a
re-open), then asserts that :func:`check_all` reports the invariant. It passes while the
violation reproduces and fails once the adapter is fixed.
"""

from __future__ import annotations

import re
from typing import Any

from harness.registry import available
from harness.store import Store

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
LONG_LIMIT = 2000


def adapter_spec(cls: type[Store]) -> str:
    """A name ``harness.registry.resolve`` maps back to ``cls``."""
    name = getattr(cls, "name", "")
    target = f"{cls.__module__}:{cls.__qualname__}"
    if name and available().get(name) == target:
        return name
    return target


def _value(name: str, value: Any, recipes: dict[str, str]) -> str:
    text = repr(value)
    if len(text) > LONG_LIMIT and name in recipes:
        return recipes[name]
    return text


def _call_args(args: dict[str, Any], recipes: dict[str, str]) -> str:
    return ", ".join(f"{k}={_value(k, v, recipes)}" for k, v in args.items())


def _dict_args(args: dict[str, Any], recipes: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k!r}: {_value(k, v, recipes)}" for k, v in args.items()) + "}"


def render_reproduction(*, adapter_cls: type[Store], invariant: str, message: str,
                        guarantee: str, mode: str, seed: int, steps: list[dict[str, Any]]) -> str:
    spec = adapter_spec(adapter_cls)
    server = getattr(adapter_cls, "location_kind", "file") == "server"
    uses_data = any(s.get("recipes") and any(len(repr(s["args"].get(k))) > LONG_LIMIT
                                             for k in s["recipes"]) for s in steps)
    uses_crash = any((s.get("fault") or {}).get("action") == "crash" for s in steps)
    uses_error = any((s.get("fault") or {}).get("action") not in (None, "crash") for s in steps)
    test_name = "test_reproduces_" + re.sub(r"\W+", "_", invariant).strip("_")
    one_line = " ".join(message.split())
    out: list[str] = [
        f'"""Minimal reproduction ({len(steps)} steps, shrunk by Hypothesis) found by the stateful',
        "scenario of the storage harness.",
        "",
        f"adapter:   {spec}",
        f"invariant: {invariant}",
        f"guarantee: {guarantee}",
        f"mode:      {mode} (seed {seed})",
        f"finding:   {one_line}",
        "",
        "Run it with `python -m pytest <this file>`: it passes while the violation reproduces.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
    ]
    if server:
        out.append("import os")
        out.append("")
    if uses_data:
        out.append("from harness.domain import DataFactory")
    out += ["from harness.client import RecordingClient"]
    if uses_error or uses_crash:
        out.append("from harness.faults import FaultController, FaultRule")
    else:
        out.append("from harness.faults import FaultController")
    if uses_crash:
        out.append("from harness.forked import run_in_child")
    out += ["from harness.history import History",
            "from harness.families import check_all_for",
            "from harness.registry import resolve",
            "",
            f"ADAPTER = {spec!r}",
            f"INVARIANT = {invariant!r}",
            ""]
    if uses_data:
        out += ["",
                "def data_for(seed):",
                "    factory = DataFactory(0)",
                "    factory.fake.seed_instance(seed)",
                "    factory.rng.seed(seed)",
                "    return factory",
                ""]
    root = f"os.environ.get('HARNESS_TEST_DSN', {DEFAULT_DSN!r})" if server else "str(tmp_path)"
    out += ["",
            f"def {test_name}(tmp_path):",
            "    cls = resolve(ADAPTER)",
            f"    location = cls.fresh_location({root}, 'repro_{re.sub(r'[^a-z0-9]+', '_', invariant)}')",
            "    history = History()",
            "    faults = FaultController()",
            "    adapter = cls(location, faults)",
            "    client = RecordingClient(adapter, history, process='machine')",
            "    try:"]
    n = 0
    body: list[str] = []
    for s in steps:
        n += 1
        op, args, recipes, fault = s["op"], s["args"], s.get("recipes") or {}, s.get("fault")
        if fault and fault["action"] == "crash":
            body += [f"        # step {n}: {op} in a child process that crashes at {fault['point']}",
                     "        adapter.close()",
                     f"        run_in_child(cls, location, {op!r}, {_dict_args(args, recipes)},",
                     f"                     [FaultRule(point={fault['point']!r}, action='crash')],",
                     f"                     seed={seed}, history=history, process='child')",
                     "        adapter = cls(location, faults)",
                     "        client = RecordingClient(adapter, history, process='machine')"]
        elif fault:
            action, count = fault.get("action", "error"), fault.get("count", 1)
            body += [f"        # step {n}: {op} with an injected {action} at {fault['point']}",
                     f"        faults.arm(FaultRule(point={fault['point']!r}, action={action!r}, "
                     f"count={count!r}))",
                     f"        client.call({op!r}{', ' if args else ''}{_call_args(args, recipes)})",
                     "        faults.clear()"]
        else:
            body += [f"        # step {n}",
                     f"        client.call({op!r}{', ' if args else ''}{_call_args(args, recipes)})"]
    out += body
    out += ["        try:",
            "            snapshot, error = adapter.snapshot(), None",
            "        except Exception as exc:  # an unreadable store is the store-readable finding",
            "            snapshot, error = None, f'{type(exc).__name__}: {exc}'",
            "    finally:",
            "        adapter.close()",
            "        cls.drop_location(location)",
            "    check_all = check_all_for(cls)",
            "    findings = check_all(snapshot, history.records, snapshot_error=error, only=[INVARIANT])",
            "    for finding in findings:",
            "        print(f'{finding.invariant}: {finding.message}')",
            "    assert findings, f'{INVARIANT} did not reproduce on {ADAPTER}'",
            ""]
    return "\n".join(out)
