"""The gate on budget changes: budgets.yaml at the base commit against the head.

A raised ceiling must not be "just another diff". Every loosening is listed with old → new
and its justification, and fails when:
  * its justification did not change in this edit (the head's `justification` must be
    non-empty and differ from the base's: an old reason cannot cover a new loosening);
  * a loosened target sits past measured × (1 + max_headroom_pct/100) ("budget far looser
    than measured"; mirrored for higher-is-better; a loosened limit may keep its previous
    distance above the target);
  * a removed KPI or lane has no tombstone comment `# removed <id>: <why>` new in the head;
  * a gate-shaping setting is loosened (`max_headroom_pct` raised, `compare_on` or
    `provenance_tools` changed, quiescence relaxed, `remote_main`/`main_branch` changed)
    without a new `# settings: <why>` comment in the head.
Defaults are filled in before comparing (a timed `max_increase_pct` of none or <= 0 is the
comparator's 10%, `noise_floor_pct` none is 0.5, ...). The settings that steer the gate
itself (`remote_main`, `main_branch`, `max_headroom_pct`) come from the BASE file: the edit
under review never picks its own base or headroom.
An expired waiver (`expires` before today) fails on any edit; a new KPI without an owner
is yellow; a justified loosening is yellow (it needs the reviewers' eyes); tightening is
listed as good news. With no base file (a new adoption) everything is "added".
"""

from __future__ import annotations

import math
import re
from datetime import date
from pathlib import Path
from typing import Any

from molt_budget import gitutil
from molt_budget.compare.model import BudgetChange, Status, worst
from molt_budget.errors import ConfigError
from molt_budget.structs import Struct

KINDS = ("loosened", "tightened", "added", "removed", "lane_changed", "lane_removed", "waiver_expired", "unchanged_note")
# lane keys that change what a KPI measures (timeouts do not; `repeats` only through a `min` aggregate)
LANE_FIELDS = ("command", "env", "cwd", "cache", "cache_state", "prime", "expect_cache", "emit_ir", "diagnostics", "expect_exit")
# bigger is looser; None means "no such budget" (the loosest) unless _effective fills in a default
WIDER_FIELDS = ("max_increase_pct", "max_increase_abs", "max_drift_pct", "yellow_fraction", "noise_floor_pct")
# fewer is looser (a timed KPI's test has less power with fewer pairs)
FEWER_FIELDS = ("pairs", "max_pairs")
REDEFINING_FIELDS = ("lane", "metric", "direction", "kpi_class")
TOMBSTONE = re.compile(r"^\s*#\s*removed\s+(?:kpi\s+|lane\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*:\s*(\S.*?)\s*$", re.I)
SETTINGS_NOTE = re.compile(r"^\s*#\s*settings\s*:\s*(\S.*?)\s*$", re.I)
# the comparator's defaults (molt_budget.compare.comparator / config.loader)
DEFAULT_NOISE_FLOOR_PCT = 0.5
DEFAULT_YELLOW_FRACTION = 0.5
DEFAULT_PAIRS = 6
DEFAULT_MAX_PAIRS = 20


# -- git -------------------------------------------------------------------------------


def resolve_commit(repo: Path, ref: str) -> str | None:
    return gitutil.resolve_commit(repo, ref)


def read_budgets_at(repo: Path, commit: str, rel_path: str) -> str | None:
    """The file's text at `commit`; None when it does not exist there (a new adoption)."""
    sha = resolve_commit(repo, commit)
    if sha is None:
        raise ConfigError(f"{commit}: not a commit in {repo} (fetch it, or pass --base REF)")
    data = gitutil.file_at(repo, sha, rel_path)
    return None if data is None else data.decode("utf-8", errors="replace")


def repo_root(path: Path) -> Path:
    top = gitutil.toplevel(path if path.is_dir() else path.parent)
    if top is None:
        raise ConfigError(f"{path}: not inside a git repository (the budget-change gate compares against a base commit)")
    return top.resolve()


