"""The accounts workloads of the crash and race explorers: a crash case for every write
operation and the operation pairs to interleave. Everything is a pure function of the seed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from harness.domain import DataFactory, IdFactory
from scenarios.crash.plans import CrashCase
from scenarios.races.pairs import Pair

Call = tuple[str, dict[str, Any]]
#: Every workload's clock starts here; times are passed explicitly so that runs replay.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def at(hours: float) -> str:
    return (EPOCH + timedelta(hours=hours)).isoformat()


def user(data: DataFactory, ids: IdFactory, anonymous: bool = False,
         email: str | None = None) -> Call:
    return ("create_user", {"user_id": ids.new("u"), "email": email or data.fake.email(),
                            "is_anonymous": anonymous})


def upload(data: DataFactory, ids: IdFactory, user_id: str) -> Call:
    return ("create_upload", {"job_id": ids.new("cv"), "user_id": user_id,
                              "file_hash": data.fake.sha256()[:16], "filename": data.filename()})


def extraction(data: DataFactory) -> dict[str, Any]:
    return {"name": data.fake.name(), "email": data.fake.email(),
            "skills": [data.fake.word() for _ in range(3)]}


def build_cases(seed: int) -> list[CrashCase]:
    """One case per write operation, in a fixed order."""
    data = DataFactory(seed)
    cases: list[CrashCase] = []

    ids = IdFactory()
    cases.append(CrashCase("create_user", *user(data, ids)))

    ids = IdFactory()
    owner = user(data, ids)
    uid = owner[1]["user_id"]
    setup = [owner, ("create_session", {"session_id": ids.new("s"), "user_id": uid,
                                        "created_at": at(1)}), upload(data, ids, uid)]
    cases.append(CrashCase("delete_user", "delete_user", {"user_id": uid}, setup))

    ids = IdFactory()
    owner = user(data, ids)
    cases.append(CrashCase("create_session", "create_session",
                           {"session_id": ids.new("s"), "user_id": owner[1]["user_id"],
                            "created_at": at(5)}, [owner]))

    ids = IdFactory()
    owner = user(data, ids)
    uid = owner[1]["user_id"]
    setup = [owner] + [("create_session", {"session_id": ids.new("s"), "user_id": uid,
                                           "created_at": at(h)}) for h in (1, 30, 50)]
    cases.append(CrashCase("cleanup_sessions", "cleanup_sessions",
                           {"older_than_days": 1, "now": at(60)}, setup))

    ids = IdFactory()
    owner = user(data, ids)
    cases.append(CrashCase("create_upload", *upload(data, ids, owner[1]["user_id"]), [owner]))

    ids = IdFactory()
    anon, registered = user(data, ids, anonymous=True), user(data, ids)
    up = upload(data, ids, anon[1]["user_id"])
    cases.append(CrashCase("transfer_cv_ownership", "transfer_cv_ownership",
                           {"job_id": up[1]["job_id"], "new_user_id": registered[1]["user_id"]},
                           [anon, registered, up]))

    digest = data.fake.sha256()[:16]
    cases.append(CrashCase("cache_extraction", "cache_extraction",
                           {"file_hash": digest, "data": extraction(data), "confidence": 0.9}))

    digest = data.fake.sha256()[:16]
    cases.append(CrashCase("get_cached_extraction", "get_cached_extraction",
                           {"file_hash": digest},
                           [("cache_extraction", {"file_hash": digest, "data": extraction(data),
                                                  "confidence": 0.95})]))
    return cases


# --------------------------------------------------------------------------- race pairs


def _signup_signup(data: DataFactory, ids: IdFactory) -> tuple[list[Call], list[Call]]:
    email = data.fake.email()
    return [], [user(data, ids, email=email), user(data, ids, email=email.upper())]


def _transfer_delete(data: DataFactory, ids: IdFactory) -> tuple[list[Call], list[Call]]:
    anon, registered = user(data, ids, anonymous=True), user(data, ids)
    up = upload(data, ids, anon[1]["user_id"])
    race = [("transfer_cv_ownership", {"job_id": up[1]["job_id"],
                                       "new_user_id": registered[1]["user_id"]}),
            ("delete_user", {"user_id": registered[1]["user_id"]})]
    return [anon, registered, up], race


def _transfer_transfer(data: DataFactory, ids: IdFactory) -> tuple[list[Call], list[Call]]:
    anon, first, second = user(data, ids, anonymous=True), user(data, ids), user(data, ids)
    up = upload(data, ids, anon[1]["user_id"])
    jid = up[1]["job_id"]
    race = [("transfer_cv_ownership", {"job_id": jid, "new_user_id": first[1]["user_id"]}),
            ("transfer_cv_ownership", {"job_id": jid, "new_user_id": second[1]["user_id"]})]
    return [anon, first, second, up], race


def _read_read(data: DataFactory, ids: IdFactory) -> tuple[list[Call], list[Call]]:
    digest = data.fake.sha256()[:16]
    store = ("cache_extraction", {"file_hash": digest, "data": extraction(data),
                                  "confidence": 0.8})
    read = ("get_cached_extraction", {"file_hash": digest})
    return [store], [read, read]


def _session_delete(data: DataFactory, ids: IdFactory) -> tuple[list[Call], list[Call]]:
    owner = user(data, ids)
    uid = owner[1]["user_id"]
    race = [("create_session", {"session_id": ids.new("s"), "user_id": uid,
                                "created_at": at(2)}),
            ("delete_user", {"user_id": uid})]
    return [owner], race


PAIRS: tuple[Pair, ...] = (
    Pair("signup-signup", "two create_user with one email (different case)", _signup_signup),
    Pair("transfer-delete", "transfer_cv_ownership against delete_user of the new owner",
         _transfer_delete),
    Pair("transfer-transfer", "two transfers of one anonymous upload to two registered users",
         _transfer_transfer),
    Pair("cacheread-cacheread", "two get_cached_extraction of one entry", _read_read),
    Pair("session-delete", "create_session against delete_user of its user", _session_delete),
)
PAIRS_BY_NAME: dict[str, Pair] = {p.name: p for p in PAIRS}
