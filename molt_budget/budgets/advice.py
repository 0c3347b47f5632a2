"""For each failing KPI, the one `molt-budget bump` that would make this pull request pass.

Why here and not in a renderer: the advice must agree with the gate. A fail decided by the
limit needs a higher limit (a lower target would not help); a fail decided by the change
budget needs a looser `max_increase_*` (the limit was never reached); a KPI failing both ways
needs both in one command. The justification is a placeholder `bump` refuses to write as is,
so accepting a regression always takes a sentence from a person.
"""

from __future__ import annotations

import math
import re
import shlex
from typing import Any

from molt_budget import fmt
from molt_budget.compare.model import DEFAULT_TIMED_MAX_INCREASE_PCT
from molt_budget.structs import Struct

PLACEHOLDER = "TODO: say why this change is accepted"
HEADROOM_PCT = 5.0
_SAFE_ID = re.compile(r"[A-Za-z0-9_.\-]+\Z")


def budget_status_of(k: dict[str, Any]) -> str:
    """For reports written before rows carried `budget_status`: the budget verdict from the values."""
    head = k.get("head")
    if not fmt.is_number(head):
        return ""
    lower = k.get("direction", "lower") == "lower"

    def past(bound: Any) -> bool:
        return fmt.is_number(bound) and (head > bound if lower else head < bound)

    return "fail" if past(k.get("limit")) else "yellow" if past(k.get("target")) else "pass"


def is_placeholder(reason: str) -> bool:
    return " ".join(reason.split()).upper().startswith("TODO")


class Advice(Struct):
    kpi: str
    flags: list[tuple[str, str]]          # (--flag, value) in the order they are given

    def command(self, split: bool = False) -> str:
        """The shell command; `split` puts `--reason` on a continuation line (80-column terminals)."""
        parts = ["molt-budget", "bump", self.kpi]
        for flag, value in self.flags:
            parts += [flag, value]
        return " ".join(shlex.quote(p) for p in parts) + (" \\\n    " if split else " ") + f'--reason "{PLACEHOLDER}"'


def _worse(row: dict[str, Any], delta: float) -> float:
    return delta if row.get("direction", "lower") == "lower" else -delta


def _loosened(value: float, row: dict[str, Any]) -> float:
    direction = str(row.get("direction") or "lower")
    integral = row.get("class") != "timed" and float(value).is_integer()
    from molt_budget.budgets.edit import round_budget, with_headroom  # the editor's rounding; a pass never needs it

    return round_budget(with_headroom(value, HEADROOM_PCT, direction), direction, integral)


def _change_flags(row: dict[str, Any]) -> list[tuple[str, str]]:
    """The change budget this PR's change exceeds, loosened just past it."""
    if not (fmt.is_number(row.get("base")) and fmt.is_number(row.get("head"))):
        return []
    base, head = float(row["base"]), float(row["head"])
    if row.get("class") == "timed":
        allowed = float(row["max_increase_pct"]) if fmt.is_number(row.get("max_increase_pct")) else DEFAULT_TIMED_MAX_INCREASE_PCT
        if fmt.is_number(row.get("ci_high")):
            worst = float(row["ci_high"])
        elif base:
            worst = head / base
        else:
            return []
        needed = (worst - 1) * 100
        return _flag("--max-increase-pct", needed * 1.1 + 1) if needed > allowed * 0.5 else []
    worse = _worse(row, head - base)
    flags = []
    if fmt.is_number(row.get("max_increase_abs")) and worse > row["max_increase_abs"]:
        flags += _flag("--max-increase-abs", worse)
    if fmt.is_number(row.get("max_increase_pct")) and base and worse / abs(base) * 100 > row["max_increase_pct"]:
        flags += _flag("--max-increase-pct", worse / abs(base) * 100 + 1)
    return flags


def _flag(name: str, needed: float) -> list[tuple[str, str]]:
    """The flag loosening a change budget to `needed`, rounded up; none for a change past the
    floats (values at ±1e300 apart: no budget holds it, and ceil(inf) would raise)."""
    return [(name, fmt.plain(math.ceil(needed)))] if math.isfinite(needed) else []


def advise(row: dict[str, Any], results_path: str | None = None) -> Advice | None:
    """None when no budget edit can help (an error, a nondeterministic build) or nothing fails."""
    status = row.get("status")
    kpi = str(row.get("id") or "")
    if status not in ("fail", "yellow") or not _SAFE_ID.match(kpi) or not fmt.is_number(row.get("head")):
        return None
    head = float(row["head"])
    flags: list[tuple[str, str]] = []
    budget = row.get("budget_status") or budget_status_of(row)
    if budget == "fail" and fmt.is_number(row.get("limit")):
        flags.append(("--limit", fmt.plain(_loosened(head, row))))
    elif status == "yellow" and budget == "yellow" and fmt.is_number(row.get("target")):
        flags.append(("--target", fmt.plain(_loosened(head, row))))
    if "drifted" in str(row.get("reason") or "") and results_path:
        flags.append(("--from-results", results_path))
    flags += _change_flags(row) if status == "fail" or budget != status else []
    return Advice(kpi, flags) if flags else None
