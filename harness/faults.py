"""Fault injection: named fault points, storage-boundary points, rules and actions (DESIGN 4).

Adapters call ``faults.point("set_master.after_unset_old")`` at every step boundary of a
multi-step operation. The harness also makes every storage write a point on its own
(``<operation>.write#k`` for TinyDB storage writes, ``<operation>.sql#k`` and
``<operation>.commit#k`` for SQLAlchemy statements and commits, see :mod:`harness.boundaries`),
so third-party adapters get faults without declaring any.

A :class:`FaultRule` matches point names (``fnmatch`` patterns) and fires one action:

- ``error``: raise :class:`InjectedFault` (a :class:`StorageError`: outcome unknown).
- ``crash``: the process dies at the point. In a forked child (``crash_exits=True``) this is
  ``os._exit``: no ``finally``, no ``__exit__``, no compensation runs. Elsewhere it raises
  :class:`SimulatedCrash`, a ``BaseException`` that is weaker (``finally`` blocks do run).
- ``torn-write``: at a storage write, only a prefix of the new bytes reaches the file (over
  the old contents, as an interrupted in-place rewrite leaves it), then crash.
  At a point that writes nothing it is a plain crash.
- ``delay``: sleep ``delay_s`` to widen a race window.
- ``pause``: block until the rule is released (a rendezvous for forcing interleavings).
- ``corrupt``: nothing is raised; :meth:`FaultController.point` returns True and the caller
  corrupts the bytes it is about to store or has just read (silent data corruption). At a point
  whose caller ignores the return value, and at storage-boundary points, it does nothing.

Every injection is recorded as an :class:`Injection` with its point, action, operation and step.
"""

from __future__ import annotations

import fnmatch
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.errors import StorageError

ERROR = "error"
CRASH = "crash"
TORN_WRITE = "torn-write"
DELAY = "delay"
PAUSE = "pause"
CORRUPT = "corrupt"
ACTIONS: tuple[str, ...] = (ERROR, CRASH, TORN_WRITE, DELAY, PAUSE, CORRUPT)

#: Exit status of a forked child that died at a fault point.
CRASH_EXIT_CODE = 86


class InjectedFault(StorageError):
    """An I/O failure injected by the harness at a fault point."""

    def __init__(self, point: str) -> None:
        self.point = point
        super().__init__(f"injected error at {point}")


class SimulatedCrash(BaseException):  # noqa: N818 - it is a crash, not an error
    """Raised for ``crash`` outside a forked child. Prefer forked children: see module doc."""

    def __init__(self, point: str) -> None:
        self.point = point
        super().__init__(f"simulated crash at {point}")


@dataclass
class FaultRule:
    """Fire ``action`` at points whose full name matches ``point`` (an fnmatch pattern).

    ``operation`` restricts the rule to one contract operation. ``after`` skips that many
    matches first; ``count`` caps how often it fires (None: unlimited); ``probability`` is drawn
    from the controller's seeded generator.
    """

    point: str
    action: str
    probability: float = 1.0
    count: int | None = 1
    after: int = 0
    operation: str | None = None
    delay_s: float = 0.05
    torn_fraction: float = 0.5
    pause_timeout_s: float = 5.0
    matched: int = field(default=0, compare=False)
    fired: int = field(default=0, compare=False)
    _gate: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown fault action {self.action!r}; expected one of {ACTIONS}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")

    def matches(self, point: str, operation: str | None) -> bool:
        if self.operation is not None and operation != self.operation:
            return False
        return fnmatch.fnmatchcase(point, self.point)

    def exhausted(self) -> bool:
        return self.count is not None and self.fired >= self.count

    def release(self) -> None:
        """Let threads paused by this rule continue."""
        self._gate.set()

    def describe(self) -> dict[str, Any]:
        return {"point": self.point, "action": self.action, "probability": self.probability,
                "count": self.count, "after": self.after, "operation": self.operation}


@dataclass(frozen=True)
class Injection:
    """One fault that was injected."""

    point: str
    action: str
    operation: str | None
    step: int | None
    process: str
    time: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _OpState(threading.local):
    def __init__(self) -> None:
        self.operation: str | None = None
        self.step: int | None = None
        self.process: str | None = None
        self.counters: dict[str, int] = {}
        self.controller: FaultController | None = None


_state = _OpState()


def current_controller() -> FaultController | None:
    """The controller of the operation running on this thread (used by boundary hooks)."""
    return _state.controller


def current_operation() -> str | None:
    return _state.operation


