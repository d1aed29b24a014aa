"""The ``cv-archive`` family: a robust persistence service (health check, retries with backoff,
SHA-256 read-back verification, atomic JSON backups, idempotent recovery) in front of an archive
store, and the invariants of the CV-archive audit (DESIGN section 8)."""

from __future__ import annotations

from harness.families import Family

FAMILY = Family(
    name="cv-archive",
    description="CV archive behind a persistence service: verified saves, retries, backups when "
                "the store is down, recovery",
    adapters={
        "cv-archive-legacy": "adapters.cv_archive_legacy:CvArchiveLegacy",
        "cv-archive-sqlite": "adapters.cv_archive_sql:CvArchiveSQLite",
        "cv-archive-postgres": "adapters.cv_archive_sql:CvArchivePostgres",
    },
    embedded=("cv-archive-legacy", "cv-archive-sqlite"),
    invariants="harness.families.cv_archive.invariants:INVARIANTS",
    check_all="harness.families.cv_archive.invariants:check_all",
    crash_cases="scenarios.families.cv_archive.plans:build_cases",
    race_pairs="scenarios.families.cv_archive.plans:PAIRS",
    machine="scenarios.families.cv_archive.machine:CvArchiveMachine",
    scenarios=("stateful", "crash", "races"),
    defaults={"stateful_budget_s": 20, "stateful_step_count": 8, "max_schedules": 12},
)
