"""Edit one KPI of budgets.yaml in place, touching only that KPI's lines.

Why a splice and not `ruamel.yaml` load → dump: a round-trip dump re-flows untouched lines
of real budgets files (multi-line flow sequences are joined, `null` is dropped), which
would bury the budget change in unrelated churn. So ruamel's composer gives the exact
character span of every key and value of the KPI, only those spans are rewritten, and the
result is checked before the file is replaced: PyYAML (the real loader) and ruamel both read
back exactly the expected data, every edit lies inside the KPI, and the real loader
accepts the file.
"""

from __future__ import annotations

import copy
import difflib
import math
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from molt_budget.environment import writing
from molt_budget.errors import BudgetError, ConfigError
from molt_budget.results.store import write_bytes_atomic
from molt_budget.structs import Struct, field

DELETE: Any = object()   # value for set_kpi_fields: remove the key
DEFAULT_HEADROOM_PCT = 10.0
# the order of keys appended to a KPI that lacks them (existing keys keep their place)
FIELD_ORDER = ("target", "limit", "owner", "basis", "justification", "seeded_from", "updated", "expires")


def _ordered(updates: Mapping[str, Any]) -> list[tuple[str, Any]]:
    rank = {name: i for i, name in enumerate(FIELD_ORDER)}
    return sorted(updates.items(), key=lambda item: rank.get(item[0], len(rank)))

Edit = tuple[int, int, str]   # (start, end, replacement) as character offsets


class BumpResult(Struct):
    diff: str
    kpi: str = ""
    path: Path | None = None
    updates: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# -- numbers and options -------------------------------------------------------------


def parse_pct(text: str | float) -> float:
    """'10%', '10' and 10 all mean ten percent."""
    raw = str(text).strip().rstrip("%").strip()
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{text!r} is not a percentage (write e.g. 10%)") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{text!r}: a percentage must be a finite number >= 0")
    return value


def parse_number(text: str | float) -> int | float:
    """A budget value from the command line; integers stay integers in the file."""
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ConfigError(f"{text!r}: a budget must be a finite number")
    return int(value) if value.is_integer() and "." not in str(text) and "e" not in str(text).lower() else value


def parse_day(text: str, what: str = "--expires") -> date:
    try:
        return date.fromisoformat(str(text).strip())
    except ValueError:
        raise ConfigError(f"{what} {text!r} is not a date (YYYY-MM-DD)") from None


def with_headroom(value: float, pct: float, direction: str) -> float:
    """Headroom is on the worse side: above for lower-is-better, below for higher-is-better."""
    return value * (1 + pct / 100) if direction == "lower" else value * (1 - pct / 100)


def round_budget(value: float, direction: str, integral: bool = False) -> int | float:
    """Round toward the looser side so rounding never eats headroom: 4 significant digits, integers from 1000."""
    if not math.isfinite(value):    # a limit scaled with a target near the float's end (1.7e308 x 1.2)
        raise ConfigError(f"the budget this gives ({value}) is past the largest number a budget can hold: "
                          "set it by hand (--target and --limit)")
    up = direction == "lower"
    if integral or abs(value) >= 1000:
        out = math.ceil(value - 1e-9) if up else math.floor(value + 1e-9)
        return int(out)
    if value == 0:
        return 0
    digits = 3 - math.floor(math.log10(abs(value)))
    if digits > 300:
        return value            # below 1e-297 (absurd input): 10**digits is past the floats; nothing to round
    scale = 10 ** digits
    scaled = value * scale
    out = (math.ceil(scaled - 1e-6) if up else math.floor(scaled + 1e-6)) / scale
    out = round(out, digits)
    return int(out) if float(out).is_integer() else out


def short_number(value: float) -> int | float:
    """A measured value for the file: 6 significant digits are plenty and read well."""
    out = float(f"{value:.6g}")
    return int(out) if out.is_integer() else out


