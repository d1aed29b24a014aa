"""The accounts family (DESIGN section 8): users with a unique email, sessions, CV uploads with
ownership transfer from anonymous users, an extraction cache with a confidence threshold, and
session cleanup. Contract in :mod:`.contract`, invariants in :mod:`.invariants`."""

from __future__ import annotations

from harness.families import Family

FAMILY = Family(
    name="accounts",
    description="users (unique email), sessions and their cleanup, CV uploads and ownership "
                "transfer, extraction cache above a confidence threshold",
    adapters={
        "accounts-legacy": "adapters.accounts_legacy:AccountsLegacyAdapter",
        "accounts-sqlite": "adapters.accounts_sql:AccountsSQLiteAdapter",
        "accounts-postgres": "adapters.accounts_sql:AccountsPostgresAdapter",
    },
    embedded=("accounts-legacy", "accounts-sqlite"),
    invariants="harness.families.accounts.invariants:INVARIANTS",
    check_all="harness.families.accounts.invariants:check_all",
    crash_cases="scenarios.families.accounts.plans:build_cases",
    race_pairs="scenarios.families.accounts.plans:PAIRS",
    machine="scenarios.families.accounts.machine:AccountsMachine",
    scenarios=("stateful", "crash", "races"),
    defaults={"stateful_budget_s": 25, "stateful_max_shrink_runs": 5, "stateful_max_replays": 25,
              "max_schedules": 8},
)
