"""The accounts contract (the SQLite schema audit): records, snapshot, time and email rules, and
the adapter interface every accounts backend implements.

Tables: users (``user_id``, ``email`` unique case-insensitively, ``is_anonymous``,
``created_at``), sessions (``session_id``, ``user_id``, ``created_at``), CV uploads (``job_id``
unique, ``user_id``, ``file_hash``, ``filename``, ``created_at``) and the extraction cache
(``file_hash``, ``data``, ``confidence``, ``access_count``). Sessions and uploads reference
their user; deleting a user deletes them with it (``ON DELETE CASCADE``).

Ids are chosen by the caller and times are passed explicitly where the contract depends on them
(session ``created_at``, cleanup's ``now``) so that runs replay exactly.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from harness.errors import (  # noqa: F401 - re-exported as part of the contract
    Conflict,
    InvalidData,
    NotFound,
    StorageError,
)
from harness.store import Store

FAMILY = "accounts"
#: An extraction is cached only when its confidence is strictly greater than this.
CACHE_THRESHOLD = 0.75

OPERATIONS: tuple[str, ...] = (
    "create_user", "get_user", "delete_user", "create_session", "cleanup_sessions",
    "create_upload", "get_upload", "transfer_cv_ownership", "cache_extraction",
    "get_cached_extraction",
)
#: ``get_cached_extraction`` counts the read, so it writes too.
WRITE_OPERATIONS: frozenset[str] = frozenset(OPERATIONS) - {"get_user", "get_upload"}


# --------------------------------------------------------------------------- rules


def normalize_email(email: str) -> str:
    """The key emails are unique under: surrounding blanks removed, lower-cased."""
    return email.strip().lower()


def check_email(email: Any) -> str:
    """``email`` if it looks like one (a string with text on both sides of one ``@``)."""
    if not isinstance(email, str):
        raise InvalidData("email", "must be a string")
    local, at, domain = email.strip().partition("@")
    if not at or not local or not domain or "@" in domain:
        raise InvalidData("email", f"not an email address: {email!r}")
    return email


def parse_time(value: Any, what: str = "created_at") -> datetime:
    """An ISO 8601 timestamp as an aware UTC datetime. Accepted: ``T`` or a space between date
    and time, ``Z`` or a numeric offset; no offset means UTC. Anything else is InvalidData."""
    if not isinstance(value, str):
        raise InvalidData(what, "must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidData(what, f"not an ISO 8601 timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_time(value: datetime) -> str:
    """The canonical form a correct store returns: UTC, microseconds, ``+00:00``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def cleanup_cutoff(older_than_days: int, now: str) -> datetime:
    """Sessions created strictly before this instant are expired for ``cleanup_sessions``."""
    return parse_time(now, "now") - timedelta(days=older_than_days)


def is_expired(created_at: str, older_than_days: int, now: str) -> bool:
    """A session is expired when it is strictly older than ``older_than_days`` days at ``now``;
    one exactly that old is kept."""
    return parse_time(created_at) < cleanup_cutoff(older_than_days, now)


def check_cleanup_args(older_than_days: Any, now: Any) -> None:
    if not isinstance(older_than_days, int) or isinstance(older_than_days, bool) \
            or older_than_days < 0:
        raise InvalidData("older_than_days", "must be a non-negative integer")
    parse_time(now, "now")


def check_confidence(confidence: Any) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) \
            or not 0.0 <= float(confidence) <= 1.0:
        raise InvalidData("confidence", "must be a number within [0, 1]")
    return float(confidence)


def now_iso() -> str:
    return format_time(datetime.now(UTC))


# --------------------------------------------------------------------------- records