def is_tighter(new: float, old: float, direction: str) -> bool:
    return new < old if direction == "lower" else new > old


# -- rendering values the way both YAML readers read them back -------------------------


def format_number(value: float) -> str:
    if isinstance(value, bool):
        raise TypeError("not a number")
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e15):
        return str(int(value))
    text = repr(float(value))
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"   # YAML 1.1 floats need the dot
    return text


def _reads_back(doc: str, expected: Any) -> bool:
    import yaml
    from ruamel.yaml import YAML

    try:
        if yaml.safe_load(doc) != expected:
            return False
        return YAML(typ="safe", pure=True).load(doc) == expected
    except Exception:   # any parse error means "quote it"
        return False


def render_scalar(value: Any, *, flow: bool = False, style: str | None = None) -> str:
    """One value as YAML text; strings stay plain only when PyYAML and ruamel both read them back unchanged."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return format_number(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {render_scalar(v, flow=True)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(render_scalar(v, flow=True) for v in value) + "]"
    text = str(value)
    if style == "'" and "\n" not in text:
        return "'" + text.replace("'", "''") + "'"
    if style != '"' and text and text == text.strip() and "\n" not in text:
        doc = "{k: " + text + "}" if flow else "k: " + text
        if _reads_back(doc, {"k": text}):
            return text
    return double_quoted(text)


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _printable(ch: str) -> bool:
    """YAML's printable set, minus the characters it reads as line breaks or a BOM."""
    o = ord(ch)
    return 0x20 <= o <= 0x7E or 0xA0 <= o <= 0xD7FF and o not in (0x2028, 0x2029) or 0xE000 <= o <= 0xFFFD and o != 0xFEFF \
        or 0x10000 <= o <= 0x10FFFF


def double_quoted(text: str) -> str:
    """A YAML double-quoted scalar; everything outside the printable set is escaped (\\x, \\u, \\U)."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif _printable(ch):
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def _block_entry(key: str, value: Any, indent: int, step: int, nl: str) -> str:
    pad = " " * indent
    if isinstance(value, dict) and value:
        inner = " " * (indent + step)
        return f"{pad}{key}:{nl}" + "".join(f"{inner}{k}: {render_scalar(v)}{nl}" for k, v in value.items())
    return f"{pad}{key}: {render_scalar(value)}{nl}"


# -- locating the KPI ------------------------------------------------------------------


def _compose(text: str) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        return YAML(typ="rt").compose(text)
    except YAMLError as exc:
        raise ConfigError(f"cannot edit: YAML error: {' '.join(str(exc).split())}") from None


def _pairs(node: Any) -> list[tuple[Any, Any]]:
    from ruamel.yaml.nodes import MappingNode

    return list(node.value) if isinstance(node, MappingNode) else []


def _get(node: Any, key: str) -> tuple[Any, Any] | None:
    for k, v in _pairs(node):
        if str(k.value) == key:
            return k, v
    return None


def _line_start(text: str, idx: int) -> int:
    return text.rfind("\n", 0, idx) + 1


def _line_end(text: str, idx: int) -> int:
    nl = text.find("\n", idx)
    return len(text) if nl < 0 else nl + 1


def _boundary(text: str, idx: int) -> int:
    """The line boundary a node's end mark stands for: marks of block collections point at the next token."""
    start = _line_start(text, idx)
    return start if text[start:idx].strip() == "" else _line_end(text, idx)


def _trim(text: str, end: int, floor: int) -> int:
    """Give trailing blank and comment-only lines back to whatever follows."""
    while end > floor:
        start = _line_start(text, end - 1)
        line = text[start:end].strip()
        if line and not line.startswith("#"):
            break
        end = start
    return max(end, floor)


def _inline(text: str, key: Any, value: Any) -> bool:
    """A value written on its key's line (scalar or flow collection): replace just its characters."""
    from ruamel.yaml.nodes import ScalarNode

    span = text[value.start_mark.index:value.end_mark.index]
    if not span or "\n" in text[key.start_mark.index:value.end_mark.index]:
        return False
    if isinstance(value, ScalarNode):
        return value.style in (None, "", '"', "'")
    return bool(getattr(value, "flow_style", False))