def default_base(repo: Path, remote_main: str = "origin/main", main_branch: str = "main") -> str:
    """merge-base of HEAD and the remote main branch, else the local main branch, else origin/HEAD."""
    found = gitutil.default_base(repo, [ref for ref in (remote_main, main_branch) if ref])
    if found is None:
        raise ConfigError(f"no base to compare budgets with: neither {remote_main} nor {main_branch} shares history with HEAD "
                          f"(pass --base REF; {gitutil.MAIN_HINT})")
    return found[1]


def choose_base(repo: Path, rel_path: str, head_settings: Any, parser: Parser | None = None) -> str:
    """The default base commit; see choose_base_ref."""
    return choose_base_ref(repo, rel_path, head_settings, parser)[1]


def choose_base_ref(repo: Path, rel_path: str, head_settings: Any, parser: Parser | None = None) -> tuple[str, str]:
    """(ref, merge-base commit): the one base selection of `check`, `budget-diff` and the budget
    gate, steered by the BASE file's `remote_main`/`main_branch`, never the head's, so the edit
    under review cannot pick its own base.

    A first base comes from the stock refs (origin/main, main); only when neither exists do
    the head's refs find it. The budgets file at that commit then says which refs the project
    really uses, and the base is found again with those.
    """
    from molt_budget.config.model import Settings

    stock = Settings()
    steered_by = [stock.remote_main, stock.main_branch]
    first = gitutil.default_base(repo, steered_by)
    if first is None:
        steered_by = [head_settings.remote_main, head_settings.main_branch]
        first = gitutil.default_base(repo, steered_by)
    if first is None:
        raise ConfigError(f"no base to compare budgets with: neither {' nor '.join(steered_by)} shares history with HEAD "
                          "(pass --base REF)")
    parser = parser or Parser(Path(rel_path).name)
    base_config = parser.parse_or_none(read_budgets_at(repo, first[1], rel_path))
    if base_config is None:
        return first
    wanted = [base_config.settings.remote_main, base_config.settings.main_branch]
    if wanted == steered_by:
        return first
    return gitutil.default_base(repo, wanted) or first


# -- parsing ---------------------------------------------------------------------------


class Parser:
    """Each distinct budgets text parsed once per gate: the base file steers the choice of
    base, gives the headroom and is diffed, the head was already parsed by the run."""

    def __init__(self, path_name: str, known: Any = None) -> None:
        self.path = Path(path_name)
        self._done: dict[str, Any] = {}
        if known is not None and known.text:
            self._done[known.text] = known

    def parse(self, text: str) -> Any:
        """A Config; ConfigError (remembered too) when the text is not a valid budgets file."""
        from molt_budget.config.loader import parse_text

        if text not in self._done:
            try:
                self._done[text] = parse_text(self.path, text)
            except ConfigError as exc:
                self._done[text] = exc
        found = self._done[text]
        if isinstance(found, ConfigError):
            raise found
        return found

    def parse_or_none(self, text: str | None) -> Any:
        if text is None:
            return None
        try:
            return self.parse(text)
        except ConfigError:
            return None


def _norm(text: str | None) -> str:
    return " ".join((text or "").split())


