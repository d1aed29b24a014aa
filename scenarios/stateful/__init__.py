"""Hypothesis stateful scenario over the resume contract (DESIGN section 6)."""

from scenarios.stateful.scenario import StatefulScenario

__all__ = ["StatefulScenario"]
