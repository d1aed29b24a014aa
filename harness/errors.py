"""The errors every adapter raises the same way (DESIGN section 3)."""

from __future__ import annotations


class ContractError(Exception):
    """Base of the errors every adapter raises the same way."""


class NotFound(ContractError):
    """The resume, job or improvement does not exist."""


class Conflict(ContractError):
    """The request contradicts stored state (e.g. a preview hash not the one recorded)."""


class InvalidData(ContractError):
    """Input fails the ResumeData schema; ``field`` names the offending field path."""

    def __init__(self, field_path: str, message: str = "") -> None:
        self.field = field_path
        super().__init__(f"{field_path}: {message}" if message else field_path)


class StorageError(ContractError):
    """The store failed; the outcome of the operation is unknown."""


class ConfigError(Exception):
    """Bad user input to the harness itself: unknown adapter, bad DSN (exit status 2)."""
