"""Read budgets.yaml: syntax → schema → cross-references, each error naming file:line."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path
from typing import Any

from molt_budget.bounded import unnameable
from molt_budget.config import parse_cache
from molt_budget.config.metrics import describe_known, parse_metric
from molt_budget.config.model import Config, Kpi, Lane, Lines, Quiescence, Settings
from molt_budget.errors import ConfigError

LANE_DEFAULTS: dict[str, Any] = {
    "env": {},
    "cwd": ".",
    "timeout_s": 900.0,
    "repeats": 3,
    "warmups": 0,
    "retries": 2,
    "retry_backoff_s": 2.0,
    "expect_exit": [0],
    "lock_timeout_pattern": "Timed out waiting for build lock",
}


def load_config(path: str | Path) -> Config:
    path = Path(path)
    from molt_budget.bounded import MAX_SMALL_BYTES, InputError, read_regular

    try:
        data = read_regular(path, MAX_SMALL_BYTES)    # a FIFO or a 10 GB file is refused, not read
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such budgets file (pass --config FILE)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read budgets file: {exc.strerror or exc}") from None
    except InputError as exc:
        raise ConfigError(exc.where(path)) from None
    return parse_bytes(path, data)


def parse_bytes(path: Path, data: bytes) -> Config:
    """The budgets file's bytes → Config: UTF-8 without NUL, refused with the line of the bad byte."""
    from molt_budget.bounded import InputError, decode_utf8

    try:
        text = decode_utf8(data)
    except InputError as exc:
        raise ConfigError(exc.where(path)) from None
    return parse_text(path.resolve(), text)


def parse_text(path: Path, text: str) -> Config:
    """The budgets file's text → a validated Config, once: every stage of a run gets this object.

    A text parsed before comes from the parse cache (config/parse_cache.py) without PyYAML."""
    cached = parse_cache.load(text)
    if cached is not None:
        return parse_config(path, *cached, text)
    from molt_budget.config.yaml_lines import load_yaml_with_lines

    data, lines = load_yaml_with_lines(path, text)
    config = parse_config(path, data, lines, text)
    parse_cache.store(text, data, lines)
    return config


def parse_config(path: Path, data: Any, lines: Lines, text: str = "") -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name}:1: the budgets file must be a mapping with version, lanes and kpis")
    _check_schema(path, data, lines)
    defaults = {**LANE_DEFAULTS, **(data.get("defaults") or {})}
    lanes = {lid: _lane(lid, raw, defaults, lines) for lid, raw in data["lanes"].items()}
    kpis = {kid: _kpi(kid, raw, lines) for kid, raw in (data.get("kpis") or {}).items()}
    _one_build_where_repeats_buy_nothing(data["lanes"], lanes, kpis)
    config = Config(path=path, lanes=lanes, kpis=kpis, settings=_settings(data.get("settings") or {}), lines=lines,
                    text=text)
    _check_references(config)
    _check_paths(config)
    return config


RUN_FOLDERS_ROOM = 1024   # what the run folders under output_root add: runs/<run>/<lane>/<sample>/<file>


def _check_paths(config: Config) -> None:
    """The two folders every command opens, refused at their line when the system cannot name
    them: a too-long name surfaced as an OSError deep inside history or the runner, after the
    budgets file had been accepted."""
    for key, room in (("output_root", RUN_FOLDERS_ROOM), ("history", 0)):
        problem = unnameable(config.resolve(getattr(config.settings, key)), room)
        if problem:
            raise ConfigError(f"{config.path.name}:{config.line_of('settings', key)}: settings.{key}: {problem}")


# The smallest change budget of a timed KPI: below it the budget line (1 + pct/100) is within
# float rounding of "no change" (ln of it is 0 past ~1e-14%), and long before that no pairs tell it.
MIN_TIMED_PCT = 0.001