def _block_edits(text: str, kpi_id: str, kpi_key: Any, node: Any, updates: Mapping[str, Any]) -> list[Edit]:
    pairs = _pairs(node)
    if not pairs:
        raise ConfigError(f"cannot edit: kpis.{kpi_id} has no keys")
    nl = "\r\n" if "\r\n" in text else "\n"
    indent = pairs[0][0].start_mark.column
    step = max(indent - kpi_key.start_mark.column, 2)
    region_end = _boundary(text, node.end_mark.index)
    spans: dict[str, tuple[Any, Any, int, int]] = {}
    last_end = 0
    for i, (k, v) in enumerate(pairs):
        start = _line_start(text, k.start_mark.index)
        limit = _line_start(text, pairs[i + 1][0].start_mark.index) if i + 1 < len(pairs) else region_end
        floor = _boundary(text, v.end_mark.index) if v.end_mark.index > k.end_mark.index else _line_end(text, k.start_mark.index)
        end = _trim(text, limit, max(floor, start))
        spans[str(k.value)] = (k, v, start, end)
        last_end = end
    edits: list[Edit] = []
    inserts: list[str] = []
    for key, new in _ordered(updates):
        if key not in spans:
            if new is not DELETE:
                inserts.append(_block_entry(key, new, indent, step, nl))
            continue
        k, v, start, end = spans[key]
        if new is DELETE:
            edits.append((start, end, ""))
        elif _is_alias(k, v):
            raise ConfigError(f"cannot edit: kpis.{kpi_id}.{key} is a YAML alias; edit it by hand")
        elif _inline(text, k, v) and (isinstance(new, dict) == bool(getattr(v, "flow_style", False))):
            edits.append((v.start_mark.index, v.end_mark.index, render_scalar(new, flow=isinstance(new, dict), style=getattr(v, "style", None))))
        else:
            nested = _pairs(v)
            own_step = nested[0][0].start_mark.column - indent if nested and not v.flow_style else step
            entry = _block_entry(key, new, indent, max(own_step, 1), nl)
            if not text[start:end].endswith(("\n", "\r")):
                entry = entry[: -len(nl)]
            edits.append((start, end, entry))
    if inserts:
        block = "".join(inserts)
        if last_end == 0 or text[last_end - 1] != "\n":
            block = nl + block[: -len(nl)]
        edits.append((last_end, last_end, block))
    return edits


def _is_alias(key: Any, value: Any) -> bool:
    """An alias (`*name`) composes to the anchored node, whose marks point back at the anchor."""
    return value.start_mark.index < key.end_mark.index


def _flow_edits(text: str, kpi_id: str, node: Any, updates: Mapping[str, Any]) -> list[Edit]:
    """A KPI written as {lane: x, target: 1}: edit values in place, drop or append entries before the brace."""
    pairs = _pairs(node)
    edits: list[Edit] = []
    close = node.end_mark.index - 1            # the closing brace
    tail = close
    while tail > node.start_mark.index + 1 and text[tail - 1].isspace():
        tail -= 1
    names = [str(k.value) for k, _ in pairs]
    for i, (k, v) in enumerate(pairs):
        name = names[i]
        if name not in updates:
            continue
        if updates[name] is DELETE:
            if i + 1 < len(pairs):
                edits.append((k.start_mark.index, pairs[i + 1][0].start_mark.index, ""))
            elif i > 0:
                edits.append((text.rindex(",", 0, k.start_mark.index), tail, ""))
            else:
                edits.append((node.start_mark.index, node.end_mark.index, "{}"))
        elif _is_alias(k, v):
            raise ConfigError(f"cannot edit: kpis.{kpi_id}.{name} is a YAML alias; edit it by hand")
        else:
            edits.append((v.start_mark.index, v.end_mark.index, render_scalar(updates[name], flow=True)))
    added = [f"{name}: {render_scalar(new, flow=True)}" for name, new in _ordered(updates) if name not in names and new is not DELETE]
    if added:
        kept = [n for n in names if updates.get(n, None) is not DELETE]
        edits.append((tail, tail, (", " if kept else "") + ", ".join(added)))
    return edits


