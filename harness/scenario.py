"""The scenario interface: what the runner hands a workload and what it gets back.

A scenario (stateful, crash, races, load, or a user's own) is an object with ``name``, ``kind``
and ``run(ctx) -> ScenarioResult``. It opens adapters only through ``ctx`` so that every store
lives in a fresh location the runner cleans up, and reports progress through ``ctx.progress``.
"""

from __future__ import annotations

import importlib
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.contract import StorageAdapter
from harness.errors import ConfigError
from harness.faults import FaultController
from harness.results import ScenarioResult


@dataclass
class ScenarioContext:
    adapter_cls: type[StorageAdapter]
    adapter_name: str
    seed: int
    workdir: Path
    #: Seconds this scenario may take on this adapter (None: the scenario's own default).
    budget_s: float | None = None
    #: Root for fresh locations: a directory (file stores) or the DSN (server stores).
    location_root: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    progress: Callable[[int, int | None, str], None] = lambda done, total, note="": None
    _counter: itertools.count = field(default_factory=itertools.count, repr=False)
    _made: list[str] = field(default_factory=list, repr=False)

    @property
    def guarantees(self) -> frozenset[str]:
        return frozenset(self.adapter_cls.guarantees)

    def new_location(self, label: str = "store") -> str:
        """A fresh, empty location; dropped by :meth:`cleanup`."""
        unique = uuid.uuid4().hex[:8]  # concurrent runs on one server must never share a schema
        tag = f"h{self.seed}_{unique}_{next(self._counter)}_{label}".replace("-", "_")[:48]
        loc = self.adapter_cls.fresh_location(self.location_root, tag)
        self._made.append(loc)
        return loc

    def open(self, location: str, faults: FaultController | None = None) -> StorageAdapter:
        return self.adapter_cls(location, faults)

    def cleanup(self) -> None:
        for loc in self._made:
            try:
                self.adapter_cls.drop_location(loc)
            except Exception:  # noqa: BLE001 - best effort
                pass
        self._made.clear()


class Scenario(Protocol):
    name: str
    kind: str

    def run(self, ctx: ScenarioContext) -> ScenarioResult: ...


#: Built-in scenarios, in run order.
BUILTIN_SCENARIOS: dict[str, str] = {
    "stateful": "scenarios.stateful:StatefulScenario",
    "crash": "scenarios.crash:CrashScenario",
    "races": "scenarios.races:RaceScenario",
    "load": "scenarios.load:LoadScenario",
}


def resolve_scenario(name: str) -> Scenario:
    spec = BUILTIN_SCENARIOS.get(name, name if ":" in name else None)
    if spec is None:
        known = ", ".join([*BUILTIN_SCENARIOS, "all"])
        raise ConfigError(f"unknown scenario {name!r}; known: {known}")
    module_name, _, attr = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"scenario {name!r} is not available: {exc}") from exc
    return cls()
