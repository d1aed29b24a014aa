"""Turning invariant findings into reported violations, with the history excerpt involved."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from harness.history import OpRecord
from harness.invariants import Finding
from harness.results import ViolationRecord, attribute_guarantee

EXCERPT_LIMIT = 60


def history_excerpt(history: Sequence[OpRecord], finding: Finding,
                    limit: int = EXCERPT_LIMIT) -> list[dict[str, Any]]:
    """The operations a finding names, plus those touching its ids (at most ``limit``)."""
    wanted_ops = set(finding.ops)
    ids = set(finding.ids)

    def touches(rec: OpRecord) -> bool:
        if rec.index in wanted_ops or rec.faults:
            return True
        values = {v for v in rec.args.values() if isinstance(v, str)}
        return bool(values & ids)

    picked = [r for r in history if touches(r)] or list(history)
    return [r.to_dict() for r in picked[-limit:]]


def fault_actions(history: Iterable[OpRecord]) -> set[str]:
    return {f["action"] for r in history for f in r.faults}


def to_violation(finding: Finding, history: Sequence[OpRecord], *, concurrency: str = "none",
                 reopened: bool = False, guarantee: str | None = None, reproduction: str = "",
                 context: dict[str, Any] | None = None) -> ViolationRecord:
    """A :class:`ViolationRecord` for ``finding``, attributing the guarantee from the faults
    injected in ``history`` and the concurrency it ran under unless ``guarantee`` is given."""
    faults = [f for r in history for f in r.faults]
    if guarantee is None:
        guarantee = attribute_guarantee(fault_actions=fault_actions(history),
                                        concurrency=concurrency, reopened=reopened,
                                        invariant=finding.invariant)
    return ViolationRecord(invariant=finding.invariant, guarantee=guarantee,
                           message=finding.message, faults=faults, reproduction=reproduction,
                           history=history_excerpt(history, finding), ids=list(finding.ids),
                           context=dict(context or {}))
