"""Adapter lookup (every family): by built-in name, by entry point (group ``resume_harness.adapters``), or by
``pkg.module:Class``. Unknown names raise :class:`ConfigError` with one clear line."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from importlib.metadata import entry_points

from harness import boundaries
from harness.errors import ConfigError
from harness.store import Store

ENTRY_POINT_GROUP = "resume_harness.adapters"

def builtin() -> dict[str, str]:
    """Every built-in adapter of every family: ``name -> "module:Class"``, in report order."""
    from harness.families import available as families

    return {name: spec for fam in families() for name, spec in fam.adapters.items()}


def embedded(families: Sequence[str] = ()) -> tuple[str, ...]:
    """The built-in adapters that need no server, of the given families (default: all)."""
    from harness.families import expand

    return tuple(name for fam in expand(families) for name in fam.embedded)


def _import(spec: str) -> type[Store]:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"adapter {spec!r}: cannot import module {module_name!r} ({exc})") from exc
    try:
        cls = getattr(module, attr)
    except AttributeError as exc:
        raise ConfigError(f"adapter {spec!r}: module {module_name!r} has no {attr!r}") from exc
    if not isinstance(cls, type):
        raise ConfigError(f"adapter {spec!r}: {attr!r} is not a class")
    return cls


def available() -> dict[str, str]:
    """Every adapter name known here: built-ins plus installed entry points."""
    found = builtin()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def resolve(spec: str) -> type[Store]:
    """The adapter class for a name or ``pkg.module:Class``."""
    boundaries.install()
    known = available()
    if spec in known:
        return _import(known[spec])
    if ":" in spec:
        return _import(spec)
    names = ", ".join(sorted(known))
    raise ConfigError(f"unknown adapter {spec!r}; known: {names} (or give pkg.module:Class)")


def adapter_name(cls: type[Store]) -> str:
    return getattr(cls, "name", "") or f"{cls.__module__}:{cls.__qualname__}"
