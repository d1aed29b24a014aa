"""Deterministic test data builders (no Faker): ResumeData payloads, invalid payloads, texts."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from harness.contract import Snapshot
from harness.schema import is_valid_resume_data


def valid_resume_data(name: str = "Ada Lovelace", n: int = 0) -> dict[str, Any]:
    """A ResumeData-valid dict using every section; ``n`` varies the content deterministically."""
    data = {
        "personalInfo": {
            "name": name,
            "title": f"Engineer {n}",
            "email": f"person{n}@example.com",
            "phone": f"+44 20 7946 {n:04d}",
            "location": "London",
            "website": None,
            "linkedin": f"linkedin.com/in/person{n}",
            "github": f"github.com/person{n}",
        },
        "summary": f"Analytical engine programmer, version {n}.",
        "workExperience": [
            {
                "title": "Analyst",
                "company": f"Babbage & Co {n}",
                "location": "London",
                "years": "1842-1843",
                "description": ["Wrote the first algorithm", f"Translated notes ({n})"],
            }
        ],
        "education": [
            {"institution": "Home tutoring", "degree": "Mathematics", "years": "1830-1835",
             "description": None}
        ],
        "personalProjects": [
            {"name": "Note G", "role": "Author", "years": "1843", "description": ["Bernoulli numbers"]}
        ],
        "additional": {
            "technicalSkills": ["Mathematics", "Punched cards"],
            "languages": ["English", "French"],
            "certificationsTraining": [],
            "awards": [f"Award {n}"],
        },
    }
    assert is_valid_resume_data(data)
    return data


def improved_resume_data(n: int = 0) -> dict[str, Any]:
    """A tailored version of :func:`valid_resume_data`."""
    data = valid_resume_data(n=n)
    data["summary"] = f"Tailored summary {n}: algorithms for the analytical engine."
    data["additional"]["technicalSkills"].append(f"Skill for job {n}")
    assert is_valid_resume_data(data)
    return data


def improvements_list(n: int = 0) -> list[dict[str, Any]]:
    return [
        {"section": "summary", "original": "Analytical engine programmer.",
         "improved": f"Tailored summary {n}.", "reason": "matches keywords"},
        {"section": "additional.technicalSkills", "added": [f"Skill for job {n}"]},
    ]


def _without_personal_info() -> dict[str, Any]:
    data = valid_resume_data()
    del data["personalInfo"]
    return data


def _work_without_company() -> dict[str, Any]:
    data = valid_resume_data()
    del data["workExperience"][0]["company"]
    return data


def _summary_not_string() -> dict[str, Any]:
    data = valid_resume_data()
    data["summary"] = 42
    return data


def _extra_top_level() -> dict[str, Any]:
    data = valid_resume_data()
    data["hobbies"] = ["chess"]
    return data


#: (case id, payload, the field path below processed_data / improved_data that InvalidData names)
INVALID_RESUME_DATA: list[tuple[str, dict[str, Any], str]] = [
    ("no-personalInfo", _without_personal_info(), "personalInfo"),
    ("work-without-company", _work_without_company(), "workExperience.0.company"),
    ("summary-not-string", _summary_not_string(), "summary"),
    ("extra-field", _extra_top_level(), "hobbies"),
]


# -- texts that must round-trip exactly
UNICODE_TEXT = (
    "Zoë Ångström – naïve café, Straße; Ελληνικά; Русский; 中文简历; 日本語; 한국어; "
    "עברית مرحبا; emoji 📄✅🚀👩🏽‍💻; combining e\u0301; math ∑∫√∞; quotes \"'`; "
    "backslash \\ tab\t newline\n CRLF\r\n end"
)


def long_text(size: int = 100_000) -> str:
    """``size`` characters of deterministic, mixed ASCII / non-ASCII text."""
    unit = "Line {i:05d}: experienced engineer – Ünïcödé ✓ 中文.\n"
    parts: list[str] = []
    total = 0
    i = 0
    while total < size:
        line = unit.format(i=i)
        parts.append(line)
        total += len(line)
        i += 1
    return "".join(parts)[:size]


# -- snapshot helpers
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$")
TS = "<timestamp>"


def is_timestamp(value: Any) -> bool:
    """A :func:`harness.contract.now_iso` string (UTC, microseconds)."""
    if not isinstance(value, str) or not TIMESTAMP.match(value):
        return False
    datetime.fromisoformat(value)
    return True


def normalized(snapshot: Snapshot) -> dict[str, Any]:
    """``snapshot.to_dict()`` with every ``created_at`` / ``updated_at`` replaced by ``TS``
    (after checking each is a timestamp)."""
    out = snapshot.to_dict()
    for table in out.values():
        for record in table.values():
            for key in ("created_at", "updated_at"):
                if key in record:
                    assert is_timestamp(record[key]), f"{key}={record[key]!r} is not a now_iso timestamp"
                    record[key] = TS
    return out
