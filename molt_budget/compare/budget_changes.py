"""The gate on budget changes: budgets.yaml at the base commit against the head.

A raised ceiling must not be "just another diff". Every loosening is listed with old → new
and its justification, and fails when:
  * its justification did not change in this edit (the head's `justification` must be
    non-empty and differ from the base's: an old reason cannot cover a new loosening);
  * a loosened target sits past measured × (1 + max_headroom_pct/100) ("budget far looser
    than measured"; mirrored for higher-is-better; a loosened limit may keep its previous
    distance above the target);
  * a removed KPI or lane has no tombstone comment `# removed <id>: <why>` new in the head.
An expired waiver (`expires` before today) fails on any edit; a new KPI without an owner
is yellow; a justified loosening is yellow (it needs the reviewers' eyes); tightening is
listed as good news. With no base file (a new adoption) everything is "added".
"""

from __future__ import annotations

import math
import re
import subprocess
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

from molt_budget.errors import ConfigError

KINDS = ("loosened", "tightened", "added", "removed", "lane_changed", "lane_removed", "waiver_expired", "unchanged_note")
# lane keys that change what a KPI measures (timeouts and repeats do not)
LANE_FIELDS = ("command", "env", "cwd", "cache", "cache_state", "prime", "expect_cache")
# bigger is looser; None means "no such budget" (the loosest) except where a default applies
WIDER_FIELDS = ("max_increase_pct", "max_increase_abs", "max_drift_pct", "yellow_fraction", "noise_floor_pct")
NONE_IS_DEFAULT = ("yellow_fraction", "noise_floor_pct")
REDEFINING_FIELDS = ("lane", "metric", "direction", "kpi_class")
TOMBSTONE = re.compile(r"^\s*#\s*removed\s+(?:kpi\s+|lane\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*:\s*(\S.*?)\s*$", re.I)


@dataclass
class BudgetChange:
    kpi: str | None
    lane: str | None
    kind: str
    field: str
    old: Any
    new: Any
    justification: str
    owner: str
    status: str          # pass | yellow | fail
    reason: str
    line: int | None     # in the head file, for annotations

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- git -------------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, timeout=60)
    except FileNotFoundError:
        raise ConfigError("git is not installed: the budget-change gate reads the base budgets with git") from None
    except subprocess.TimeoutExpired:
        raise ConfigError(f"git {' '.join(args)} timed out in {repo}") from None


def resolve_commit(repo: Path, ref: str) -> str | None:
    proc = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if proc.returncode != 0:
        return None
    return proc.stdout.decode().strip() or None


