"""Errors that end a command with one clear line and a fixed exit code.

Exit codes are part of the CLI contract: 0 pass/yellow, 1 fail, 2 usage or
config error, 3 measurement error, 4 internal error (a bug in molt-budget: never a verdict,
so CI must fail on it even where it tolerates a failing verdict).
"""

from __future__ import annotations

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_CONFIG = 2
EXIT_MEASUREMENT = 3
EXIT_INTERNAL = 4


class BudgetError(Exception):
    """Base: carries the exit code the CLI should use."""

    exit_code = EXIT_CONFIG


class ConfigError(BudgetError):
    """Bad budgets file or bad arguments: the message names file:line where known."""

    exit_code = EXIT_CONFIG


class MeasurementError(BudgetError):
    """A lane or a collector could not produce a value."""

    exit_code = EXIT_MEASUREMENT


class CollectorError(MeasurementError):
    """A measurement file is missing, truncated or not in the expected format."""

    def __init__(self, path: object, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.detail = message
        self.line = line
        where = f" (line {line})" if line and f"line {line}" not in message else ""
        super().__init__(f"{self.path}: {message}{where}")


class EnvironmentFault(BudgetError):
    """The machine, not the input: a full disk, a read-only or unwritable output root, a corrupt
    history. The message names the path and what to do; measured samples are never lost."""

    exit_code = EXIT_MEASUREMENT


class LockTimeout(BudgetError):
    """Another molt-budget process holds the output root."""

    exit_code = EXIT_MEASUREMENT


def corrupt_history(path: object, detail: str) -> EnvironmentFault:
    """The one line for a history SQLite cannot read: what to do (move it aside, or its permissions)."""
    if "readonly" in detail or "read-only" in detail:
        return EnvironmentFault(f"{path}: the history database is read-only ({detail}): fix its permissions or pass --no-history")
    return EnvironmentFault(f"{path}: the history database is unreadable or corrupt ({' '.join(detail.split())[:200]}): "
                            f"move it aside (mv {path} {path}.corrupt) to start a new one")
