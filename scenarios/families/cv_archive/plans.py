"""The cv-archive family's crash cases and race pairs. Everything is a pure function of the seed.

A store that is down is the environment of several cases and pairs: :data:`STORE_DOWN` makes
every health check of every ``save_cv`` fail, so saves fall back to their backup file (setup
saves included), while ``recover`` still finds the store up.
"""

from __future__ import annotations

from typing import Any

from harness.domain import DataFactory, IdFactory
from scenarios.crash.plans import CrashCase
from scenarios.races.pairs import Call, Pair

#: Fault rule text: the store is down for every save_cv attempt (recover is not affected).
STORE_DOWN = "error@save_cv.health:count=inf"
USERS = ("u-0001", "u-0002", "u-0003")


def cv_content(data: DataFactory) -> str:
    """A short Faker-made CV in Markdown (names in several scripts)."""
    f = data.fake
    return f"# {f.name()}\n\n{f.job()} — {f.city()}\n\n{f.paragraph(nb_sentences=2)}"


def save_call(data: DataFactory, ids: IdFactory, request_id: str | None = None) -> Call:
    args: dict[str, Any] = {"request_id": request_id or ids.new("q"),
                            "user_id": data.rng.choice(USERS), "filename": data.filename(),
                            "content": cv_content(data)}
    return ("save_cv", args)


def build_cases(seed: int) -> list[CrashCase]:
    """save_cv (store up, a client retry, store down: the backup write) and recover."""
    data = DataFactory(seed)
    cases: list[CrashCase] = []

    ids = IdFactory()
    op, args = save_call(data, ids)
    cases.append(CrashCase("save_cv:stored", op, args))

    ids = IdFactory()
    first = save_call(data, ids)
    cases.append(CrashCase("save_cv:client-retry", "save_cv", dict(first[1]), [first]))

    ids = IdFactory()
    earlier = save_call(data, ids)
    op, args = save_call(data, ids)
    cases.append(CrashCase("save_cv:store-down", op, args, [earlier], rules=(STORE_DOWN,)))

    ids = IdFactory()
    setup = [save_call(data, ids), save_call(data, ids)]
    cases.append(CrashCase("recover", "recover", {"dry_run": False}, setup, rules=(STORE_DOWN,)))
    return cases


def _same_request(data: DataFactory, ids: IdFactory) -> tuple[list[Call], list[Call]]:
    call = save_call(data, ids)
    return [], [call, ("save_cv", dict(call[1]))]


def _recover_recover(data: DataFactory, ids: IdFactory) -> tuple[list[Call], list[Call]]:
    setup = [save_call(data, ids), save_call(data, ids)]
    return setup, [("recover", {"dry_run": False}), ("recover", {"dry_run": False})]


def _backup_recover(data: DataFactory, ids: IdFactory) -> tuple[list[Call], list[Call]]:
    setup = [save_call(data, ids)]
    return setup, [save_call(data, ids), ("recover", {"dry_run": False})]


PAIRS: tuple[Pair, ...] = (
    Pair("save-save-same-request", "a save_cv and its retry with the same request id",
         _same_request),
    Pair("recover-recover", "two recover runs over the same two backups (store down for saves)",
         _recover_recover, rules=(STORE_DOWN,)),
    Pair("backup-recover", "a save_cv falling back to its backup against a recover",
         _backup_recover, rules=(STORE_DOWN,)),
)