def read_budgets_at(repo: Path, commit: str, rel_path: str) -> str | None:
    """The file's text at `commit`; None when it does not exist there (a new adoption)."""
    sha = resolve_commit(repo, commit)
    if sha is None:
        raise ConfigError(f"{commit}: not a commit in {repo} (fetch it, or pass --base REF)")
    rel = rel_path.replace("\\", "/").lstrip("/")
    while rel.startswith("./"):
        rel = rel[2:]
    if _git(repo, "cat-file", "-e", f"{sha}:{rel}").returncode != 0:
        return None
    proc = _git(repo, "show", f"{sha}:{rel}")
    if proc.returncode != 0:
        raise ConfigError(f"git show {commit}:{rel} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode("utf-8", errors="replace")


def repo_root(path: Path) -> Path:
    folder = path if path.is_dir() else path.parent
    proc = _git(folder, "rev-parse", "--show-toplevel")
    if proc.returncode != 0:
        raise ConfigError(f"{path}: not inside a git repository (the budget-change gate compares against a base commit)")
    return Path(proc.stdout.decode().strip()).resolve()


def default_base(repo: Path, remote_main: str = "origin/main", main_branch: str = "main") -> str:
    """merge-base of HEAD and the remote main branch, else of HEAD and the local main branch."""
    for ref in (remote_main, main_branch):
        if ref and resolve_commit(repo, ref):
            proc = _git(repo, "merge-base", "HEAD", ref)
            if proc.returncode == 0 and proc.stdout.strip():
                return proc.stdout.decode().strip()
    raise ConfigError(f"no base to compare budgets with: neither {remote_main} nor {main_branch} shares history with HEAD (pass --base REF)")


# -- parsing ---------------------------------------------------------------------------


def _parse(text: str, path_name: str) -> Any:
    from molt_budget.config.loader import parse_config
    from molt_budget.config.yaml_lines import load_yaml_with_lines

    path = Path(path_name)
    data, lines = load_yaml_with_lines(path, text)
    return parse_config(path, data, lines)


def _norm(text: str | None) -> str:
    return " ".join((text or "").split())


def _tombstones(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        match = TOMBSTONE.match(line)
        if match:
            out[match.group(1)] = match.group(2)
    return out


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
) -> list[BudgetChange]:
    """Every budget change between base and head with its verdict; a broken head raises ConfigError."""
    head = _parse(head_text, path_name)
    changes: list[BudgetChange] = []
    if base_text is None:
        changes += _all_added(head, "no budgets file at the base commit (new adoption)")
    else:
        try:
            base = _parse(base_text, path_name)
        except ConfigError as exc:
            changes.append(BudgetChange(None, None, "unchanged_note", "file", None, None, "", "", "yellow",
                                        f"base budgets unreadable ({exc}); only the head's waivers were checked", None))
        else:
            ctx = _Context(base, head, base_text, head_text, measured, max_headroom_pct)
            changes += _lane_changes(ctx) + _kpi_changes(ctx)
    changes += _waivers(head, today)
    return changes


@dataclass
class _Context:
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


def _all_added(head: Any, why: str) -> list[BudgetChange]:
    out = [BudgetChange(None, lane.id, "added", "lane", None, lane.command, "", "", "pass", why, lane.line or None)
           for lane in head.lanes.values()]
    for kpi in head.kpis.values():
        out.append(_added_kpi(head, kpi, why))
    return out


def _added_kpi(head: Any, kpi: Any, why: str) -> BudgetChange:
    bounds = f"target {_fmt(kpi.target)}, limit {_fmt(kpi.limit)}"
    if _norm(kpi.owner):
        return BudgetChange(kpi.id, kpi.lane, "added", "kpi", None, bounds, kpi.justification, kpi.owner, "pass", why, kpi.line or None)
    return BudgetChange(kpi.id, kpi.lane, "added", "kpi", None, bounds, kpi.justification, "", "yellow",
                        f"{why}; no `owner`: name who answers for this budget", kpi.line or None)


def _lane_changes(ctx: _Context) -> list[BudgetChange]:
    out: list[BudgetChange] = []
    base, head = ctx.base, ctx.head
    for lane_id, old in base.lanes.items():
        new = head.lanes.get(lane_id)
        if new is None:
            note = ctx.tombstone(lane_id)
            status, reason = ("yellow", f"lane removed: {note}") if note else (
                "fail", f"lane removed without a reason: add a comment `# removed {lane_id}: <why>` to the file")
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
        if not diffs:
            continue
        affected = _affected_kpis(head, lane_id)
        by = next((k for k in affected if ctx.justified(k)), None)
        why = head.kpis[by].justification if by else None
        for name, a, b in diffs:
            line = _lane_line(head, lane_id, name)
            if not affected:
                status, reason = "pass", "no KPI measures this lane"
            elif why:
                status, reason = "yellow", f"changes what {', '.join(affected)} measure; justified by kpis.{by}"
            else:
                status, reason = "fail", (f"lane changed without a justification: update the `justification` of "
                                          f"{' or '.join(affected)} to say why")
            out.append(BudgetChange(None, lane_id, "lane_changed", name, a, b, why or "", "", status, reason, line))
    for lane_id, new in head.lanes.items():
        if lane_id not in base.lanes:
            out.append(BudgetChange(None, lane_id, "added", "lane", None, new.command, "", "", "pass", "new lane", new.line or None))
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
            status, reason = ("yellow", f"KPI removed: {note}") if note else (
                "fail", f"KPI removed without a reason: add a comment `# removed {kpi_id}: <why>` to the file")
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
    redefined = bool(found)
    lower = new.direction == "lower"
    tightened_bounds = 0
    bounds = [n for n in ("target", "limit") if getattr(old, n) is not None or getattr(new, n) is not None]
    if not redefined:
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
    for name in WIDER_FIELDS:
        a, b = getattr(old, name), getattr(new, name)
        if a == b or (name in NONE_IS_DEFAULT and (a is None or b is None)):
            continue
        if b is None or (a is not None and b > a):
            found.append(("loosened", name, a, b, "removed" if b is None else "widened"))
        else:
            found.append(("tightened", name, a, b, "added" if a is None else "narrowed"))
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
            out.append(BudgetChange(new.id, new.lane, kind, name, a, b, new.justification, new.owner, "pass", f"{note}: good news", line))
            continue
        status, reason = _loosened_verdict(ctx, old, new, name, b, justified, note)
        out.append(BudgetChange(new.id, new.lane, kind, name, a, b, new.justification, new.owner, status, reason, line))
    return out


def _loosened_verdict(ctx: _Context, old: Any, new: Any, name: str, value: Any, justified: bool, note: str) -> tuple[str, str]:
    problems = []
    if not justified and _norm(new.justification):
        problems.append(f"{note} without a new justification (the `justification` is unchanged since the base: say why it loosens now)")
    elif not justified:
        problems.append(f"{note} without a justification: set `justification:` to why (`molt-budget bump --reason`)")
    if name in ("target", "limit") and value is not None:
        far = _far_looser(ctx, old, new, name, float(value))
        if far:
            problems.append(far)
    return ("fail", "; ".join(problems)) if problems else ("yellow", f"{note}; justified")


def _far_looser(ctx: _Context, old: Any, new: Any, name: str, value: float) -> str | None:
    """'budget far looser than measured' when a loosened bound sits past measured × (1 ± max headroom)."""
    measured = ctx.measured.get(new.id)
    source = "measured"
    if measured is None and isinstance(new.seeded_from, dict) and isinstance(new.seeded_from.get("value"), (int, float)):
        measured, source = float(new.seeded_from["value"]), "seeded_from.value"
    if measured is None or not math.isfinite(measured):
        return None
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
                                    "fail", f"expires {kpi.expires!r} is not a real date (YYYY-MM-DD)", line))
            continue
        if until < today:
            out.append(BudgetChange(kpi.id, kpi.lane, "waiver_expired", "expires", None, kpi.expires, kpi.justification, kpi.owner,
                                    "fail", f"waiver expired on {kpi.expires}: re-set the budget (`molt-budget bump`) or extend "
                                    f"it with a new justification", line))
        else:
            days = (until - today).days
            out.append(BudgetChange(kpi.id, kpi.lane, "unchanged_note", "expires", None, kpi.expires, kpi.justification, kpi.owner,
                                    "pass", f"temporary waiver: {days} day(s) left", line))
    return out


