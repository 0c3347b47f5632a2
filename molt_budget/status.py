"""The one status order, verdict rule and exit code of molt-budget.

Why a module of its own, below every stage: the results a run records (history records) and
the report compare builds both carry statuses, and both must rank them the same way. Kept
here, at the bottom of the pipeline, results can use it without importing compare, and
`compare.model` re-exports every name so reporters keep one import.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import Any

from molt_budget.errors import EXIT_FAIL, EXIT_MEASUREMENT, EXIT_PASS, ConfigError


class Status(str, Enum):
    """A KPI's (or a budget change's, or the whole report's) status.

    Declared in severity order, least severe first: `not_comparable` is no finding, `error`
    means the gate could not judge, and a definite finding (`nondeterministic`, `fail`) wins
    over an error, because a regression seen is worth reporting even when another lane broke.
    """

    PASS = "pass"
    NOT_COMPARABLE = "not_comparable"
    YELLOW = "yellow"
    ERROR = "error"
    NONDETERMINISTIC = "nondeterministic"
    FAIL = "fail"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @property
    def offending(self) -> bool:
        """Needs a reviewer's eyes (annotated, listed first): everything but pass and not_comparable."""
        return self.severity >= Status.YELLOW.severity

    @property
    def verdict(self) -> Status:
        """What this status makes of the whole report: one of pass, yellow, error, fail."""
        if self is Status.NONDETERMINISTIC:
            return Status.FAIL
        if self is Status.NOT_COMPARABLE:
            return Status.PASS
        return self

    @classmethod
    def parse(cls, value: Any, where: str = "status") -> Status:
        try:
            return cls(value)
        except ValueError:
            known = ", ".join(s.value for s in cls)
            raise ConfigError(f"{where}: unknown status {value!r} (known: {known})") from None


_SEVERITY = {status: rank for rank, status in enumerate(Status)}
# Worst first: the order every table, list of reasons and count line uses.
BY_SEVERITY: tuple[Status, ...] = tuple(sorted(Status, key=lambda s: -s.severity))
VERDICT_STATUSES: tuple[Status, ...] = (Status.PASS, Status.YELLOW, Status.ERROR, Status.FAIL)


def worst(statuses: Iterable[Status | str], default: Status = Status.PASS) -> Status:
    """The most severe of `statuses` (strings are parsed), or `default` when there are none."""
    parsed = [Status.parse(s) for s in statuses]
    return max(parsed, key=lambda s: s.severity) if parsed else default


def overall(statuses: Iterable[Status | str]) -> Status:
    """The report's verdict from its KPIs' and budget changes' statuses: pass, yellow, error or fail."""
    return worst(statuses).verdict


def exit_code(status: Status | str) -> int:
    """The CLI's exit code for a verdict: 1 on a definite regression, 3 when the gate could not judge, else 0."""
    verdict = Status.parse(status).verdict
    if verdict is Status.FAIL:
        return EXIT_FAIL
    if verdict is Status.ERROR:
        return EXIT_MEASUREMENT
    return EXIT_PASS


def severity_key(status: Status | str) -> int:
    """Sort key, worst first (an unknown status sorts last)."""
    try:
        return -Status(status).severity
    except ValueError:
        return 1
