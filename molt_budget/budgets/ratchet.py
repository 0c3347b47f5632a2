"""Ratchet: when main measures well under a KPI's target, propose the tighter budget.

Budgets only drift looser on their own (nobody lowers a ceiling that no longer hurts);
the ratchet turns an improvement into the new budget, as a reviewable YAML diff.
"""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path
from typing import Any

from molt_budget.budgets.edit import (
    DELETE,
    format_number,
    is_tighter,
    rewrite_many,
    round_budget,
    short_number,
    with_headroom,
)
from molt_budget.errors import ConfigError
from molt_budget.structs import Struct

DEFAULT_MARGIN_PCT = 10.0          # `ratchet --margin` default; check's hint uses the same


class Ratchet(Struct):
    kpi: str
    old_target: float | None
    new_target: float | None
    old_limit: float | None
    new_limit: float | None
    measured: float


def propose_ratchets(config: Any, measured: dict[str, float], margin_pct: float) -> list[Ratchet]:
    """KPIs measured more than margin under their target (limit if no target): new target = measured + margin.

    The limit keeps its ratio to the target. Higher-is-better KPIs mirror it: the measurement
    minus margin must still sit above the target. A measured 0 proposes nothing (no scale).
    """
    out: list[Ratchet] = []
    m = margin_pct / 100
    for kpi in config.kpis.values():
        value = measured.get(kpi.id)
        bound = kpi.target if kpi.target is not None else kpi.limit
        if value is None or bound is None or not math.isfinite(value):
            continue
        lower = kpi.direction == "lower"
        if lower and value <= 0:
            continue   # nothing measured gives no scale: a zero budget would fail on any noise
        well_under = value < bound * (1 - m) if lower else value * (1 - m) > bound
        if not well_under:
            continue
        integral = kpi.kpi_class != "timed" and float(value).is_integer() and float(bound).is_integer()
        new_bound = round_budget(with_headroom(value, margin_pct, kpi.direction), kpi.direction, integral)
        if not is_tighter(new_bound, bound, kpi.direction):
            continue
        if kpi.target is None:
            out.append(Ratchet(kpi.id, None, None, kpi.limit, new_bound, value))
            continue
        new_limit = kpi.limit
        if kpi.limit is not None and kpi.target:
            scaled = round_budget(new_bound * kpi.limit / kpi.target, kpi.direction,
                                  integral and float(kpi.limit).is_integer())
            if is_tighter(scaled, kpi.limit, kpi.direction):
                new_limit = scaled
        out.append(Ratchet(kpi.id, kpi.target, new_bound, kpi.limit, new_limit, value))
    return out


def apply_ratchets(
    config_path: str | Path,
    ratchets: list[Ratchet],
    *,
    margin_pct: float,
    today: date,
    source: str,
    commit: str | None = None,
    write: bool = False,
) -> str:
    """The unified diff of the ratchets (written to the file with write=True); a ratchet also closes a waiver."""
    from molt_budget.config import load_config

    path = Path(config_path)
    config = load_config(path)
    changes: dict[str, dict[str, Any]] = {}
    for r in ratchets:
        kpi = config.kpis[r.kpi]
        updates: dict[str, Any] = {}
        if r.new_target is not None and r.new_target != r.old_target:
            updates["target"] = r.new_target
        if r.new_limit is not None and r.new_limit != r.old_limit:
            updates["limit"] = r.new_limit
        sign = "+" if kpi.direction == "lower" else "-"
        shown = f"{format_number(short_number(r.measured))} {kpi.unit}".strip()
        updates["basis"] = f"ratcheted to measured {shown} {sign} {margin_pct:g}% margin ({source})"
        updates["seeded_from"] = {"value": short_number(r.measured), "commit": (commit or "unknown")[:12],
                                  "date": today.isoformat(), "headroom_pct": short_number(margin_pct)}
        updates["updated"] = today.isoformat()
        if kpi.expires:
            updates["expires"] = DELETE
        changes[r.kpi] = updates
    if not changes:
        return ""
    return rewrite_many(path, changes, write=write)


class MainMeasurements(Struct):
    values: dict[str, float]
    run_id: str
    commit: str | None
    source: str


def latest_main_measurements(config: Any) -> MainMeasurements:
    """The newest main record in history: on main's first-parent history, clean tree, every
    lane complete, quiet host. A branch run, a dirty tree or a noisy host never sets budgets."""
    from molt_budget.results.history import History

    db = config.resolve(config.settings.history)
    main = config.settings.main_branch
    if not db.exists():
        raise ConfigError(f"no history at {db}: pass --results RESULTS.json, or record runs with `molt-budget check` on {main}")
    record = History(db, main).latest_main()
    if record is None:
        raise ConfigError(f"{db}: no main record (a complete, clean, quiet run of a commit on {main}); "
                          "pass --results RESULTS.json, or run `molt-budget check` on main")
    return main_measurements(config, record)


def main_measurements(config: Any, record: Any) -> MainMeasurements:
    """What `ratchet` reads from a main record: each KPI's judged value, else its lane's measurement."""
    values: dict[str, float] = {k.id: float(k.value) for k in record.kpis if k.value is not None}
    for kpi in config.kpis.values():
        if kpi.id not in values:
            value = record.lane_value(kpi.lane, kpi.metric, kpi.aggregate)
            if value is not None:
                values[kpi.id] = value
    values = {k: v for k, v in values.items() if k in config.kpis}
    source = f"run {record.run_id} on {config.settings.main_branch}" + (f" @ {record.commit[:12]}" if record.commit else "")
    return MainMeasurements(values, record.run_id, record.commit, source)
