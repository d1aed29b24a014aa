"""The cv-archive contract as a Hypothesis state machine (DESIGN section 6, stateful/).

Rules: new saves (Faker CVs, sometimes invalid input), client retries of earlier requests with
the same request id and content, recover (sometimes a dry run), and reads. Under the error mode a
write rule's fault is one of: the store down for every attempt of that save (so it falls back to
its backup), an error at one of the operation's points (an error at ``save_cv.committed`` is the
connection lost after the commit), or silent corruption of the bytes stored or read back. Under
the crash mode it is the store down, or a crash at one of the points.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from harness.faults import CORRUPT, CRASH, ERROR
from scenarios.families.cv_archive.plans import USERS, cv_content
from scenarios.stateful.machine import FAULT, PLAIN, FamilyMachine, data_for, fault_points_for

MISSING_REQUEST = "q-missing"
SEEDS = st.integers(0, 2**16)
#: The store down for all attempts of one save (the rule is cleared after the call).
STORE_DOWN: dict[str, Any] = {"action": ERROR, "point": "save_cv.health", "count": None}


class CvArchiveMachine(FamilyMachine):
    """Saves, client retries, recovery and reads over one archive."""

    def setup(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def fault_for(self, op: str, fault: int | None) -> dict[str, Any] | None:
        """Saves: the store down (weighted up: it opens the backup path), else an error / a
        crash at a point, or (error mode) a corruption; recover: an error / a crash at a point."""
        mode = self.search.mode
        if fault is None or mode == PLAIN:
            return None
        cls = self.search.ctx.adapter_cls
        # the adapter's named points twice: they are the step boundaries of the design
        points = list(cls.fault_points.get(op, ())) + fault_points_for(cls, op)
        options: list[dict[str, Any]] = []
        if op == "save_cv":
            options += [STORE_DOWN] * 6
        if mode == CRASH:
            options += [{"action": CRASH, "point": p} for p in points]
        else:
            options += [{"action": ERROR, "point": p} for p in points]
            if op == "save_cv":
                options += [{"action": CORRUPT, "point": "save_cv.stored"}] * 2
                options += [{"action": CORRUPT, "point": "save_cv.readback"}]
        return dict(options[fault % len(options)])

    @rule(fault=FAULT, seed=SEEDS, user=st.sampled_from(USERS),
          valid=st.integers(0, 9).map(lambda n: n != 9))
    def save(self, fault: int | None, seed: int, user: str, valid: bool) -> None:
        df = data_for(seed)
        args = {"request_id": self.ids.new("q"), "user_id": user,
                "filename": df.filename() if valid else "", "content": cv_content(df)}
        if valid:
            self.sent.append(args)
        self._do("save_cv", fault=fault, **args)

    @precondition(lambda self: bool(self.sent))
    @rule(fault=FAULT, i=st.integers(0, 63))
    def client_retry(self, fault: int | None, i: int) -> None:
        """The client re-sends an earlier request (same request id, same content)."""
        self._do("save_cv", fault=fault, **dict(self.sent[i % len(self.sent)]))

    @rule(fault=FAULT, dry=st.integers(0, 4).map(lambda n: n == 4))
    def recover(self, fault: int | None, dry: bool) -> None:
        self._do("recover", fault=fault, dry_run=dry)

    @precondition(lambda self: self.search.mode == PLAIN)
    @rule(what=st.sampled_from(["get_cv", "list_cvs", "list_backups"]), i=st.integers(0, 63),
          miss=st.integers(0, 4).map(lambda n: n == 4))
    def read(self, what: str, i: int, miss: bool) -> None:
        if what == "get_cv":
            rid = MISSING_REQUEST if miss or not self.sent else self.sent[i % len(self.sent)]["request_id"]
            self._do("get_cv", request_id=rid)
        elif what == "list_cvs":
            self._do("list_cvs", user_id=None if miss else USERS[i % len(USERS)])
        else:
            self._do("list_backups")