def _tombstones(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        match = TOMBSTONE.match(line)
        if match:
            out[match.group(1)] = match.group(2)
    return out


def _settings_notes(text: str) -> list[str]:
    return [m.group(1) for m in map(SETTINGS_NOTE.match, text.splitlines()) if m]


def _fmt(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# -- the comparison --------------------------------------------------------------------


def diff_budgets(
    base_text: str | None,
    head_text: str,
    *,
    measured: dict[str, float],
    today: date,
    max_headroom_pct: float,
    path_name: str,
    parser: Parser | None = None,
) -> list[BudgetChange]:
    """Every budget change between base and head with its verdict; a broken head raises ConfigError."""
    parser = parser or Parser(path_name)
    head = parser.parse(head_text)
    changes: list[BudgetChange] = []
    if base_text is None:
        changes += _all_added(head, "no budgets file at the base commit (new adoption)")
    else:
        try:
            base = parser.parse(base_text)
        except ConfigError as exc:
            changes.append(BudgetChange(None, None, "unchanged_note", "file", None, None, "", "", Status.YELLOW,
                                        f"base budgets unreadable ({exc}); only the head's waivers were checked", None))
        else:
            ctx = _Context(base, head, base_text, head_text, measured, max_headroom_pct)
            changes += _settings_changes(ctx) + _lane_changes(ctx) + _kpi_changes(ctx)
    changes += _waivers(head, today)
    return changes


class _Context(Struct):
    base: Any
    head: Any
    base_text: str
    head_text: str
    measured: dict[str, float]
    max_headroom_pct: float

    def justified(self, kpi_id: str) -> bool:
        """The rule: a loosening is justified when the head's justification is non-empty and new in this edit."""
        old = self.base.kpis.get(kpi_id)
        new = self.head.kpis.get(kpi_id)
        return bool(new and _norm(new.justification)) and _norm(new.justification) != _norm(old.justification if old else "")

    def tombstone(self, ident: str) -> str | None:
        note = _tombstones(self.head_text).get(ident)
        return None if note is None or _tombstones(self.base_text).get(ident) == note else note

    def settings_note(self) -> str | None:
        """A `# settings: <why>` comment new in the head: settings have no justification field."""
        old = {_norm(n) for n in _settings_notes(self.base_text)}
        return next((n for n in _settings_notes(self.head_text) if _norm(n) not in old), None)


def _all_added(head: Any, why: str) -> list[BudgetChange]:
    out = [BudgetChange(None, lane.id, "added", "lane", None, lane.command, "", "", Status.PASS, why, lane.line or None)
           for lane in head.lanes.values()]
    for kpi in head.kpis.values():
        out.append(_added_kpi(head, kpi, why))
    return out


def _added_kpi(head: Any, kpi: Any, why: str) -> BudgetChange:
    bounds = f"target {_fmt(kpi.target)}, limit {_fmt(kpi.limit)}"
    if _norm(kpi.owner):
        return BudgetChange(kpi.id, kpi.lane, "added", "kpi", None, bounds, kpi.justification, kpi.owner, Status.PASS, why, kpi.line or None)
    return BudgetChange(kpi.id, kpi.lane, "added", "kpi", None, bounds, kpi.justification, "", Status.YELLOW,
                        f"{why}; no `owner`: name who answers for this budget", kpi.line or None)


def _settings_changes(ctx: _Context) -> list[BudgetChange]:
    """Settings that steer the gate itself: loosening them needs a new `# settings: <why>` comment."""
    old, new = ctx.base.settings, ctx.head.settings
    found: list[tuple[str, tuple[str, ...], Any, Any, bool, str]] = []   # (field, line keys, old, new, looser, note)
    if new.max_headroom_pct != old.max_headroom_pct:
        looser = new.max_headroom_pct > old.max_headroom_pct
        found.append(("max_headroom_pct", ("max_headroom_pct",), old.max_headroom_pct, new.max_headroom_pct, looser,
                      "more headroom over the measurement" if looser else "less headroom over the measurement"))
    if list(new.compare_on) != list(old.compare_on):
        found.append(("compare_on", ("compare_on",), old.compare_on, new.compare_on, True,
                      "changes which runs count as comparable"))
    if new.provenance_tools != old.provenance_tools:
        found.append(("provenance_tools", ("provenance_tools",), old.provenance_tools, new.provenance_tools, True,
                      "changes the tool versions recorded and compared"))
    for name in ("remote_main", "main_branch"):
        if getattr(new, name) != getattr(old, name):
            found.append((name, (name,), getattr(old, name), getattr(new, name), True, "changes which commit is the base"))
    oq, nq = old.quiescence, new.quiescence
    if nq.max_load_per_cpu != oq.max_load_per_cpu:
        looser = nq.max_load_per_cpu > oq.max_load_per_cpu
        found.append(("quiescence.max_load_per_cpu", ("quiescence", "max_load_per_cpu"), oq.max_load_per_cpu,
                      nq.max_load_per_cpu, looser, "a busier host counts as quiet" if looser else "a stricter quiet-host check"))
    dropped = [c for c in oq.competitors if c not in nq.competitors]
    if list(nq.competitors) != list(oq.competitors):
        found.append(("quiescence.competitors", ("quiescence", "competitors"), oq.competitors, nq.competitors, bool(dropped),
                      f"no longer waits for {', '.join(dropped)}" if dropped else "waits for more competitors"))
    note = ctx.settings_note()
    out = []
    for name, keys, a, b, looser, what in found:
        line = ctx.head.line_of("settings", *keys)
        if not looser:
            out.append(BudgetChange(None, None, "tightened", f"settings.{name}", a, b, note or "", "", Status.PASS, f"{what}: good news", line))
            continue
        if note:
            status, reason = Status.YELLOW, f"{what}; justified by a `# settings:` comment"
        else:
            status, reason = Status.FAIL, (f"{what}: a setting of the gate loosened without a reason: add a comment "
                                      f"`# settings: <why>` to the file")
        out.append(BudgetChange(None, None, "loosened", f"settings.{name}", a, b, note or "", "", status, reason, line))
    return out


def _lane_changes(ctx: _Context) -> list[BudgetChange]:
    out: list[BudgetChange] = []
    base, head = ctx.base, ctx.head
    for lane_id, old in base.lanes.items():
        new = head.lanes.get(lane_id)
        if new is None:
            note = ctx.tombstone(lane_id)
            status, reason = (Status.YELLOW, f"lane removed: {note}") if note else (
                Status.FAIL, f"lane removed without a reason: add a comment `# removed {lane_id}: <why>` to the file")
            out.append(BudgetChange(None, lane_id, "lane_removed", "lane", old.command, None, note or "", "", status, reason, None))
            continue
        diffs: list[tuple[str, Any, Any]] = []
        for name in LANE_FIELDS:
            a, b = getattr(old, name), getattr(new, name)
            if name == "env":
                for var in sorted(set(a) | set(b)):
                    if a.get(var, "<unset>") != b.get(var, "<unset>"):
                        diffs.append((f"env.{var}", a.get(var, "<unset>"), b.get(var, "<unset>")))
            elif a != b:
                diffs.append((name, a, b))
        if diffs:
            out += _lane_verdicts(ctx, lane_id, diffs, _affected_kpis(head, lane_id), "changes what {} measure")
        if new.repeats > old.repeats:
            # more samples can only lower a minimum: a `min` aggregate (and a counted KPI's change verdict,
            # min of N against min of N) gets easier to pass for lower-is-better KPIs
            favoured = [k.id for k in head.kpis.values() if k.lane == lane_id and k.direction == "lower"
                        and (k.aggregate == "min" or k.kpi_class == "counted")]
            if favoured:
                out += _lane_verdicts(ctx, lane_id, [("repeats", old.repeats, new.repeats)], favoured,
                                      "more repeats lower the minimum that {} take")
    for lane_id, new in head.lanes.items():
        if lane_id not in base.lanes:
            out.append(BudgetChange(None, lane_id, "added", "lane", None, new.command, "", "", Status.PASS, "new lane", new.line or None))
    return out


def _lane_verdicts(ctx: _Context, lane_id: str, diffs: list[tuple[str, Any, Any]], affected: list[str],
                   what: str) -> list[BudgetChange]:
    """A lane edit is justified by a new justification on one of the KPIs it affects."""
    by = next((k for k in affected if ctx.justified(k)), None)
    why = ctx.head.kpis[by].justification if by else None
    out = []
    for name, a, b in diffs:
        line = _lane_line(ctx.head, lane_id, name)
        if not affected:
            status, reason = Status.PASS, "no KPI measures this lane"
        elif why:
            status, reason = Status.YELLOW, f"{what.format(', '.join(affected))}; justified by kpis.{by}"
        else:
            status, reason = Status.FAIL, (f"{what.format(', '.join(affected))}: lane changed without a justification: "
                                      f"update the `justification` of {' or '.join(affected)} to say why")
        out.append(BudgetChange(None, lane_id, "lane_changed", name, a, b, why or "", "", status, reason, line))
    return out


def _lane_line(head: Any, lane_id: str, name: str) -> int:
    """The lane's own key if it sets it, else the `defaults:` entry it inherits."""
    parts = tuple(name.split(".", 1))
    inherited = ("defaults",) + parts
    if ("lanes", lane_id) + parts not in head.lines and inherited in head.lines:
        return int(head.lines[inherited])
    return int(head.line_of("lanes", lane_id, *parts))


def _affected_kpis(config: Any, lane_id: str) -> list[str]:
    """KPIs on the lane, or on lanes primed (directly or not) by it: a primer's command shapes their cache."""
    lanes = {lane_id}
    grew = True
    while grew:
        grew = False
        for lane in config.lanes.values():
            if lane.prime in lanes and lane.id not in lanes:
                lanes.add(lane.id)
                grew = True
    return [k.id for k in config.kpis.values() if k.lane in lanes]


def _kpi_changes(ctx: _Context) -> list[BudgetChange]:
    out: list[BudgetChange] = []
    for kpi_id, old in ctx.base.kpis.items():
        new = ctx.head.kpis.get(kpi_id)
        if new is None:
            note = ctx.tombstone(kpi_id)
            bounds = f"target {_fmt(old.target)}, limit {_fmt(old.limit)}"
            status, reason = (Status.YELLOW, f"KPI removed: {note}") if note else (
                Status.FAIL, f"KPI removed without a reason: add a comment `# removed {kpi_id}: <why>` to the file")
            out.append(BudgetChange(kpi_id, old.lane, "removed", "kpi", bounds, None, note or "", old.owner, status, reason, None))
            continue
        out += _compare_kpi(ctx, old, new)
    for kpi_id, new in ctx.head.kpis.items():
        if kpi_id not in ctx.base.kpis:
            out.append(_added_kpi(ctx.head, new, "new KPI"))
    return out


def _compare_kpi(ctx: _Context, old: Any, new: Any) -> list[BudgetChange]:
    found: list[tuple[str, str, Any, Any, str]] = []   # (kind, field, old, new, note)
    for name in REDEFINING_FIELDS:
        if getattr(old, name) != getattr(new, name):
            found.append(("loosened", "class" if name == "kpi_class" else name, getattr(old, name), getattr(new, name),
                          "the KPI now measures something else"))
    # a redefined KPI still lists its bound changes and gets the "far looser" check
    lower = new.direction == "lower"
    tightened_bounds = 0
    bounds = [n for n in ("target", "limit") if getattr(old, n) is not None or getattr(new, n) is not None]
    for name in bounds:
        a, b = getattr(old, name), getattr(new, name)
        if a == b:
            continue
        if b is None:
            found.append(("loosened", name, a, b, f"{name} removed"))
        elif a is None or (b < a if lower else b > a):
            found.append(("tightened", name, a, b, f"{name} added" if a is None else "tighter"))
            tightened_bounds += 1
        else:
            found.append(("loosened", name, a, b, "raised" if lower else "lowered"))
    if new.aggregate != old.aggregate:
        looser = (new.aggregate == "min") == lower
        found.append(("loosened" if looser else "tightened", "aggregate", old.aggregate, new.aggregate,
                      "a more forgiving aggregate" if looser else "a stricter aggregate"))
    for name in WIDER_FIELDS + FEWER_FIELDS:
        if name in FEWER_FIELDS and new.kpi_class != "timed":
            continue                       # only timed KPIs are sampled in pairs
        a, b = getattr(old, name), getattr(new, name)
        ea, eb = _effective(old, name), _effective(new, name)
        if ea == eb:
            continue                       # the same budget once defaults are filled in
        looser = eb > ea if name in WIDER_FIELDS else eb < ea
        substituted = any(raw != eff and not math.isinf(eff) for raw, eff in ((a, ea), (b, eb)))
        shown = f" ({_fmt(ea)} → {_fmt(eb)} with defaults)" if substituted else ""
        if name in FEWER_FIELDS:
            note = ("fewer pairs: a weaker test" if looser else "more pairs: a stronger test") + shown
        elif looser:
            note = ("removed" if b is None else "widened") + shown
        else:
            note = ("added" if a is None else "narrowed") + shown
        found.append(("loosened" if looser else "tightened", name, a, b, note))
    if old.expires != new.expires and old.expires is not None:
        if new.expires is None or new.expires > old.expires:
            closed = new.expires is None and bounds and tightened_bounds == len(bounds)
            kind = "tightened" if closed else "loosened"
            note = "waiver closed by a tighter budget" if closed else ("waiver made permanent" if new.expires is None else "waiver extended")
            found.append((kind, "expires", old.expires, new.expires, note))
        else:
            found.append(("tightened", "expires", old.expires, new.expires, "waiver shortened"))
    justified = ctx.justified(new.id)
    out = []
    for kind, name, a, b, note in found:
        line = ctx.head.line_of("kpis", new.id, name)
        if kind == "tightened":
            out.append(BudgetChange(new.id, new.lane, kind, name, a, b, new.justification, new.owner, Status.PASS, f"{note}: good news", line))
            continue
        status, reason, unmeasured = _loosened_verdict(ctx, old, new, name, b, justified, note)
        out.append(BudgetChange(new.id, new.lane, kind, name, a, b, new.justification, new.owner, status, reason, line,
                                unmeasured))
    return out


def _effective(kpi: Any, name: str) -> float:
    """The value the comparator acts on; None without a default is "no such budget", the loosest."""
    from molt_budget.compare.model import DEFAULT_TIMED_MAX_INCREASE_PCT

    value = getattr(kpi, name)
    if name == "max_increase_pct" and kpi.kpi_class == "timed":
        # the comparator reads `max_increase_pct or 10`, and a budget <= 0 cannot be a timed policy
        return DEFAULT_TIMED_MAX_INCREASE_PCT if value is None or value <= 0 else float(value)
    if name == "noise_floor_pct":
        return DEFAULT_NOISE_FLOOR_PCT if value is None else float(value)
    if name == "yellow_fraction":
        return DEFAULT_YELLOW_FRACTION if value is None else float(value)
    if name == "pairs":
        return DEFAULT_PAIRS if value is None else int(value)
    if name == "max_pairs":
        return max(DEFAULT_MAX_PAIRS, _effective(kpi, "pairs")) if value is None else int(value)
    return math.inf if value is None else float(value)


def _loosened_verdict(ctx: _Context, old: Any, new: Any, name: str, value: Any, justified: bool, note: str) -> tuple[Status, str, bool]:
    problems = []
    if not justified and _norm(new.justification):
        problems.append(f"{note} without a new justification (the `justification` is unchanged since the base: say why it loosens now)")
    elif not justified:
        problems.append(f"{note} without a justification: set `justification:` to why (`molt-budget bump --reason`)")
    unmeasured = False
    if name in ("target", "limit") and value is not None:
        far = _far_looser(ctx, old, new, name, float(value))
        if far is NOTHING_MEASURED:
            unmeasured = True
        elif far:
            problems.append(far)
    if problems:
        status, reason = Status.FAIL, "; ".join(problems)
    else:
        status, reason = Status.YELLOW, f"{note}; justified"
    if unmeasured:
        reason += ("; not checked against a measurement: none to compare with (no --results, no main record in "
                   "history, no seeded_from at the base)")
    return status, reason, unmeasured


NOTHING_MEASURED = "nothing measured"


def _far_looser(ctx: _Context, old: Any, new: Any, name: str, value: float) -> str | None:
    """'budget far looser than measured' when a loosened bound sits past measured × (1 ± max headroom).

    The measurement is never the edit's own `seeded_from` (the pull request could write any
    number there): it is a real one (--results, history, this run), else the base's seeded_from.
    """
    measured = ctx.measured.get(new.id)
    source = "measured"
    if measured is not None and not (isinstance(measured, (int, float)) and math.isfinite(measured)):
        measured = None
    seeded = old.seeded_from.get("value") if isinstance(old.seeded_from, dict) else None
    if measured is None and isinstance(seeded, (int, float)) and not isinstance(seeded, bool):
        measured, source = float(seeded), "the base's seeded_from.value"
    if measured is None or not math.isfinite(measured):
        return NOTHING_MEASURED
    h = ctx.max_headroom_pct / 100
    lower = new.direction == "lower"
    allowed = measured * (1 + h) if lower else measured * max(0.0, 1 - h)
    if name == "limit" and old.target and old.limit is not None:
        ratio = old.limit / old.target
        allowed *= max(ratio, 1.0) if lower else min(ratio, 1.0)
    if (value > allowed) if lower else (value < allowed):
        word = "above" if lower else "below"
        return (f"budget far looser than measured: {name} {_fmt(value)} is {word} {source} {_fmt(round(measured, 6))} "
                f"{'+' if lower else '-'} {ctx.max_headroom_pct:g}% (= {_fmt(round(allowed, 6))}; settings.max_headroom_pct)")
    return None


def _waivers(head: Any, today: date) -> list[BudgetChange]:
    out = []
    for kpi in head.kpis.values():
        if not kpi.expires:
            continue
        line = head.line_of("kpis", kpi.id, "expires")
        try:
            until = date.fromisoformat(str(kpi.expires))
        except ValueError:
            out.append(BudgetChange(kpi.id, kpi.lane, "waiver_expired", "expires", None, kpi.expires, kpi.justification, kpi.owner,
                                    Status.FAIL, f"expires {kpi.expires!r} is not a real date (YYYY-MM-DD)", line))
            continue
        if until < today:
            out.append(BudgetChange(kpi.id, kpi.lane, "waiver_expired", "expires", None, kpi.expires, kpi.justification, kpi.owner,
                                    Status.FAIL, f"waiver expired on {kpi.expires}: re-set the budget (`molt-budget bump`) or extend "
                                    f"it with a new justification", line))
        else:
            days = (until - today).days
            out.append(BudgetChange(kpi.id, kpi.lane, "unchanged_note", "expires", None, kpi.expires, kpi.justification, kpi.owner,
                                    Status.PASS, f"temporary waiver: {days} day(s) left", line))
    return out


# -- one call for `budget-diff` and `check` ---------------------------------------------


class GateResult(Struct):
    base: str | None          # resolved base commit
    base_found: bool          # False: no budgets file at the base (new adoption)
    rel_path: str
    changes: list[BudgetChange]

    @property
    def unmeasured(self) -> list[str]:
        """KPIs whose loosened bound had no measurement to be held against."""
        return sorted({c.kpi for c in self.changes if c.unmeasured and c.kpi})

    @property
    def status(self) -> Status:
        return worst(c.status for c in self.changes)


def budget_gate(config_path: Path, base_ref: str | None, *, measured: dict[str, float], today: date,
                max_headroom_pct: float | None = None, head: Any = None, parser: Parser | None = None) -> GateResult:
    """Compare the working-tree budgets file with its version at base_ref (default: merge-base with the
    main branch the BASE file names, see choose_base); `max_headroom_pct` comes from the base file too.

    `head`: the Config the run already parsed from this file (with its text), so it is not parsed
    again; the base file is parsed once however many steps need it."""
    path = Path(config_path).resolve()
    if head is not None and head.text:
        head_text = head.text
    else:
        try:
            head_text = path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{config_path}: no such budgets file (pass --config FILE)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{config_path}: cannot read budgets file: {exc}") from None
    parser = parser or Parser(path.name, head)
    head = parser.parse(head_text)
    repo = repo_root(path)
    rel = path.relative_to(repo).as_posix()
    base = resolve_commit(repo, base_ref) if base_ref else choose_base(repo, rel, head.settings, parser)
    if base is None:
        raise ConfigError(f"--base {base_ref}: not a commit in {repo}")
    base_text = read_budgets_at(repo, base, rel)
    # the gate's own settings come from the base: the edit under review must not widen its headroom
    base_config = parser.parse_or_none(base_text)
    trusted = (base_config or head).settings
    headroom = trusted.max_headroom_pct if max_headroom_pct is None else max_headroom_pct
    changes = diff_budgets(base_text, head_text, measured=measured, today=today, max_headroom_pct=headroom,
                           path_name=path.name, parser=parser)
    return GateResult(base=base, base_found=base_text is not None, rel_path=rel, changes=changes)
