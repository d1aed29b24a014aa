"""The crash explorer's cases: for each multi-step (write) operation, a small prepared store (a
list of setup calls) and the one call that is crashed. Everything is a pure function of the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.domain import DataFactory, IdFactory, preview_hash


@dataclass(frozen=True)
class CrashCase:
    """``setup`` runs (all must be acknowledged), then ``op(**args)`` is crashed.

    ``rules`` (fault rules as :func:`harness.faults.parse_rule` text, e.g. a store that is down:
    ``error@save_cv.health:count=inf``) are the environment the case runs in: armed afresh for
    the setup calls, the traced run, the baseline and every crashed run, besides the crash.
    """

    name: str
    op: str
    args: dict[str, Any]
    setup: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    rules: tuple[str, ...] = ()


def _short_content(data: DataFactory) -> str:
    return f"# {data.fake.name()}\n\n{data.fake.sentence()}"


def _upload(data: DataFactory, ids: IdFactory, processed: bool = False) -> tuple[str, dict[str, Any]]:
    return ("upload_resume", {"content": _short_content(data), "content_type": "md",
                              "filename": data.filename(),
                              "processed_data": data.resume_data() if processed else None,
                              "resume_id": ids.resume()})


def build_cases(seed: int) -> list[CrashCase]:
    """The cases, in a fixed order; same seed, same cases (ids, contents, hashes)."""
    data = DataFactory(seed)
    cases: list[CrashCase] = []

    ids = IdFactory()
    op, args = _upload(data, ids, processed=True)
    cases.append(CrashCase("upload_resume:first", op, args))

    ids = IdFactory()
    setup = [_upload(data, ids)]
    op, args = _upload(data, ids)
    cases.append(CrashCase("upload_resume:with_master", op, args, setup))

    ids = IdFactory()
    setup = [_upload(data, ids)]
    rid = setup[0][1]["resume_id"]
    cases.append(CrashCase("update_resume", "update_resume",
                           {"resume_id": rid, "fields": {"content": _short_content(data),
                                                         "processed_data": data.resume_data()}},
                           setup))

    ids = IdFactory()
    setup = [_upload(data, ids), _upload(data, ids)]
    cases.append(CrashCase("set_master", "set_master",
                           {"resume_id": setup[1][1]["resume_id"]}, setup))

    ids = IdFactory()
    master, other = _upload(data, ids), _upload(data, ids)
    job_id, prompt = ids.job(), "p-1"
    phash = preview_hash(job_id, prompt, seed)
    setup = [master, other,
             ("create_job", {"content": data.job_content(), "job_keywords": data.keywords(),
                             "job_id": job_id}),
             ("record_preview", {"job_id": job_id, "prompt_id": prompt, "preview_hash": phash}),
             ("confirm_improvement", {"resume_id": master[1]["resume_id"], "job_id": job_id,
                                      "prompt_id": prompt, "preview_hash": phash,
                                      "improved_data": data.resume_data(),
                                      "improvements": data.improvements(),
                                      "tailored_resume_id": ids.tailored(),
                                      "request_id": ids.request()})]
    cases.append(CrashCase("delete_resume", "delete_resume",
                           {"resume_id": master[1]["resume_id"]}, setup))

    for op in ("save_cover_letter", "save_outreach_message"):
        ids = IdFactory()
        setup = [_upload(data, ids)]
        cases.append(CrashCase(op, op, {"resume_id": setup[0][1]["resume_id"],
                                        "text": data.fake.paragraph(nb_sentences=2)}, setup))

    ids = IdFactory()
    cases.append(CrashCase("create_job", "create_job",
                           {"content": data.job_content(), "job_keywords": data.keywords(),
                            "job_id": ids.job()}))

    ids = IdFactory()
    job_id = ids.job()
    setup = [("create_job", {"content": data.job_content(), "job_keywords": data.keywords(),
                             "job_id": job_id}),
             ("record_preview", {"job_id": job_id, "prompt_id": "p-1",
                                 "preview_hash": preview_hash(job_id, "p-1", seed)})]
    cases.append(CrashCase("record_preview", "record_preview",
                           {"job_id": job_id, "prompt_id": "p-2",
                            "preview_hash": preview_hash(job_id, "p-2", seed)}, setup))

    ids = IdFactory()
    upload = _upload(data, ids)
    job_id, prompt = ids.job(), "p-1"
    phash = preview_hash(job_id, prompt, seed)
    setup = [upload,
             ("create_job", {"content": data.job_content(), "job_keywords": data.keywords(),
                             "job_id": job_id}),
             ("record_preview", {"job_id": job_id, "prompt_id": prompt, "preview_hash": phash})]
    cases.append(CrashCase("confirm_improvement", "confirm_improvement",
                           {"resume_id": upload[1]["resume_id"], "job_id": job_id,
                            "prompt_id": prompt, "preview_hash": phash,
                            "improved_data": data.resume_data(),
                            "improvements": data.improvements(),
                            "tailored_resume_id": ids.tailored(), "request_id": ids.request()},
                           setup))
    return cases
