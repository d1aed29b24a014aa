"""The ``postgres`` adapter: the contract in one PostgreSQL schema (psycopg 3, SQLAlchemy Core).

A location is a DSN (``postgres://``, ``postgresql://`` or ``postgresql+<driver>://``; the driver
is always psycopg 3). Two query parameters are the harness' own and never reach the server:
``harness_schema=<name>`` (default ``resume_harness``) picks the schema every table lives in, set
as the connection's ``search_path``; ``harness_allow_any_database=1`` lifts the guard that
refuses a database whose name does not contain ``test``.

Locking: writes run in READ COMMITTED. upload_resume / set_master / delete_resume first take
``pg_advisory_xact_lock`` on a key derived from the schema name, so mastership changes serialize
and each sees the previous one committed; the other writes lock only the rows they read
(``FOR NO KEY UPDATE`` / ``FOR SHARE``). Reads run in REPEATABLE READ: one snapshot. Deadlocks and
serialization failures are retried.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import psycopg
from psycopg.conninfo import make_conninfo
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError

from adapters.sql_common import EXCLUSIVE, READ, Mode, SQLStore, metadata
from harness.errors import ConfigError
from harness.faults import FaultController
from harness.redact import redact

SCHEMA_PARAM = "harness_schema"
ALLOW_PARAM = "harness_allow_any_database"
DEFAULT_SCHEMA = "resume_harness"
_RETRY_SQLSTATES = frozenset({"40001", "40P01", "55P03"})  # serialization, deadlock, lock n/a
_RESERVED = frozenset({"public", "information_schema"})
_TRUE = frozenset({"1", "true", "yes", "on"})


def schema_name(tag: str) -> str:
    """``tag`` as a safe schema name: ``[a-z0-9_]``, starting with a letter or ``_``, never a
    system schema or ``public``, at most 63 characters."""
    name = re.sub(r"[^a-z0-9_]", "_", tag.lower())
    if not name or not (name[0].isalpha() or name[0] == "_") or name in _RESERVED \
            or name.startswith("pg_"):
        name = f"h_{name}"
    return name[:63]


def _last(value: str | tuple[str, ...]) -> str:
    return value[-1] if isinstance(value, tuple) else value


@dataclass(frozen=True)
class PgTarget:
    """A parsed location: the server URL (psycopg driver, harness parameters removed), the
    schema, and the DSN as it may be shown (password redacted)."""

    url: URL
    schema: str
    shown: str

    def conninfo(self, **extra: Any) -> str:
        """A libpq connection string for psycopg."""
        params: dict[str, Any] = {k: _last(v) for k, v in self.url.query.items()}
        for key, value in (("host", self.url.host), ("port", self.url.port),
                           ("user", self.url.username), ("password", self.url.password),
                           ("dbname", self.url.database)):
            if value is not None:
                params[key] = value
        params.update(extra)
        return make_conninfo("", **params)

    @property
    def lock_key(self) -> int:
        """The advisory lock key of this store (a signed 64-bit hash of the schema name)."""
        digest = hashlib.blake2b(f"resume_harness:{self.schema}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big", signed=True)


def parse_dsn(dsn: str, *, guard: bool = True) -> PgTarget:
    """Parse a location; ``ConfigError`` (one line, password redacted) when it is malformed or,
    with ``guard``, names a database without ``test`` in it and does not allow any database."""
    if not isinstance(dsn, str) or not dsn.strip():
        raise ConfigError("PostgreSQL DSN is empty")
    try:
        url = make_url(dsn.strip())
    except Exception as exc:  # noqa: BLE001 - ArgumentError, ValueError (bad port), ...
        raise ConfigError(f"malformed PostgreSQL DSN {redact(dsn)!r}: "
                          f"{redact(str(exc)).splitlines()[0]}") from None
    shown = redact(url.render_as_string(hide_password=True))
    if url.drivername.split("+")[0] not in ("postgres", "postgresql"):
        raise ConfigError(f"not a PostgreSQL DSN: {shown} (expected postgresql://...)")
    query = dict(url.query)
    schema = schema_name(_last(query.pop(SCHEMA_PARAM, DEFAULT_SCHEMA)))
    allow = _last(query.pop(ALLOW_PARAM, "0")).strip().lower() in _TRUE
    if guard and not allow and "test" not in (url.database or "").lower():
        raise ConfigError(
            f"refusing PostgreSQL database {url.database or '(none)'!r} at {shown}: its name does "
            f"not contain 'test' (use --allow-any-database to override)")
    return PgTarget(url=url.set(drivername="postgresql+psycopg", query=query), schema=schema,
                    shown=shown)


def check_dsn(dsn: str) -> None:
    """The DSN guard alone: ``ConfigError`` for a malformed or non-test DSN."""
    parse_dsn(dsn)


def check_reachable(dsn: str, timeout: float = 3) -> None:
    """``ConfigError("cannot reach PostgreSQL at ...: <reason>")`` unless a connection succeeds
    within about ``timeout`` seconds (libpq rounds it up to whole seconds, at least 2)."""
    target = parse_dsn(dsn, guard=False)
    try:
        with psycopg.connect(target.conninfo(connect_timeout=max(2, math.ceil(timeout))),
                             autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(f"cannot reach PostgreSQL at {target.shown}: {redact(reason)}") from None


def _admin(target: PgTarget, sql: str) -> None:
    try:
        conn = psycopg.connect(target.conninfo(connect_timeout=10), autocommit=True)
    except psycopg.OperationalError as exc:
        reason = redact(" ".join(str(exc).split()) or type(exc).__name__)
        raise ConfigError(f"cannot reach PostgreSQL at {target.shown}: {reason}") from None
    with conn:
        conn.execute("SET lock_timeout = '15s'")
        conn.execute(sql)


class PostgresAdapter(SQLStore):
    """PostgreSQL store in its own schema, real transactions and constraints (all guarantees)."""

    name: ClassVar[str] = "postgres"
    location_kind: ClassVar[str] = "server"

    def __init__(self, location: str, faults: FaultController | None = None) -> None:
        self.target = parse_dsn(location)
        self.schema = self.target.schema
        super().__init__(location, faults)

    # -- backend hooks
    def _create_engine(self) -> Engine:
        query = self.target.url.query
        options = " ".join(filter(None, [_last(query.get("options", "")),
                                         f"-c search_path={self.schema}"]))
        connect_args: dict[str, Any] = {"options": options}
        if "connect_timeout" not in query:
            connect_args["connect_timeout"] = 10
        if "application_name" not in query:
            connect_args["application_name"] = "resume-harness"
        return create_engine(self.target.url, pool_size=2, max_overflow=3, pool_timeout=60,
                             isolation_level="READ COMMITTED", connect_args=connect_args)

    def _connection_options(self, mode: Mode) -> dict[str, Any]:
        return {"isolation_level": "REPEATABLE READ"} if mode == READ else {}

    def _begin(self, conn: Connection, mode: Mode) -> None:
        if mode == EXCLUSIVE:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": self.target.lock_key})

    def _create_schema(self, conn: Connection) -> None:
        conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        metadata.create_all(conn)

    def _driver_errors(self) -> tuple[type[BaseException], ...]:
        return (psycopg.Error,)

    def _retryable(self, exc: BaseException) -> bool:
        orig = exc.orig if isinstance(exc, DBAPIError) else exc
        return getattr(orig, "sqlstate", None) in _RETRY_SQLSTATES

    # -- locations
    @classmethod
    def validate_root(cls, root: str) -> None:
        """``ConfigError`` for a malformed, non-test (unless allowed) or unreachable DSN."""
        parse_dsn(root)
        check_reachable(root)

    @classmethod
    def fresh_location(cls, root: str, tag: str) -> str:
        """``root`` with ``harness_schema=<tag, sanitized>``; the schema is created empty."""
        target = parse_dsn(root)
        schema = schema_name(tag)
        _admin(target, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE; CREATE SCHEMA "{schema}"')
        url = make_url(root.strip()).update_query_dict({SCHEMA_PARAM: schema})
        return url.render_as_string(hide_password=False)

    @classmethod
    def drop_location(cls, location: str) -> None:
        """Drop the location's schema and everything in it (best effort, like ``rmtree``)."""
        target = parse_dsn(location)
        try:
            _admin(target, f'DROP SCHEMA IF EXISTS "{target.schema}" CASCADE')
        except (psycopg.Error, ConfigError):
            pass
