"""Locust load with real parallelism (threads and processes) against one store.

``LoadScenario`` is imported lazily: the worker processes import this package after gevent's
monkey-patching, the parent must be able to import it without pulling Locust in.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LoadScenario"]


def __getattr__(name: str) -> Any:
    if name == "LoadScenario":
        from scenarios.load.scenario import LoadScenario

        return LoadScenario
    raise AttributeError(name)
