"""Compensating rollback for ``tinydb-locked``: before-images of records, restored on failure.

A flow remembers each record's state before its first write to it (``None``: it did not exist).
If a later step raises, :meth:`Rollback.restore` puts every remembered record back. Restoring is
state-based, not a replay of inverse actions: it compares what is stored now with the
before-image and writes only where they differ. So it is correct whether or not the write that
raised took effect, it is idempotent, and each restore is retried, so a fault injected into the
rollback's own writes does not leave a half-undone flow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tinydb import Query, TinyDB

from adapters.tinydb_common import ID_KEYS

#: How often one record's restore is tried before the rollback gives up on it.
RESTORE_ATTEMPTS = 3


def normalized(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` as it reads back from the JSON file (tuples become lists, keys strings)."""
    return json.loads(json.dumps(doc))


class Rollback:
    """The before-images of one unit of work on one TinyDB."""

    def __init__(self, db: TinyDB) -> None:
        self._db = db
        self._images: dict[tuple[str, str], dict[str, Any] | None] = {}

    def remember(self, table: str, key: str, before: Mapping[str, Any] | None) -> None:
        """Record ``before`` unless this record was already remembered (the first image wins)."""
        self._images.setdefault((table, key), None if before is None else dict(before))

    def restore(self) -> Exception | None:
        """Put every remembered record back, newest first; the first unrecoverable error or None."""
        failure: Exception | None = None
        for (table, key), before in reversed(list(self._images.items())):
            for attempt in range(RESTORE_ATTEMPTS):
                try:
                    self._restore_one(table, key, before)
                    break
                except Exception as exc:  # noqa: BLE001 - retried, then reported
                    if attempt == RESTORE_ATTEMPTS - 1 and failure is None:
                        failure = exc
        return failure

    def _restore_one(self, table: str, key: str, before: dict[str, Any] | None) -> None:
        t = self._db.table(table)
        cond = Query()[ID_KEYS[table]] == key
        current = t.get(cond)
        if before is None:
            if current is not None:
                t.remove(cond)
        elif current is None:
            t.insert(before)
        elif dict(current) != before:
            t.update(before, cond)