class FaultController:
    """Holds fault rules, fires them at points, and records every injection."""

    def __init__(self, rules: Iterable[FaultRule] = (), seed: int = 0, *,
                 crash_exits: bool = False, tracing: bool = False) -> None:
        self._rules: list[FaultRule] = list(rules)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.crash_exits = crash_exits
        self.tracing = tracing
        self.trace: list[str] = []
        self.injections: list[Injection] = []
        #: Called with the full point name at every point, before rules (race scheduler hook).
        self.on_point: Callable[[str], None] | None = None
        #: Called with each injection as it happens (a crashing child streams them out).
        self.on_injection: Callable[[Injection], None] | None = None
        self._t0 = time.monotonic()

    # -- rules
    @property
    def rules(self) -> list[FaultRule]:
        return list(self._rules)

    def arm(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            for rule in self._rules:
                rule.release()
            self._rules.clear()

    @property
    def active(self) -> bool:
        return bool(self._rules) or self.on_point is not None or self.tracing

    # -- operation scope (set by the recording client around each adapter call)
    @contextmanager
    def operation(self, name: str, step: int | None = None,
                  process: str | None = None) -> Iterator[None]:
        saved = (_state.operation, _state.step, _state.process, _state.counters,
                 _state.controller)
        _state.operation, _state.step, _state.process = name, step, process
        _state.counters, _state.controller = {}, self
        try:
            yield
        finally:
            (_state.operation, _state.step, _state.process, _state.counters,
             _state.controller) = saved

    # -- points
    def point(self, name: str) -> bool:
        """A named step boundary. Adapters call this; it may raise, sleep, block or kill.
        Returns True when a ``corrupt`` rule fired here (the caller corrupts its data)."""
        if not self.active:
            return False
        rule = self._fire(name)
        if rule is not None:
            self._perform(rule, name)
            return rule.action == CORRUPT
        return False

    def boundary(self, kind: str) -> tuple[FaultRule, str] | None:
        """A storage-boundary point: the k-th ``kind`` (write, sql, commit) of this operation.

        Returns a fired ``torn-write`` rule and the point name for the caller to tear its write;
        other actions are performed here. Writes made by an adapter's own compensation count
        too, so sweep "an error at every write" with one ``count=1`` rule per point.
        """
        if not self.active:
            return None
        k = _state.counters.get(kind, 0) + 1
        _state.counters[kind] = k
        name = f"{_state.operation or 'unscoped'}.{kind}#{k}"
        rule = self._fire(name)
        if rule is None:
            return None
        if rule.action == TORN_WRITE:
            return rule, name
        self._perform(rule, name)
        return None

    def _fire(self, name: str) -> FaultRule | None:
        if self.tracing:
            with self._lock:
                self.trace.append(name)
        if self.on_point is not None:
            self.on_point(name)
        op = _state.operation
        with self._lock:
            for rule in self._rules:
                if rule.exhausted() or not rule.matches(name, op):
                    continue
                rule.matched += 1
                if rule.matched <= rule.after:
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                self._record(name, rule.action)
                return rule
        return None

    def _record(self, name: str, action: str) -> None:
        inj = Injection(point=name, action=action, operation=_state.operation, step=_state.step,
                        process=_state.process or threading.current_thread().name,
                        time=round(time.monotonic() - self._t0, 6))
        self.injections.append(inj)
        if self.on_injection is not None:
            self.on_injection(inj)

    def _perform(self, rule: FaultRule, name: str) -> None:
        action = rule.action
        if action == ERROR:
            raise InjectedFault(name)
        if action in (CRASH, TORN_WRITE):
            self.die(name)
        if action == DELAY:
            time.sleep(rule.delay_s)
        elif action == PAUSE:
            rule._gate.wait(rule.pause_timeout_s)

    def die(self, name: str) -> None:
        """Crash here: ``os._exit`` in a forked child, :class:`SimulatedCrash` elsewhere."""
        if self.crash_exits:
            os._exit(CRASH_EXIT_CODE)
        raise SimulatedCrash(name)


#: The controller adapters get when none is given: no rules, next to no cost.
NO_FAULTS = FaultController()


def parse_rule(text: str) -> FaultRule:
    """Parse ``ACTION@POINT[:key=value,...]``, e.g. ``error@set_master.*:count=1,p=0.5`` or
    ``corrupt@save_cv.readback`` (ACTION is one of :data:`ACTIONS`)."""
    action, _, rest = text.partition("@")
    if not rest:
        raise ValueError(f"fault rule {text!r}: expected ACTION@POINT")
    point, _, opts = rest.partition(":")
    kwargs: dict[str, Any] = {}
    for item in filter(None, opts.split(",")):
        key, _, value = item.partition("=")
        key = {"p": "probability"}.get(key, key)
        if key in ("probability", "delay_s", "torn_fraction", "pause_timeout_s"):
            kwargs[key] = float(value)
        elif key in ("count", "after"):
            kwargs[key] = None if value in ("", "inf") else int(value)
        elif key == "operation":
            kwargs[key] = value
        else:
            raise ValueError(f"fault rule {text!r}: unknown option {key!r}")
    return FaultRule(point=point, action=action, **kwargs)
