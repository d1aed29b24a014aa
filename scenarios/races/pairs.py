"""The operation pairs the race explorer interleaves.

A :class:`Pair` names a small setup (operations run alone, before the race) and the operations
that race, one per thread. Arguments are a pure function of the seed (ids from
:class:`~harness.domain.IdFactory`, content from :class:`~harness.domain.DataFactory`), built once
per pair and reused for every schedule so that every schedule of a pair races the same calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.domain import DataFactory, IdFactory, preview_hash

Call = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Pair:
    name: str
    description: str
    build: Callable[[DataFactory, IdFactory], tuple[list[Call], list[Call]]]
    #: Fault rules (:func:`harness.faults.parse_rule` text) armed for every schedule, setup
    #: included: the environment the pair races in (e.g. a store that is down).
    rules: tuple[str, ...] = ()

    def calls(self, seed: int) -> tuple[list[Call], list[Call]]:
        """``(setup, racing)`` calls for ``seed``."""
        return self.build(DataFactory(seed), IdFactory())


def _upload(data: DataFactory, ids: IdFactory, resume_id: str | None = None) -> Call:
    return ("upload_resume", {"content": data.resume_content(), "content_type": "md",
                              "filename": data.filename(), "processed_data": data.resume_data(),
                              "resume_id": resume_id or ids.resume()})


def _job(data: DataFactory, ids: IdFactory) -> Call:
    return ("create_job", {"content": data.job_content(), "job_keywords": data.keywords(),
                           "job_id": ids.job()})


def _preview_preview(data: DataFactory, ids: IdFactory) -> tuple[list[Call], list[Call]]:
    job = _job(data, ids)
    jid = job[1]["job_id"]
    race = [("record_preview", {"job_id": jid, "prompt_id": f"prompt-{n}",
                                "preview_hash": preview_hash(jid, f"prompt-{n}")})
            for n in (1, 2)]
    return [job], race


def _upload_upload(data: DataFactory, ids: IdFactory) -> tuple[list[Call], list[Call]]:
    return [], [_upload(data, ids), _upload(data, ids)]


def _setmaster_upload(data: DataFactory, ids: IdFactory) -> tuple[list[Call], list[Call]]:
    first, second = _upload(data, ids), _upload(data, ids)
    race = [("set_master", {"resume_id": second[1]["resume_id"]}), _upload(data, ids)]
    return [first, second], race


def _confirm_delete(data: DataFactory, ids: IdFactory) -> tuple[list[Call], list[Call]]:
    resume, job = _upload(data, ids), _job(data, ids)
    rid, jid = resume[1]["resume_id"], job[1]["job_id"]
    digest = preview_hash(jid, "prompt-1")
    preview = ("record_preview", {"job_id": jid, "prompt_id": "prompt-1", "preview_hash": digest})
    confirm = ("confirm_improvement", {
        "resume_id": rid, "job_id": jid, "prompt_id": "prompt-1", "preview_hash": digest,
        "improved_data": data.resume_data(), "improvements": data.improvements(),
        "tailored_resume_id": ids.tailored(), "request_id": ids.request()})
    return [resume, job, preview], [confirm, ("delete_resume", {"resume_id": rid})]


def _cover_cover(data: DataFactory, ids: IdFactory) -> tuple[list[Call], list[Call]]:
    resume = _upload(data, ids)
    rid = resume[1]["resume_id"]
    race = [("save_cover_letter", {"resume_id": rid, "text": data.fake.paragraph()}),
            ("save_cover_letter", {"resume_id": rid, "text": data.fake.paragraph()})]
    return [resume], race


def _cover_outreach(data: DataFactory, ids: IdFactory) -> tuple[list[Call], list[Call]]:
    resume = _upload(data, ids)
    rid = resume[1]["resume_id"]
    race = [("save_cover_letter", {"resume_id": rid, "text": data.fake.paragraph()}),
            ("save_outreach_message", {"resume_id": rid, "text": data.fake.paragraph()})]
    return [resume], race


PAIRS: tuple[Pair, ...] = (
    Pair("preview-preview", "two record_preview on one job, different prompts", _preview_preview),
    Pair("upload-upload", "two first upload_resume on an empty store", _upload_upload),
    Pair("setmaster-upload", "set_master against upload_resume", _setmaster_upload),
    Pair("confirm-delete", "confirm_improvement against delete_resume of its original",
         _confirm_delete),
    Pair("cover-cover", "two save_cover_letter on one resume", _cover_cover),
    Pair("cover-outreach", "save_cover_letter against save_outreach_message on one resume",
         _cover_outreach),
)
PAIRS_BY_NAME: dict[str, Pair] = {p.name: p for p in PAIRS}
