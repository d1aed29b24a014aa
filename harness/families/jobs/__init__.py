"""The ``jobs`` family: processing jobs moving pending -> processing -> completed | failed, their
get-or-create and claim operations, and the invariants of the job-status audit (DESIGN section 8).
"""

from __future__ import annotations

from harness.families import Family

FAMILY = Family(
    name="jobs",
    description="processing jobs: get-or-create by task id, claim by one worker, status "
                "transitions, timestamps",
    adapters={
        "jobs-legacy": "adapters.jobs_legacy:JobsLegacyAdapter",
        "jobs-sqlite": "adapters.jobs_sql:JobsSQLiteAdapter",
        "jobs-postgres": "adapters.jobs_sql:JobsPostgresAdapter",
    },
    embedded=("jobs-legacy", "jobs-sqlite"),
    invariants="harness.families.jobs.invariants:INVARIANTS",
    check_all="harness.families.jobs.invariants:check_all",
    crash_cases="scenarios.families.jobs.plans:build_cases",
    race_pairs="scenarios.families.jobs.plans:PAIRS",
    machine="scenarios.families.jobs.machine:JobsMachine",
    scenarios=("stateful", "crash", "races"),
    defaults={"stateful_budget_s": 20, "max_schedules": 10},
)
