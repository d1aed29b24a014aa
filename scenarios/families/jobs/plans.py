"""The ``jobs`` crash cases and race pairs: small prepared stores and the calls crashed or raced,
a pure function of the seed (ids from :class:`IdFactory`, content from :class:`DataFactory`)."""

from __future__ import annotations

from typing import Any

from harness.domain import DataFactory, IdFactory
from scenarios.crash.plans import CrashCase
from scenarios.races.pairs import Pair

Call = tuple[str, dict[str, Any]]
TASK_TYPES = ("parse_resume", "extract_keywords", "tailor_resume", "score_match")


def task_input(data: DataFactory) -> dict[str, Any]:
    """What a job is asked to process: a resume file and a few Faker-made details."""
    return {"filename": data.filename(), "candidate": data.fake.name(),
            "notes": data.fake.sentence(), "pages": data.rng.randint(1, 4)}


def job_result(data: DataFactory) -> dict[str, Any]:
    return {"keywords": data.keywords(), "summary": data.fake.sentence(),
            "score": round(data.rng.random(), 3)}


def job_error(data: DataFactory) -> str:
    return f"{data.rng.choice(['TimeoutError', 'ValueError', 'LLMError'])}: {data.fake.sentence()}"


def create(data: DataFactory, ids: IdFactory, task_id: str | None = None) -> Call:
    return ("get_or_create", {"task_id": task_id or ids.new("task"),
                              "task_type": data.rng.choice(TASK_TYPES), "input": task_input(data)})


def claim(worker: str) -> Call:
    return ("claim_next", {"worker_id": worker})


def build_cases(seed: int) -> list[CrashCase]:
    """Every write operation, crashed at each of its points, in a fixed order."""
    data = DataFactory(seed)
    cases: list[CrashCase] = []

    ids = IdFactory()
    op, args = create(data, ids)
    cases.append(CrashCase("get_or_create:new", op, args))

    ids = IdFactory()
    setup = [create(data, ids)]
    op, args = create(data, ids, setup[0][1]["task_id"])
    cases.append(CrashCase("get_or_create:existing", op, args, setup))

    ids = IdFactory()
    setup = [create(data, ids), create(data, ids)]
    cases.append(CrashCase("claim_next", "claim_next", {"worker_id": "worker-1"}, setup))

    ids = IdFactory()
    first = create(data, ids)
    tid = first[1]["task_id"]
    setup = [first]
    cases.append(CrashCase("mark_processing:pending", "mark_processing",
                           {"task_id": tid, "worker_id": "worker-1"}, setup))

    ids = IdFactory()
    first = create(data, ids)
    tid = first[1]["task_id"]
    setup = [first, claim("worker-1"), ("mark_failed", {"task_id": tid, "error": job_error(data)})]
    cases.append(CrashCase("mark_processing:retry", "mark_processing",
                           {"task_id": tid, "worker_id": "worker-2"}, setup))

    ids = IdFactory()
    first = create(data, ids)
    tid = first[1]["task_id"]
    cases.append(CrashCase("mark_completed", "mark_completed",
                           {"task_id": tid, "result": job_result(data)}, [first, claim("worker-1")]))

    ids = IdFactory()
    first = create(data, ids)
    tid = first[1]["task_id"]
    cases.append(CrashCase("mark_failed", "mark_failed",
                           {"task_id": tid, "error": job_error(data)}, [first, claim("worker-1")]))
    return cases


# --------------------------------------------------------------------------- race pairs


def _create_create(data: DataFactory, ids: IdFactory) -> tuple[list[Call], list[Call]]:
    first = create(data, ids)
    second = create(data, ids, first[1]["task_id"])
    return [], [first, second]


def _claim_claim(data: DataFactory, ids: IdFactory) -> tuple[list[Call], list[Call]]:
    return [create(data, ids)], [claim("worker-1"), claim("worker-2")]


def _complete_fail(data: DataFactory, ids: IdFactory) -> tuple[list[Call], list[Call]]:
    first = create(data, ids)
    tid = first[1]["task_id"]
    race = [("mark_completed", {"task_id": tid, "result": job_result(data)}),
            ("mark_failed", {"task_id": tid, "error": job_error(data)})]
    return [first, claim("worker-1")], race


def _retry_retry(data: DataFactory, ids: IdFactory) -> tuple[list[Call], list[Call]]:
    first = create(data, ids)
    tid = first[1]["task_id"]
    setup = [first, claim("worker-1"), ("mark_failed", {"task_id": tid, "error": job_error(data)})]
    race = [("mark_processing", {"task_id": tid, "worker_id": "worker-2"}),
            ("mark_processing", {"task_id": tid, "worker_id": "worker-3"})]
    return setup, race


def _create_claim(data: DataFactory, ids: IdFactory) -> tuple[list[Call], list[Call]]:
    return [create(data, ids)], [create(data, ids), claim("worker-1")]


PAIRS: tuple[Pair, ...] = (
    Pair("create-create", "two get_or_create of one new task_id", _create_create),
    Pair("claim-claim", "two claim_next with one pending job", _claim_claim),
    Pair("complete-fail", "mark_completed against mark_failed on one processing job",
         _complete_fail),
    Pair("retry-retry", "two mark_processing retries of one failed job", _retry_retry),
    Pair("create-claim", "get_or_create of a new task against claim_next of the pending one",
         _create_claim),
)
PAIRS_BY_NAME: dict[str, Pair] = {p.name: p for p in PAIRS}
