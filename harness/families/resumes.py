"""The resume family: the contract of :mod:`harness.contract` and the invariants of
:mod:`harness.invariants` (DESIGN sections 3 and 5)."""

from __future__ import annotations

from harness.families import Family

FAMILY = Family(
    name="resumes",
    description="master resume, tailored resumes and their improvement records, preview hashes, "
                "cover letters",
    adapters={
        "tinydb-legacy": "adapters.tinydb_legacy:TinyDBLegacyAdapter",
        "tinydb-locked": "adapters.tinydb_locked:TinyDBLockedAdapter",
        "sqlite": "adapters.sqlite:SQLiteAdapter",
        "postgres": "adapters.postgres:PostgresAdapter",
    },
    embedded=("tinydb-legacy", "tinydb-locked", "sqlite"),
    invariants="harness.invariants:INVARIANTS",
    check_all="harness.invariants:check_all",
    crash_cases="scenarios.crash.plans:build_cases",
    race_pairs="scenarios.races.pairs:PAIRS",
    machine="scenarios.stateful.machine:ResumeMachine",
    scenarios=("stateful", "crash", "races", "load"),
)