def _apply(text: str, edits: list[Edit]) -> str:
    for start, end, replacement in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


def set_kpi_fields(text: str, kpi_id: str, updates: Mapping[str, Any]) -> str:
    """The file text with kpis.<kpi_id>'s keys set (or removed with DELETE); all other bytes unchanged."""
    root = _compose(text)
    kpis = _get(root, "kpis")
    found = _get(kpis[1], kpi_id) if kpis else None
    if found is None or not _pairs(found[1]) and not getattr(found[1], "flow_style", False):
        raise ConfigError(f"cannot edit: kpis.{kpi_id} is not a mapping in the file")
    kpi_key, node = found
    edits = _flow_edits(text, kpi_id, node, updates) if node.flow_style else _block_edits(text, kpi_id, kpi_key, node, updates)
    region = (_line_start(text, kpi_key.start_mark.index), _boundary(text, node.end_mark.index))
    new_text = _apply(text, edits)
    _verify(text, new_text, kpi_id, updates, edits, region)
    return new_text


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


def _expected(data: Any, kpi_id: str, updates: Mapping[str, Any]) -> Any:
    data = copy.deepcopy(_plain(data))
    kpi = data["kpis"][kpi_id]
    for key, value in updates.items():
        if value is DELETE:
            kpi.pop(key, None)
        else:
            kpi[key] = value
    return data


def _verify(old: str, new: str, kpi_id: str, updates: Mapping[str, Any], edits: list[Edit], region: tuple[int, int]) -> None:
    """Refuse to write anything that does not read back as exactly the intended change."""
    import yaml
    from ruamel.yaml import YAML

    problem = None
    if any(start < region[0] or end > region[1] for start, end, _ in edits):
        problem = "an edit would fall outside the KPI's lines"
    else:
        try:
            if _plain(yaml.safe_load(new)) != _expected(yaml.safe_load(old), kpi_id, updates):
                problem = "PyYAML reads back different data"
            elif _plain(YAML(typ="rt").load(new)) != _expected(YAML(typ="rt").load(old), kpi_id, updates):
                problem = "ruamel.yaml reads back different data"
        except Exception as exc:   # the edited text did not parse
            problem = f"the edited file does not parse ({type(exc).__name__})"
    if problem:
        raise BudgetError(f"cannot edit kpis.{kpi_id} safely: {problem}; the file is unchanged, edit it by hand")


# -- measured values -------------------------------------------------------------------


def measured_values(results: Any, config: Any) -> dict[str, float]:
    """KPI id → measured value: the results' own verdicts first, else aggregated from the lane samples."""
    from molt_budget.compare.budget import aggregate

    out = {k.id: float(k.value) for k in results.kpis if k.value is not None}
    for kpi in config.kpis.values():
        lane = results.lanes.get(kpi.lane)
        if kpi.id in out or lane is None:
            continue
        values = [s.metrics[kpi.metric] for s in lane.measured() if kpi.metric in s.metrics]
        if values:
            out[kpi.id] = float(aggregate(values, kpi.aggregate))
    return out


# -- bump ------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str = "") -> str:
    return "none" if value is None else f"{format_number(short_number(value))} {unit}".strip()


def _integral(*values: float | None) -> bool:
    return all(v is not None and float(v).is_integer() for v in values)