@dataclass
class User:
    user_id: str
    email: str
    is_anonymous: bool = False
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Session:
    session_id: str
    user_id: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Upload:
    job_id: str
    user_id: str
    file_hash: str
    filename: str
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CacheEntry:
    file_hash: str
    data: Any
    confidence: float
    access_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Snapshot:
    """Every row of every table, read consistently. ``uploads`` is a list: a store without a
    unique job id could hold one upload twice, and the invariants must see it."""

    users: dict[str, User] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    uploads: list[Upload] = field(default_factory=list)
    cache: dict[str, CacheEntry] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"users": {k: v.to_dict() for k, v in sorted(self.users.items())},
                "sessions": {k: v.to_dict() for k, v in sorted(self.sessions.items())},
                "uploads": [u.to_dict() for u in sorted(self.uploads,
                                                         key=lambda u: (u.job_id, u.user_id))],
                "cache": {k: v.to_dict() for k, v in sorted(self.cache.items())}}


# --------------------------------------------------------------------------- the adapter


class AccountsStore(Store):
    """An accounts backend. Every operation is one unit of work; errors: ``NotFound``,
    ``Conflict``, ``InvalidData`` (nothing changed) or ``StorageError`` (outcome unknown)."""

    family: ClassVar[str] = FAMILY
    operations: ClassVar[tuple[str, ...]] = OPERATIONS
    write_operations: ClassVar[frozenset[str]] = WRITE_OPERATIONS

    @abc.abstractmethod
    def snapshot(self) -> Snapshot:
        """Every row of every table, read in one consistent view."""

    # -- users
    @abc.abstractmethod
    def create_user(self, user_id: str, email: str, is_anonymous: bool = False) -> User:
        """A new user. ``InvalidData`` for a malformed email; ``Conflict`` when ``user_id``
        exists or another user has the same email (compared by :func:`normalize_email`), also
        when both sign up at once. The email is stored as given."""

    @abc.abstractmethod
    def get_user(self, user_id: str) -> User:
        """The user or ``NotFound``."""

    @abc.abstractmethod
    def delete_user(self, user_id: str) -> None:
        """Delete the user with its sessions and uploads in the same unit (cascade);
        ``NotFound`` when missing."""

    # -- sessions
    @abc.abstractmethod
    def create_session(self, session_id: str, user_id: str, created_at: str) -> Session:
        """A session of an existing user (``NotFound`` otherwise) created at ``created_at``
        (see :func:`parse_time`; ``InvalidData`` when unparseable); ``Conflict`` when
        ``session_id`` exists."""

    @abc.abstractmethod
    def cleanup_sessions(self, older_than_days: int, now: str) -> int:
        """Remove exactly the sessions strictly older than ``older_than_days`` days at ``now``
        (:func:`is_expired`, compared as instants whatever the offsets and formats given),
        in one unit; return how many were removed."""

    # -- uploads
    @abc.abstractmethod
    def create_upload(self, job_id: str, user_id: str, file_hash: str, filename: str) -> Upload:
        """A CV upload owned by an existing user (``NotFound`` otherwise); ``Conflict`` when
        ``job_id`` exists."""

    @abc.abstractmethod
    def get_upload(self, job_id: str) -> Upload:
        """The upload or ``NotFound``."""

    @abc.abstractmethod
    def transfer_cv_ownership(self, job_id: str, new_user_id: str) -> Upload:
        """Give the upload to ``new_user_id`` in one unit. ``NotFound`` when the upload or the
        new user is missing, ``Conflict`` when its current owner is not anonymous (checked
        under a lock, so of two concurrent transfers of one upload to registered users at most
        one succeeds). A transfer to its current owner changes nothing and succeeds.
        The upload belongs to exactly one existing user before and after."""

    # -- extraction cache
    @abc.abstractmethod
    def cache_extraction(self, file_hash: str, data: Any, confidence: float) -> bool:
        """Store ``data`` for ``file_hash`` only when ``confidence > CACHE_THRESHOLD``
        (``0.75`` itself is not stored) and return whether it was stored. An existing entry
        gets the new data and confidence and keeps its access count. ``InvalidData`` for a
        confidence outside [0, 1]."""

    @abc.abstractmethod
    def get_cached_extraction(self, file_hash: str) -> CacheEntry:
        """The entry with its ``access_count`` incremented by this read (atomically: every
        acknowledged read counts exactly once); ``NotFound`` when nothing is cached."""
