"""Domain data for workloads: seeded ids and realistic resume / job content made with Faker.

Everything is a pure function of the seed so that runs, reproductions and schedules replay.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from typing import Any

from faker import Faker

LOCALES = ("en_US", "de_DE", "fr_FR", "ja_JP", "ru_RU", "ar_AA")


class IdFactory:
    """Deterministic, readable ids: ``r-0001``, ``j-0001``, ``t-0001``, ``q-0001``."""

    def __init__(self, prefix: str = "") -> None:
        self._prefix = prefix
        self._counters: dict[str, itertools.count] = {}

    def new(self, kind: str) -> str:
        n = next(self._counters.setdefault(kind, itertools.count(1)))
        return f"{self._prefix}{kind}-{n:04d}"

    def resume(self) -> str:
        return self.new("r")

    def job(self) -> str:
        return self.new("j")

    def tailored(self) -> str:
        return self.new("t")

    def request(self) -> str:
        return self.new("q")


def preview_hash(job_id: str, prompt_id: str, salt: str | int = "") -> str:
    return hashlib.sha256(f"{job_id}|{prompt_id}|{salt}".encode()).hexdigest()[:16]


class DataFactory:
    """Faker-made resumes and jobs: real names, several scripts, sometimes very long text."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.fake = Faker(list(LOCALES))
        self.fake.seed_instance(seed)

    def resume_data(self) -> dict[str, Any]:
        """A dict that passes the ResumeData schema."""
        f = self.fake
        return {
            "personalInfo": {"name": f.name(), "title": f.job(), "email": f.email(),
                             "phone": f.phone_number(), "location": f.city(),
                             "website": None, "linkedin": None, "github": None},
            "summary": f.paragraph(nb_sentences=3),
            "workExperience": [{"title": f.job(), "company": f.company(), "location": f.city(),
                                "years": f"{2010 + i}-{2012 + i}",
                                "description": [f.sentence() for _ in range(2)]}
                               for i in range(self.rng.randint(0, 3))],
            "education": [{"institution": f.company(), "degree": "BSc", "years": "2005-2009",
                           "description": None}],
            "personalProjects": [{"name": f.word(), "role": None, "years": None,
                                  "description": [f.sentence()]}],
            "additional": {"technicalSkills": [f.word() for _ in range(3)], "languages": [],
                           "certificationsTraining": [], "awards": []},
        }

    def invalid_resume_data(self) -> dict[str, Any]:
        """A dict that fails ResumeData in one field (which one varies)."""
        data = self.resume_data()
        breakage = self.rng.randrange(4)
        if breakage == 0:
            del data["personalInfo"]
        elif breakage == 1:
            data["personalInfo"]["name"] = 42
        elif breakage == 2:
            data["workExperience"] = [{"title": "x"}]
        else:
            data["additional"] = "not an object"
        return data

    def resume_content(self, long: bool = False) -> str:
        paragraphs = self.fake.paragraphs(nb=60 if long else 3)
        text = "\n\n".join(paragraphs)
        if long:
            text = (text + "\n") * 20  # roughly 100 KB
        return f"# {self.fake.name()}\n\n{text}"

    def filename(self) -> str:
        return f"{self.fake.name()} – CV {self.rng.randint(1, 99)}.md"

    def job_content(self) -> str:
        return f"{self.fake.job()} at {self.fake.company()}\n\n{self.fake.paragraph()}"

    def keywords(self) -> list[str]:
        return [self.fake.word() for _ in range(self.rng.randint(1, 5))]

    def improvements(self) -> list[dict[str, Any]]:
        return [{"suggestion": self.fake.sentence(), "lineNumber": self.rng.randint(1, 40)}]
