"""Families: one contract each (resumes, jobs, cv-archive, accounts), with its invariants, its
adapters and the workloads the generic scenarios run on it (DESIGN section 8).

A :class:`Family` is a plain description. The engine (runner, crash and race explorers, the
stateful driver, report, gate) is family-agnostic: it asks :func:`family_of` an adapter class
for the family's ``check_all``, its crash cases, race pairs and state machine. Workload parts are
named as ``"module:attribute"`` and imported on first use so that listing a family stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from harness.errors import ConfigError

if TYPE_CHECKING:
    from harness.history import OpRecord
    from harness.invariants import Finding, Invariant
    from harness.store import Store


class CheckAll(Protocol):
    def __call__(self, snapshot: Any, history: Iterable[OpRecord], *,
                 snapshot_error: str | None = None,
                 only: Iterable[str] | None = None) -> list[Finding]: ...


@dataclass(frozen=True)
class Family:
    """What the engine needs to know about one family.

    ``invariants`` and ``check_all`` are given as ``"module:attribute"`` specs too, like the
    workload parts: ``check_all(snapshot, history, *, snapshot_error=None, only=None)`` with no
    snapshot runs only ``store-readable``.
    """

    name: str
    description: str
    #: Built-in adapters, ``name -> "module:Class"``, in report order.
    adapters: Mapping[str, str]
    #: Those of ``adapters`` that need no server (the default run).
    embedded: tuple[str, ...]
    invariants: str          # -> tuple[harness.invariants.Invariant, ...]
    check_all: str           # -> CheckAll
    crash_cases: str         # -> (seed: int) -> list[scenarios.crash.plans.CrashCase]
    race_pairs: str          # -> tuple[scenarios.races.pairs.Pair, ...]
    machine: str             # -> a scenarios.stateful.machine.FamilyMachine subclass
    #: The scenarios that apply to this family, in run order.
    scenarios: tuple[str, ...] = ("stateful", "crash", "races")
    #: Per-family scenario defaults merged under the user's --option values.
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def load(self, part: str) -> Any:
        return _import(getattr(self, part))

    def invariant_list(self) -> tuple[Invariant, ...]:
        return self.load("invariants")

    def invariant_ids(self) -> tuple[str, ...]:
        return tuple(i.id for i in self.invariant_list())

    def check(self) -> CheckAll:
        return self.load("check_all")


@cache
def _import(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{spec!r} is not available: {exc}") from exc


#: The built-in families, in report order: ``name -> "module:FAMILY"``.
BUILTIN_FAMILIES: dict[str, str] = {
    "resumes": "harness.families.resumes:FAMILY",
    "jobs": "harness.families.jobs:FAMILY",
    "cv-archive": "harness.families.cv_archive:FAMILY",
    "accounts": "harness.families.accounts:FAMILY",
}
DEFAULT_FAMILY = "resumes"


def get(name: str) -> Family:
    spec = BUILTIN_FAMILIES.get(name)
    if spec is None:
        known = ", ".join([*BUILTIN_FAMILIES, "all"])
        raise ConfigError(f"unknown family {name!r}; known: {known}")
    return _import(spec)


def available() -> list[Family]:
    """Every built-in family that imports (a family under construction is left out)."""
    out = []
    for name in BUILTIN_FAMILIES:
        try:
            out.append(get(name))
        except ConfigError:
            continue
    return out


def expand(names: Sequence[str]) -> list[Family]:
    """``--family`` values (default: all) to families, in report order."""
    if not names or "all" in names:
        return available()
    return [get(n) for n in dict.fromkeys(names)]


def family_of(cls: type[Store] | Store) -> Family:
    """The family an adapter class (or instance) belongs to; ``resumes`` when it says none."""
    return get(getattr(cls, "family", "") or DEFAULT_FAMILY)


def family_invariant_ids(name: str) -> tuple[str, ...]:
    """The invariant ids of family ``name`` (none for a family this build does not know)."""
    try:
        return get(name).invariant_ids()
    except ConfigError:
        return ()


def check_all_for(cls: type[Store] | Store) -> Callable[..., list[Finding]]:
    return family_of(cls).check()
