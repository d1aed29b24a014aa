"""The load workload: which app flow to run next and with which arguments.

Shared by the Locust users (``worker.py``) and by the plain loop that measures the harness'
own overhead, so that both issue the same mix of adapter calls. No Locust or gevent import
here: this module is also used in the (unpatched) parent process.

A :class:`Workload` belongs to one process and tracks the ids it created (resumes, tailored
resumes, jobs, recorded preview hashes) so that later calls target existing records. Ids carry
a per-process prefix so that several processes never choose the same id. The store is kept
small on purpose (a few jobs, a dozen resumes): contention on the same records is the point.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from typing import Any

from harness.domain import DataFactory, IdFactory, preview_hash

#: Relative weights of the app's flows (writes and reads).
WEIGHTS: dict[str, int] = {
    "upload_resume": 3,
    "set_master": 3,
    "record_preview": 6,
    "confirm_improvement": 2,
    "save_cover_letter": 2,
    "update_resume": 1,
    "delete_resume": 1,
    "create_job": 1,
    "get_resume": 2,
    "list_resumes": 1,
    "get_job": 2,
    "get_improvement_by_tailored_resume": 1,
}
#: The opening phase: the first calls of a process concentrate on the racing flows (first
#: uploads, record_preview on one job for several prompts, set_master against uploads).
OPENING_CALLS = 60
OPENING_WEIGHTS: dict[str, int] = {
    "upload_resume": 2,
    "set_master": 3,
    "record_preview": 8,
    "delete_resume": 1,
    "get_job": 1,
    "list_resumes": 1,
}
OPENING_MAX_JOBS = 1
MAX_RESUMES = 12
MIN_RESUMES_FOR_DELETE = 4
MAX_JOBS = 3
PROMPTS = 6
SAMPLES = 12


class Samples:
    """A few Faker-made payloads, made once (Faker is slow and not thread-safe)."""

    FIELDS = ("resume_data", "contents", "filenames", "jobs", "keywords", "improvements",
              "letters")

    def __init__(self, seed: int | None = None, *, data: dict[str, Any] | None = None) -> None:
        if data is not None:  # made by the parent: workers need not load Faker
            for name in self.FIELDS:
                setattr(self, name, data[name])
            return
        data = DataFactory(seed or 0)
        self.resume_data = [data.resume_data() for _ in range(SAMPLES)]
        self.contents = [data.resume_content() for _ in range(SAMPLES)]
        self.filenames = [data.filename() for _ in range(SAMPLES)]
        self.jobs = [data.job_content() for _ in range(SAMPLES)]
        self.keywords = [data.keywords() for _ in range(SAMPLES)]
        self.improvements = [data.improvements() for _ in range(SAMPLES)]
        self.letters = [data.fake.paragraph() for _ in range(SAMPLES)]

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.FIELDS}


class Workload:
    """Plans the arguments of the next call and learns from its outcome (thread-safe)."""

    def __init__(self, samples: Samples, prefix: str = "") -> None:
        self.s = samples
        self.ids = IdFactory(prefix)
        self._lock = threading.Lock()
        self.originals: list[str] = []
        self.tailored: dict[str, str] = {}  # tailored id -> parent id
        self.jobs: list[str] = []
        self.hashes: dict[tuple[str, str], str] = {}
        self.planned = 0

    @property
    def opening(self) -> bool:
        return self.planned < OPENING_CALLS

    def choose(self, rng: random.Random) -> str:
        weights = OPENING_WEIGHTS if self.opening else WEIGHTS
        return rng.choices(list(weights), weights=list(weights.values()))[0]

    def plan(self, op: str, rng: random.Random) -> tuple[str, dict[str, Any]]:
        """``(operation, kwargs)`` for a wanted ``op``; substitutes a creating flow when the
        records it needs do not exist yet (or a delete when the store is full)."""
        with self._lock:
            self.planned += 1
            return self._plan(op, rng)

    def _plan(self, op: str, rng: random.Random) -> tuple[str, dict[str, Any]]:
        s = self.s
        if op == "upload_resume" and len(self.originals) >= MAX_RESUMES:
            op = "delete_resume"
        if op == "create_job" and len(self.jobs) >= (OPENING_MAX_JOBS if self.opening else MAX_JOBS):
            op = "get_job"
        if op in ("record_preview", "get_job", "confirm_improvement") and not self.jobs:
            op = "create_job"
        if op == "confirm_improvement" and not self.hashes:
            op = "record_preview"
        if op == "delete_resume" and len(self.originals) < MIN_RESUMES_FOR_DELETE:
            op = "upload_resume"
        if op == "get_improvement_by_tailored_resume" and not self.tailored:
            op = "get_resume"
        if op not in ("upload_resume", "create_job", "record_preview", "list_resumes") \
                and not self.originals:
            op = "upload_resume"
        pick = rng.choice
        if op == "upload_resume":
            return op, {"content": pick(s.contents), "content_type": "md",
                        "filename": pick(s.filenames),
                        "processed_data": pick(s.resume_data) if rng.random() < 0.5 else None,
                        "resume_id": self.ids.resume()}
        if op == "create_job":
            return op, {"content": pick(s.jobs), "job_keywords": pick(s.keywords),
                        "job_id": self.ids.job()}
        if op == "record_preview":
            job = pick(self.jobs)
            prompt = f"prompt-{rng.randrange(PROMPTS)}"
            return op, {"job_id": job, "prompt_id": prompt,
                        "preview_hash": preview_hash(job, prompt, f"{self.ids.new('h')}")}
        if op == "confirm_improvement":
            (job, prompt), value = pick(sorted(self.hashes.items()))
            return op, {"resume_id": pick(self.originals), "job_id": job, "prompt_id": prompt,
                        "preview_hash": value, "improved_data": pick(s.resume_data),
                        "improvements": pick(s.improvements),
                        "tailored_resume_id": self.ids.tailored(),
                        "request_id": self.ids.request()}
        if op == "list_resumes":
            return op, {}
        if op == "get_job":
            return op, {"job_id": pick(self.jobs)}
        if op == "get_improvement_by_tailored_resume":
            return op, {"tailored_resume_id": pick(sorted(self.tailored))}
        if op in ("save_cover_letter", "get_resume") and self.tailored and rng.random() < 0.3:
            rid = pick(sorted(self.tailored))
        else:
            rid = pick(self.originals)
        if op == "save_cover_letter":
            return op, {"resume_id": rid, "text": pick(s.letters)}
        if op == "update_resume":
            return op, {"resume_id": rid, "fields": {"content": pick(s.contents),
                                                     "processed_data": pick(s.resume_data)}}
        return op, {"resume_id": rid}  # get_resume, set_master, delete_resume

    def observe(self, op: str, args: Mapping[str, Any], status: str) -> None:
        """Learn from one finished call (``status`` ok / fail / info)."""
        with self._lock:
            if op == "upload_resume" and status == "ok":
                self.originals.append(args["resume_id"])
            elif op == "create_job" and status == "ok":
                self.jobs.append(args["job_id"])
            elif op == "record_preview" and status == "ok":
                self.hashes[(args["job_id"], args["prompt_id"])] = args["preview_hash"]
            elif op == "confirm_improvement" and status == "ok":
                self.tailored[args["tailored_resume_id"]] = args["resume_id"]
            elif op == "delete_resume" and status != "info":
                rid = args["resume_id"]
                if rid in self.originals:
                    self.originals.remove(rid)
                gone = {rid}
                while True:
                    more = {t for t, p in self.tailored.items() if p in gone and t not in gone}
                    if not more:
                        break
                    gone |= more
                for t in gone:
                    self.tailored.pop(t, None)