# -- one call for `budget-diff` and `check` ---------------------------------------------


@dataclass
class GateResult:
    base: str | None          # resolved base commit
    base_found: bool          # False: no budgets file at the base (new adoption)
    rel_path: str
    changes: list[BudgetChange]

    @property
    def status(self) -> str:
        statuses = {c.status for c in self.changes}
        return "fail" if "fail" in statuses else "yellow" if "yellow" in statuses else "pass"


def budget_gate(config_path: Path, base_ref: str | None, *, measured: dict[str, float], today: date,
                max_headroom_pct: float | None = None) -> GateResult:
    """Compare the working-tree budgets file with its version at base_ref (default: merge-base with main)."""
    path = Path(config_path).resolve()
    try:
        head_text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{config_path}: no such budgets file (pass --config FILE)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config_path}: cannot read budgets file: {exc}") from None
    head = _parse(head_text, path.name)
    repo = repo_root(path)
    rel = path.relative_to(repo).as_posix()
    base = resolve_commit(repo, base_ref) if base_ref else default_base(repo, head.settings.remote_main, head.settings.main_branch)
    if base is None:
        raise ConfigError(f"--base {base_ref}: not a commit in {repo}")
    base_text = read_budgets_at(repo, base, rel)
    headroom = head.settings.max_headroom_pct if max_headroom_pct is None else max_headroom_pct
    changes = diff_budgets(base_text, head_text, measured=measured, today=today, max_headroom_pct=headroom, path_name=path.name)
    return GateResult(base=base, base_found=base_text is not None, rel_path=rel, changes=changes)