def bump_kpi(
    config_path: str | Path,
    kpi_id: str,
    *,
    target: float | None = None,
    limit: float | None = None,
    from_results: str | Path | None = None,
    headroom_pct: float | None = None,
    reason: str,
    owner: str | None = None,
    expires: str | date | None = None,
    max_increase_pct: float | None = None,
    max_increase_abs: float | None = None,
    today: date,
    commit: str | None,
    write: bool = True,
) -> BumpResult:
    """Re-set one KPI's budget with its justification and provenance; returns the unified diff.

    Without --limit, a new target keeps the old limit/target ratio. A re-set budget is
    permanent unless `expires` is given again, so an old waiver date is dropped.
    """
    from molt_budget.config import load_config

    path = Path(config_path)
    config = load_config(path)
    kpi = config.kpis.get(kpi_id)
    if kpi is None:
        raise ConfigError(f"unknown KPI '{kpi_id}' (known: {', '.join(config.kpis) or 'none'})")
    reason = " ".join((reason or "").split())
    if not reason:
        raise ConfigError("--reason is required: say why this budget changes (it is recorded as the justification)")
    if reason.upper().startswith("TODO"):
        raise ConfigError(f"--reason {reason!r} is the placeholder from the report: replace it with why this change is "
                          "accepted (it is recorded as the justification reviewers read)")
    if from_results is not None and target is not None:
        raise ConfigError("give --target or --from-results, not both")
    if headroom_pct is not None and from_results is None:
        raise ConfigError("--headroom needs --from-results")
    change_budget = {k: v for k, v in (("max_increase_pct", max_increase_pct), ("max_increase_abs", max_increase_abs))
                     if v is not None and v != getattr(kpi, k)}
    if all(x is None for x in (target, limit, from_results, owner, expires, max_increase_pct, max_increase_abs)):
        raise ConfigError(f"{kpi_id}: no change requested: give --target, --limit, --max-increase-pct, "
                          "--max-increase-abs, --from-results, --owner or --expires")
    lower = kpi.direction == "lower"
    updates: dict[str, Any] = {}
    notes: list[str] = []
    basis = None
    seeded = None
    if from_results is not None:
        value, run = _measured_for(Path(from_results), config, kpi)
        pct = DEFAULT_HEADROOM_PCT if headroom_pct is None else headroom_pct
        if not lower and pct >= 100:
            raise ConfigError(f"--headroom {pct:g}% leaves nothing for a higher-is-better KPI (use < 100%)")
        integral = kpi.kpi_class != "timed" and _integral(value, kpi.target)
        target = round_budget(with_headroom(value, pct, kpi.direction), kpi.direction, integral)
        basis = f"measured {_fmt(value, kpi.unit)} {'+' if lower else '-'} {pct:g}% headroom (run {run['run_id']})"
        seeded = {"value": short_number(value), "commit": (run["commit"] or commit or "unknown")[:12],
                  "date": run["date"] or today.isoformat(), "headroom_pct": short_number(pct)}
    new_target = kpi.target if target is None else target
    new_limit = kpi.limit if limit is None else limit
    if limit is None and target is not None and kpi.limit is not None and kpi.target:
        new_limit = round_budget(target * kpi.limit / kpi.target, kpi.direction, _integral(kpi.target, kpi.limit, target))
        if new_limit != kpi.limit:
            notes.append(f"limit follows the target (limit/target stays {kpi.limit / kpi.target:.3g}); pass --limit to set it")
    if new_target is not None and new_limit is not None:
        if (new_limit < new_target) if lower else (new_limit > new_target):
            word = "below" if lower else "above"
            raise ConfigError(f"{kpi_id}: limit {format_number(new_limit)} is {word} the target {format_number(new_target)} "
                              f"(direction {kpi.direction}: the limit must be the looser bound)")
    expiry = None
    if expires is not None:
        expiry = expires if isinstance(expires, date) else parse_day(str(expires))
        if expiry < today:
            raise ConfigError(f"--expires {expiry.isoformat()} is in the past (today is {today.isoformat()})")
    bounds_changed = new_target != kpi.target or new_limit != kpi.limit or bool(change_budget)
    owner_changed = owner is not None and owner != kpi.owner
    expiry_changed = expiry is not None and expiry.isoformat() != kpi.expires
    if not (bounds_changed or owner_changed or expiry_changed):
        raise ConfigError(f"{kpi_id}: no change requested: target {_fmt(kpi.target)}, limit {_fmt(kpi.limit)}, "
                          f"owner and expiry already hold those values")
    if new_target != kpi.target:
        updates["target"] = new_target
    if new_limit != kpi.limit:
        updates["limit"] = new_limit
    updates.update(change_budget)
    if owner_changed:
        updates["owner"] = owner
    if basis is None and bounds_changed:
        basis = f"set by hand; was target {_fmt(kpi.target)}, limit {_fmt(kpi.limit)}"
    if basis is not None:
        updates["basis"] = basis
    updates["justification"] = reason
    if seeded is not None:
        updates["seeded_from"] = seeded
    updates["updated"] = today.isoformat()
    if expiry is not None:
        updates["expires"] = expiry.isoformat()
    elif bounds_changed and kpi.expires:
        updates["expires"] = DELETE
        notes.append(f"dropped the waiver expiry {kpi.expires}: a re-set budget is permanent unless --expires is given")
    diff = rewrite(path, kpi_id, updates, write=write)
    return BumpResult(diff=diff, kpi=kpi_id, path=path, updates={k: v for k, v in updates.items() if v is not DELETE}, notes=notes)


