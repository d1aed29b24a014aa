"""The operation history: every call recorded as invoke / ok / fail / info with timestamps.

``ok`` means acknowledged, ``fail`` means definitely not applied (NotFound, Conflict,
InvalidData), ``info`` means outcome unknown (StorageError, a crash, an unexpected exception),
``pending`` means the call never returned (the process died). Invariants read this history.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

OK, FAIL, INFO, PENDING = "ok", "fail", "info", "pending"


@dataclass
class OpRecord:
    index: int
    process: str
    op: str
    args: dict[str, Any]
    start: float
    status: str = PENDING
    end: float | None = None
    result: Any = None
    error: str | None = None
    error_type: str | None = None
    faults: list[dict[str, Any]] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool:
        return self.status == OK

    @property
    def may_have_applied(self) -> bool:
        """ok, or unknown outcome (info / pending)."""
        return self.status in (OK, INFO, PENDING)

    def finished_before(self, other: OpRecord) -> bool:
        """True when this call completed before ``other`` was invoked (real-time order)."""
        return self.end is not None and self.end < other.start

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OpRecord:
        return cls(**d)


class History:
    """Thread-safe, append-only list of :class:`OpRecord`."""

    def __init__(self, records: list[OpRecord] | None = None) -> None:
        self._records: list[OpRecord] = list(records or [])
        self._lock = threading.Lock()
        self._t0 = time.monotonic()

    def now(self) -> float:
        return round(time.monotonic() - self._t0, 6)

    def invoke(self, process: str, op: str, args: dict[str, Any]) -> OpRecord:
        with self._lock:
            rec = OpRecord(index=len(self._records), process=process, op=op, args=dict(args),
                           start=self.now())
            self._records.append(rec)
        return rec

    def complete(self, rec: OpRecord, status: str, *, result: Any = None,
                 error: BaseException | None = None,
                 faults: list[dict[str, Any]] | None = None) -> OpRecord:
        rec.end = self.now()
        rec.status = status
        rec.result = result
        if error is not None:
            rec.error_type = type(error).__name__
            rec.error = f"{type(error).__name__}: {error}"
        if faults:
            rec.faults.extend(faults)
        return rec

    def append(self, rec: OpRecord) -> None:
        with self._lock:
            rec.index = len(self._records)
            self._records.append(rec)

    @property
    def records(self) -> list[OpRecord]:
        with self._lock:
            return list(self._records)

    def __iter__(self) -> Iterator[OpRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self._records)

    def to_list(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.records]
