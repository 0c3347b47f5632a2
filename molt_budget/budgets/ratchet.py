"""Ratchet: when main measures well under a KPI's target, propose the tighter budget.

Budgets only drift looser on their own (nobody lowers a ceiling that no longer hurts);
the ratchet turns an improvement into the new budget, as a reviewable YAML diff.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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


@dataclass
class Ratchet:
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


@dataclass
class MainMeasurements:
    values: dict[str, float]
    run_id: str
    commit: str | None
    source: str


def latest_main_measurements(config: Any) -> MainMeasurements:
    """The newest complete, authoritative run on the main branch in history (a noisy host must not set budgets)."""
    from molt_budget.compare.budget import aggregate
    from molt_budget.results.history import History

    db = config.resolve(config.settings.history)
    main = config.settings.main_branch
    if not db.exists():
        raise ConfigError(f"no history at {db}: pass --results RESULTS.json, or record runs with `molt-budget check` on {main}")
    history = History(db)
    row = next((r for r in history.runs(limit=1000) if r.branch == main and r.state == "complete" and r.authoritative), None)
    if row is None:
        raise ConfigError(f"{db}: no complete authoritative run on branch '{main}' (pass --results RESULTS.json)")
    shown = history.show(row.run_id)
    values: dict[str, float] = {kpi: float(value) for kpi, _lane, _metric, value, *_ in shown["verdicts"] if value is not None}
    samples: dict[tuple[str, str], list[float]] = {}
    for lane, kind, _idx, ok, _att, _retry, _err, metric, value in shown["samples"]:
        if kind == "measure" and ok and metric is not None and value is not None:
            samples.setdefault((lane, metric), []).append(float(value))
    for kpi in config.kpis.values():
        if kpi.id not in values and (kpi.lane, kpi.metric) in samples:
            values[kpi.id] = float(aggregate(samples[(kpi.lane, kpi.metric)], kpi.aggregate))
    source = f"run {row.run_id} on {main}" + (f" @ {row.commit[:12]}" if row.commit else "")
    return MainMeasurements(values, row.run_id, row.commit, source)