def _measured_for(results_path: Path, config: Any, kpi: Any) -> tuple[float, dict[str, Any]]:
    from molt_budget.results.store import load_results

    results = load_results(results_path)
    values = measured_values(results, config)
    if kpi.id not in values:
        known = ", ".join(sorted(values)) or "none"
        raise ConfigError(f"{results_path}: no measured value for KPI '{kpi.id}' (values for: {known})")
    run = {"run_id": results.run_id, "commit": results.provenance.get("commit"), "date": (results.started_utc or "")[:10] or None}
    return values[kpi.id], run


# -- writing ---------------------------------------------------------------------------


def unified_diff(old: str, new: str, name: str, context: int = 3) -> str:
    """difflib's unified format without its autojunk heuristic, which marks a repeated line
    such as `owner: infra` as changed in budgets files of 200+ lines."""
    a, b = old.splitlines(), new.splitlines()
    out = [f"--- a/{name}", f"+++ b/{name}"]
    for group in difflib.SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(context):
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        out.append(f"@@ -{_range(i1, i2)} +{_range(j1, j2)} @@")
        for tag, x1, x2, y1, y2 in group:
            if tag == "equal":
                out += [" " + line for line in a[x1:x2]]
                continue
            out += ["-" + line for line in a[x1:x2]]
            out += ["+" + line for line in b[y1:y2]]
    return "\n".join(out) + "\n" if len(out) > 2 else ""


def _range(start: int, stop: int) -> str:
    length = stop - start
    first = start + 1 if length else start
    return str(first) if length == 1 else f"{first},{length}"


def rewrite(path: Path, kpi_id: str, updates: Mapping[str, Any], *, write: bool = True) -> str:
    """Apply one KPI's updates to the file (checked by the real loader first); return the diff."""
    return rewrite_many(path, {kpi_id: updates}, write=write)


def rewrite_many(path: Path, changes: Mapping[str, Mapping[str, Any]], *, write: bool = True) -> str:
    from molt_budget.config.loader import parse_text

    old = path.read_bytes().decode("utf-8")
    new = old
    for kpi_id, updates in changes.items():
        new = set_kpi_fields(new, kpi_id, updates)
    parse_text(path.resolve(), new)   # never write a file the gate would reject
    if write and new != old:
        with writing(path, "the budgets file"):
            write_bytes_atomic(path, new.encode("utf-8"))
    return unified_diff(old, new, path.name if path.is_absolute() else str(path))