def _one_build_where_repeats_buy_nothing(raw_lanes: dict[str, Any], lanes: dict[str, Lane], kpis: dict[str, Kpi]) -> None:
    """Repeats are what a timed or counted KPI is judged on. A lane whose KPIs are all exact
    gives the same counts on every build, and a lane no KPI measures has nothing to judge: either
    builds once unless the lane itself asks for `repeats` (a determinism check, or a steadier
    median in the history of a lane without budgets, is a choice, not a default)."""
    for lane in lanes.values():
        own = [k for k in kpis.values() if k.lane == lane.id]
        if _repeats_buy_nothing(own) and "repeats" not in (raw_lanes.get(lane.id) or {}):
            lane.repeats = 1


def _repeats_buy_nothing(own: list[Kpi]) -> bool:
    """Whether no KPI of a lane (its `own`) is judged on more than one build."""
    return all(k.kpi_class == "exact" for k in own)


def advice(config: Config) -> list[str]:
    """What `validate` points out without refusing the file: settings that cost builds and buy nothing."""
    notes = []
    for lane in config.lanes.values():
        own = config.kpis_for_lane(lane.id)
        if lane.repeats > 1 and _repeats_buy_nothing(own):
            what = ("whose KPIs are all exact only check that the build is deterministic (the counts cannot differ otherwise)"
                    if own else "that no KPI measures judge nothing (only the history's median of its metrics gets steadier)")
            notes.append(f"{config.where('lanes', lane.id, 'repeats')}: lanes.{lane.id}.repeats: {lane.repeats} builds of a lane "
                         f"{what}; drop `repeats` for one build unless that is the point")
    return notes


