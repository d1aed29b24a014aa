"""The ``ResumeData`` schema (pydantic): what a processed or tailored resume must look like."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PersonalInfo(_Strict):
    name: str
    title: str | None = None
    email: str | None = None
    phone: str | None = None
    location: str | None = None
    website: str | None = None
    linkedin: str | None = None
    github: str | None = None


class WorkExperience(_Strict):
    title: str
    company: str
    location: str | None = None
    years: str | None = None
    description: list[str] = []


class Education(_Strict):
    institution: str
    degree: str
    years: str | None = None
    description: str | None = None


class PersonalProject(_Strict):
    name: str
    role: str | None = None
    years: str | None = None
    description: list[str] = []


class Additional(_Strict):
    technicalSkills: list[str] = []
    languages: list[str] = []
    certificationsTraining: list[str] = []
    awards: list[str] = []


class ResumeData(_Strict):
    personalInfo: PersonalInfo
    summary: str = ""
    workExperience: list[WorkExperience] = []
    education: list[Education] = []
    personalProjects: list[PersonalProject] = []
    additional: Additional = Additional()


def validate_resume_data(data: Mapping[str, Any] | Any) -> tuple[str, str] | None:
    """Return ``(field_path, message)`` of the first schema error, or None when ``data`` is valid."""
    if not isinstance(data, Mapping):
        return "", f"expected an object, got {type(data).__name__}"
    try:
        ResumeData.model_validate(dict(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        path = ".".join(str(p) for p in err["loc"])
        return path, err["msg"]
    return None


def is_valid_resume_data(data: Any) -> bool:
    return validate_resume_data(data) is None
