"""The crash explorer: every write operation x every fault point -> crash there -> check."""

from scenarios.crash.explorer import CrashScenario

__all__ = ["CrashScenario"]
