"""Render a crash cell as a short, standalone pytest test that replays it and asserts the finding."""

from __future__ import annotations

import pprint
from collections.abc import Sequence
from typing import Any

from harness.store import Store

_TEMPLATE = '''"""Reproduction: {adapter} — {case} crashed at {point} ({action}) breaks {invariant}."""

import os
import uuid

import pytest

from harness.client import RecordingClient
from harness.faults import FaultController, FaultRule, parse_rule
from harness.forked import run_in_child
from harness.history import History
from harness.families import check_all_for
from harness.registry import resolve

ADAPTER = {spec!r}
SETUP = {setup}
OPERATION = {op!r}
ARGS = {args}
RULE = FaultRule(point={point_pattern!r}, action={action!r}, after={after!r})
#: The case's environment: fault rules armed for the setup and the crashed run besides RULE.
ENVIRONMENT = {rules}


def test_{func}(tmp_path):
    cls = resolve(ADAPTER)
    if cls.location_kind == "server":
        root = os.environ.get("HARNESS_TEST_DSN")
        if not root:
            pytest.skip("set HARNESS_TEST_DSN to a test database DSN")
    else:
        root = str(tmp_path)
    location = cls.fresh_location(root, "repro_" + uuid.uuid4().hex[:10])
    try:
        history = History()
        adapter = cls(location, FaultController([parse_rule(r) for r in ENVIRONMENT]))
        client = RecordingClient(adapter, history, process="setup")
        for op, args in SETUP:
            assert client.call(op, **args).status == "ok", (op, history.to_list()[-1])
        adapter.close()
        outcome = run_in_child(cls, location, OPERATION, ARGS,
                               [*(parse_rule(r) for r in ENVIRONMENT), RULE], history=history)
        assert outcome.crashed, outcome.record
        snapshot, error = None, None
        try:
            reopened = cls(location)
            try:
                snapshot = reopened.snapshot()
            finally:
                reopened.close()
        except Exception as exc:  # the store does not open or read: store-readable
            error = f"{{type(exc).__name__}}: {{exc}}"
        findings = check_all_for(cls)(snapshot, history, snapshot_error=error)
        assert {invariant!r} in {{f.invariant for f in findings}}, findings
    finally:
        cls.drop_location(location)
'''


def adapter_spec(cls: type[Store], name: str) -> str:
    """A spec ``harness.registry.resolve`` accepts for ``cls``: its registered name when that
    resolves to this very class, else ``module:Class``."""
    try:
        from harness.registry import available

        if name in available():
            from harness.registry import resolve

            if resolve(name) is cls:
                return name
    except Exception:  # noqa: BLE001 - fall back to the import path
        pass
    return f"{cls.__module__}:{cls.__qualname__}"


def _literal(value: Any) -> str:
    return pprint.pformat(value, width=100, sort_dicts=False)


def render(*, spec: str, adapter: str, case: str, op: str, args: dict[str, Any],
           setup: list[tuple[str, dict[str, Any]]], point: str, point_pattern: str, after: int,
           action: str, invariant: str, rules: Sequence[str] = ()) -> str:
    func = "".join(c if c.isalnum() else "_" for c in f"{case}_{point}_{action}_{invariant}")
    return _TEMPLATE.format(adapter=adapter, case=case, point=point, action=action,
                            invariant=invariant, spec=spec, setup=_literal(setup), op=op,
                            args=_literal(args), point_pattern=point_pattern, after=after,
                            rules=_literal(list(rules)),
                            func=func.lower().strip("_"))
