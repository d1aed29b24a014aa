"""What every adapter of every family shares: identity, guarantees, fault points, locations and
lifecycle. The resume contract (:class:`harness.contract.StorageAdapter`) and the other families'
contracts (:mod:`harness.families`) subclass :class:`Store` and add their own operations.
"""

from __future__ import annotations

import abc
import os
import shutil
from collections.abc import Mapping
from typing import Any, ClassVar

from harness import boundaries
from harness.faults import NO_FAULTS, FaultController

# Guarantees an adapter may claim. ``contract`` is not one of them: plain, fault-free,
# single-threaded correctness every adapter owes.
ATOMIC = "atomic"
THREAD_SAFE = "thread-safe"
PROCESS_SAFE = "process-safe"
CRASH_SAFE = "crash-safe"
DURABLE = "durable"
GUARANTEES: tuple[str, ...] = (ATOMIC, THREAD_SAFE, PROCESS_SAFE, CRASH_SAFE, DURABLE)
CONTRACT = "contract"


class Store(abc.ABC):
    """One storage backend of one family.

    Subclasses set ``name``, ``family``, ``guarantees``, ``operations`` (what a
    :class:`~harness.client.RecordingClient` may call), ``write_operations`` (those that change
    state) and ``fault_points`` (operation -> the named points it passes, in order, each
    ``"<operation>.<step>"``), and call ``self.faults.point(name)`` at every step boundary of a
    multi-step operation. ``location`` is a directory for file stores and a DSN for servers;
    opening a new instance on the same location is how a restart after a crash is simulated.
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    guarantees: ClassVar[frozenset[str]] = frozenset()
    operations: ClassVar[tuple[str, ...]] = ()
    write_operations: ClassVar[frozenset[str]] = frozenset()
    fault_points: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    #: "file" for stores in a directory (torn writes apply), "server" for DSN-located stores.
    location_kind: ClassVar[str] = "file"
    #: The automatic storage-boundary points its operations pass (for listing).
    boundary_points: ClassVar[tuple[str, ...]] = ("write#k",)

    def __init__(self, location: str, faults: FaultController | None = None) -> None:
        boundaries.install()
        self.location = location
        self.faults = faults if faults is not None else NO_FAULTS

    # -- lifecycle
    def close(self) -> None:  # noqa: B027 - optional for stores holding nothing open
        """Release connections and file handles."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Empty this adapter's own tables only."""

    @abc.abstractmethod
    def snapshot(self) -> Any:
        """Every record of every table, read consistently (a record with ``to_dict()``)."""

    # -- locations
    @classmethod
    def fresh_location(cls, root: str, tag: str) -> str:
        """A new, empty location for this adapter. ``root`` is a directory for file stores and
        the DSN for server stores; ``tag`` is unique per run and instance."""
        path = os.path.join(root, tag)
        os.makedirs(path, exist_ok=True)
        return path

    @classmethod
    def validate_root(cls, root: str) -> None:
        """Raise :class:`ConfigError` when ``root`` cannot host this adapter (a bad or unreachable
        DSN, a database that does not look like a test database)."""

    @classmethod
    def drop_location(cls, location: str) -> None:
        """Remove what ``fresh_location`` made (file stores: the directory)."""
        shutil.rmtree(location, ignore_errors=True)

    # -- helpers for implementations
    @classmethod
    def all_fault_points(cls) -> list[str]:
        return [p for op in cls.fault_points.values() for p in op]

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