def _check_schema(path: Path, data: dict[str, Any], lines: Lines) -> None:
    from molt_budget.schemas import is_valid, known_valid, remember_valid, validator

    if known_valid("budgets", data):
        return
    if is_valid("budgets", data):       # compiled: a 1000-KPI file in milliseconds, not a second
        remember_valid("budgets", data)
        return
    errors = sorted(validator("budgets").iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if not errors:
        remember_valid("budgets", data)
        return
    err = _deepest(errors[0])
    keys = tuple(str(k) for k in err.absolute_path)
    line = _line(lines, keys)
    if "propertyNames" in err.absolute_schema_path and isinstance(err.instance, str):
        line = _line(lines, (*keys, err.instance))      # a refused name: its own line, not its mapping's
    dotted = ".".join(keys) or "(top level)"
    message = err.message
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = set(err.schema.get("properties", {}))
        extra = sorted(k for k in err.instance if k not in allowed)
        if extra:
            keys = keys + (str(extra[0]),)
            line = _line(lines, keys)
            dotted = ".".join(keys)
            message = f"unknown key (allowed: {', '.join(sorted(allowed))})"
    elif err.validator == "oneOf" or (err.validator == "type" and keys and keys[-1] == "command"):
        message = f"{err.instance!r} is not valid here"
    elif err.validator == "maxLength" and isinstance(err.instance, str):
        message = (f"{err.instance[:40]!r}... is {len(err.instance)} characters: at most {err.validator_value} "
                   f"({err.schema.get('description', 'the longest this can be')})")
    elif err.validator == "pattern" and "x-refusal" in err.schema:
        message = f"{err.instance!r} {err.schema['x-refusal']}"      # what the pattern means, not the pattern
    elif err.validator == "type" and _numeric_text(err.instance):
        # YAML 1.1 (PyYAML) takes a float only with a dot and a signed exponent: 1e9 is text
        message += f" (YAML reads {err.instance} as text: write it as {_yaml_float(float(err.instance))})"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    raise ConfigError(f"{path.name}:{line}: {dotted}: {message}{more}")


def _numeric_text(value: object) -> bool:
    """A string that Python reads as a finite number (what a YAML 1.1 loader left as text)."""
    if not isinstance(value, str) or not value.strip():
        return False
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _yaml_float(value: float) -> str:
    """`value` spelled so that YAML 1.1 reads a number: a dot, and a signed exponent if any."""
    text = repr(value)
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:
        text = f"{mantissa}.0e{exponent}"
    return text


def _deepest(err: Any) -> Any:
    """oneOf errors hide the useful message in their context; pick the most specific one."""
    while err.context:
        err = max(err.context, key=lambda e: len(e.absolute_path))
    return err


def _line(lines: Lines, keys: tuple[str, ...]) -> int:
    while keys:
        if keys in lines:
            return lines[keys]
        keys = keys[:-1]
    return 1


def _env(raw: dict[str, Any]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for key, value in raw.items():
        if value is None:
            out[key] = None
        elif isinstance(value, bool):
            out[key] = "1" if value else "0"
        else:
            out[key] = str(value)
    return out


def _lane(lid: str, raw: dict[str, Any], defaults: dict[str, Any], lines: Lines) -> Lane:
    merged = {**defaults, **raw, "env": {**defaults.get("env", {}), **raw.get("env", {})}}
    emit_ir = merged.get("emit_ir")
    if emit_ir is True:
        emit_ir = "${attempt_dir}/ir.json"
    elif emit_ir is False:
        emit_ir = None
    return Lane(
        id=lid,
        command=merged["command"],
        env=_env(merged["env"]),
        cwd=str(merged["cwd"]),
        timeout_s=float(merged["timeout_s"]),
        repeats=int(merged["repeats"]),
        warmups=int(merged["warmups"]),
        retries=int(merged["retries"]),
        retry_backoff_s=float(merged["retry_backoff_s"]),
        expect_exit=[int(code) for code in merged["expect_exit"]],
        lock_timeout_pattern=str(merged["lock_timeout_pattern"]),
        diagnostics=bool(merged.get("diagnostics", False)),
        emit_ir=emit_ir,
        cache=merged.get("cache") or lid,
        cache_state=merged.get("cache_state"),
        prime=merged.get("prime"),
        expect_cache=merged.get("expect_cache"),
        pre_push=bool(merged.get("pre_push", False)),
        description=merged.get("description", ""),
        tags=list(merged.get("tags", [])),
        line=_line(lines, ("lanes", lid)),
    )


def _kpi(kid: str, raw: dict[str, Any], lines: Lines) -> Kpi:
    info = parse_metric(raw["metric"])
    return Kpi(
        id=kid,
        lane=raw["lane"],
        metric=raw["metric"],
        kpi_class=raw.get("class") or (info.default_class if info else "exact"),
        direction=raw.get("direction", "lower"),
        unit=raw.get("unit") or (info.unit if info else ""),
        target=_number(raw.get("target")),
        limit=_number(raw.get("limit")),
        aggregate=raw.get("aggregate", "min" if (raw.get("class") or (info.default_class if info else "")) == "counted" else "median"),
        title=raw.get("title", ""),
        owner=raw.get("owner", ""),
        basis=raw.get("basis", ""),
        justification=raw.get("justification", ""),
        max_increase_pct=_number(raw.get("max_increase_pct")),
        max_increase_abs=_number(raw.get("max_increase_abs")),
        yellow_fraction=float(raw.get("yellow_fraction", 0.5)),
        seeded_from={"value": float(raw["seeded_from"])} if isinstance(raw.get("seeded_from"), (int, float)) else raw.get("seeded_from"),
        max_drift_pct=_number(raw.get("max_drift_pct")),
        expires=raw.get("expires"),
        pairs=int(raw.get("pairs", 6)),
        max_pairs=int(raw.get("max_pairs", max(20, int(raw.get("pairs", 6))))),
        noise_floor_pct=_number(raw.get("noise_floor_pct")),
        updated=str(raw.get("updated", "")),
        line=_line(lines, ("kpis", kid)),
    )


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _settings(raw: dict[str, Any]) -> Settings:
    q = raw.get("quiescence") or {}
    quiescence = Quiescence(**{k: v for k, v in q.items()})
    kwargs = {k: v for k, v in raw.items() if k != "quiescence"}
    if "keep_run_dirs" in kwargs:       # the schema's integer takes 2.0 (YAML's `2.0`), a slice does not
        kwargs["keep_run_dirs"] = int(kwargs["keep_run_dirs"])
    return Settings(**kwargs, quiescence=quiescence)


def _check_references(config: Config) -> None:
    name = config.path.name
    for kpi in config.kpis.values():
        where = f"{name}:{config.line_of('kpis', kpi.id, 'metric')}"
        info = parse_metric(kpi.metric)
        if info is None:
            raise ConfigError(f"{where}: kpis.{kpi.id}: unknown metric '{kpi.metric}' (known: {describe_known()})")
        if kpi.lane not in config.lanes:
            raise ConfigError(
                f"{name}:{config.line_of('kpis', kpi.id, 'lane')}: kpis.{kpi.id}: lane '{kpi.lane}' is not declared "
                f"(lanes: {', '.join(config.lanes)})"
            )
        lane = config.lanes[kpi.lane]
        if info.needs_ir and not lane.emit_ir:
            raise ConfigError(f"{where}: kpis.{kpi.id}: metric '{kpi.metric}' needs `emit_ir:` on lane '{lane.id}'")
        if info.needs_diagnostics and not lane.diagnostics:
            raise ConfigError(f"{where}: kpis.{kpi.id}: metric '{kpi.metric}' needs `diagnostics: true` on lane '{lane.id}'")
        for key in ("target", "limit"):
            value = getattr(kpi, key)
            if value is not None and not math.isfinite(value):
                raise ConfigError(f"{name}:{config.line_of('kpis', kpi.id, key)}: kpis.{kpi.id}.{key}: must be a finite number")
        if kpi.target is None and kpi.limit is None and kpi.max_increase_pct is None and kpi.max_increase_abs is None:
            raise ConfigError(
                f"{name}:{kpi.line}: kpis.{kpi.id}: give a `target` (yellow above it) and/or a `limit` (fail above it), "
                f"or a change budget (`max_increase_pct` / `max_increase_abs`)"
            )
        if kpi.expires is not None:
            try:
                date.fromisoformat(kpi.expires)
            except ValueError:
                raise ConfigError(f"{name}:{config.line_of('kpis', kpi.id, 'expires')}: kpis.{kpi.id}.expires: "
                                  f"{kpi.expires!r} is not a date (YYYY-MM-DD)") from None
        if kpi.kpi_class == "timed" and kpi.max_increase_pct is not None and kpi.max_increase_pct < MIN_TIMED_PCT:
            raise ConfigError(f"{name}:{config.line_of('kpis', kpi.id, 'max_increase_pct')}: kpis.{kpi.id}.max_increase_pct: "
                              f"{kpi.max_increase_pct:g} is below the {MIN_TIMED_PCT:g}% a timed verdict can tell "
                              f"(a hundred-thousandth of the time: below any timer's noise)")
        if kpi.max_pairs < kpi.pairs:
            raise ConfigError(f"{name}:{config.line_of('kpis', kpi.id, 'max_pairs')}: kpis.{kpi.id}: max_pairs {kpi.max_pairs} is below pairs {kpi.pairs}")
        if kpi.target is not None and kpi.limit is not None:
            looser = kpi.limit >= kpi.target if kpi.direction == "lower" else kpi.limit <= kpi.target
            if not looser:
                raise ConfigError(
                    f"{name}:{config.line_of('kpis', kpi.id, 'limit')}: kpis.{kpi.id}: limit {kpi.limit:g} is stricter "
                    f"than target {kpi.target:g} (direction: {kpi.direction})"
                )
    for lane in config.lanes.values():
        if lane.cache_state == "cold" and (lane.expect_cache == "hit" or lane.prime is not None):
            key = "expect_cache" if lane.expect_cache == "hit" else "prime"
            raise ConfigError(f"{name}:{config.line_of('lanes', lane.id, key)}: lanes.{lane.id}: a cold lane wipes its cache "
                              f"before every build, so `{key}` cannot work (use cache_state: warm)")
        if lane.prime is None:
            continue
        if lane.prime not in config.lanes:
            raise ConfigError(f"{name}:{config.line_of('lanes', lane.id, 'prime')}: lanes.{lane.id}.prime: lane '{lane.prime}' is not declared")
        _check_prime_cycle(config, lane)


def _check_prime_cycle(config: Config, lane: Lane) -> None:
    chain = [lane.id]
    current = lane
    while current.prime is not None:
        if current.prime in chain:
            cycle = " -> ".join(chain + [current.prime])
            raise ConfigError(f"{config.path.name}:{config.line_of('lanes', lane.id, 'prime')}: prime cycle: {cycle}")
        chain.append(current.prime)
        current = config.lanes[current.prime]
