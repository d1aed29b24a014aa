"""Shared fixtures: adapters on fresh locations (files in tmp_path, a schema per test on the real
PostgreSQL server). Postgres tests skip locally when no server answers, but fail under CI=true."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from harness.contract import StorageAdapter
from harness.faults import FaultController
from harness.registry import resolve

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
ALL_ADAPTERS = ("tinydb-legacy", "tinydb-locked", "sqlite", "postgres")
CORRECT_ADAPTERS = ("tinydb-locked", "sqlite", "postgres")
SQL_ADAPTERS = ("sqlite", "postgres")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec and "postgres" in [str(v) for v in callspec.params.values()]:
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    dsn = os.environ.get("HARNESS_TEST_DSN", DEFAULT_PG_DSN)
    try:
        import psycopg

        with psycopg.connect(dsn, connect_timeout=3) as conn:
            conn.execute("select 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "no server"
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL not reachable under CI ({exc}); .ci/run must start it")
        pytest.skip(f"PostgreSQL not reachable at {dsn}: {exc}")
    return dsn


AdapterFactory = Callable[..., StorageAdapter]


@pytest.fixture
def make_adapter(tmp_path, request) -> Iterator[AdapterFactory]:
    """``make_adapter(name, faults=None, location=None)``: open an adapter on a fresh location
    (or re-open ``location``). Everything opened is closed and dropped after the test."""
    opened: list[StorageAdapter] = []
    locations: list[tuple[type[StorageAdapter], str]] = []

    def factory(name: str, faults: FaultController | None = None,
                location: str | None = None) -> StorageAdapter:
        cls = resolve(name)
        if location is None:
            tag = f"t_{uuid.uuid4().hex[:12]}"
            root = request.getfixturevalue("pg_dsn") if cls.location_kind == "server" else str(tmp_path)
            location = cls.fresh_location(root, tag)
            locations.append((cls, location))
        adapter = cls(location, faults)
        opened.append(adapter)
        return adapter

    yield factory
    for adapter in opened:
        try:
            adapter.close()
        except Exception:  # noqa: BLE001 - best effort during teardown
            pass
    for cls, location in locations:
        cls.drop_location(location)
