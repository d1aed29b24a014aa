"""The recording client: calls adapter operations and records each in the history.

Every scenario drives adapters through :class:`RecordingClient` so that each call is scoped for
fault points (operation name, step, process), classified as ok / fail / info, and recorded with
the faults injected during it.
"""

from __future__ import annotations

import threading
from typing import Any

from harness.errors import Conflict, InvalidData, NotFound, StorageError
from harness.faults import SimulatedCrash
from harness.history import FAIL, INFO, OK, History, OpRecord
from harness.store import Store

DEFINITE_FAILURES = (NotFound, Conflict, InvalidData)


def to_plain(value: Any) -> Any:
    """Records to dicts, lists of records to lists of dicts; everything else unchanged."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value


class RecordingClient:
    """Wraps one adapter; ``call(op, **args)`` runs and records one operation."""

    def __init__(self, adapter: Store, history: History | None = None,
                 process: str | None = None) -> None:
        self.adapter = adapter
        self.history = history if history is not None else History()
        self.process = process

    def call(self, op: str, **args: Any) -> OpRecord:
        """Run ``adapter.op(**args)``; never raises for contract or storage errors."""
        if op not in self.adapter.operations:
            raise ValueError(f"unknown operation {op!r} for {type(self.adapter).__name__}")
        process = self.process or threading.current_thread().name
        faults = self.adapter.faults
        rec = self.history.invoke(process, op, args)
        try:
            with faults.operation(op, step=rec.index, process=process):
                value = getattr(self.adapter, op)(**args)
        except DEFINITE_FAILURES as exc:
            return self.history.complete(rec, FAIL, error=exc, faults=self._faults_of(rec))
        except StorageError as exc:
            return self.history.complete(rec, INFO, error=exc, faults=self._faults_of(rec))
        except SimulatedCrash as exc:
            self.history.complete(rec, INFO, error=exc, faults=self._faults_of(rec))
            raise
        except Exception as exc:  # an adapter bug or an unreadable store: outcome unknown
            return self.history.complete(rec, INFO, error=exc, faults=self._faults_of(rec))
        return self.history.complete(rec, OK, result=to_plain(value), faults=self._faults_of(rec))

    def _faults_of(self, rec: OpRecord) -> list[dict[str, Any]]:
        return [i.to_dict() for i in self.adapter.faults.injections
                if i.step == rec.index and i.process == rec.process]
