"""`bump`, `ratchet` and `budget-diff`: budgets change only by reviewed YAML edits.

Registered through molt_budget.cli.EXTENSIONS; heavy imports stay inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import date

BUMP_EPILOG = """\
examples:
  molt-budget bump dev_warm_s --target 4 --reason "daemon start-up moved into the warm path (#812)"
  molt-budget bump ir_ops --from-results .molt-budget/runs/<run>/results.json --headroom 10% \\
      --reason "stdlib shims inlined (#901)" --owner compiler-frontend
  molt-budget bump release_fast_warm_s --target 7 --expires 2026-12-31 --reason "waiver while cargo 1.9x lands"
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "bump", help="re-set one KPI's budget in budgets.yaml with its justification (prints the diff)",
        description="Edit one KPI in budgets.yaml in place (comments and formatting kept) and record the "
                    "justification, owner, basis, seeded_from and date. Without --limit the limit keeps its ratio "
                    "to the target. --expires makes it a temporary waiver.",
        epilog=BUMP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kpi", metavar="KPI")
    p.add_argument("--target", metavar="X", help="new target (yellow past it)")
    p.add_argument("--limit", metavar="Y", help="new limit (fail past it)")
    p.add_argument("--max-increase-pct", metavar="PCT", help="new change budget: how much one change may add, in %% of the base")
    p.add_argument("--max-increase-abs", metavar="N", help="new change budget: how much one change may add, in the KPI's unit")
    p.add_argument("--from-results", metavar="RESULTS.json", help="set the target from this run's measured value")
    p.add_argument("--headroom", metavar="PCT", help="with --from-results: target = measured + PCT (default 10%%)")
    p.add_argument("--reason", metavar="TEXT", help="required: why the budget changes (recorded as `justification`)")
    p.add_argument("--owner", metavar="NAME", help="who answers for this budget")
    p.add_argument("--expires", metavar="YYYY-MM-DD", help="temporary waiver: the gate fails after this date")
    p.add_argument("--dry-run", action="store_true", help="print the diff, do not write the file")
    _common(p)
    p.set_defaults(handler=cmd_bump)

    p = subparsers.add_parser(
        "ratchet", help="propose tighter budgets where main measures well under the target",
        description="Where the latest measurement on main sits more than --margin under a KPI's target, propose "
                    "target = measured + margin (the limit keeps its ratio). Prints the YAML diff; --write applies it.")
    p.add_argument("--margin", metavar="PCT", default="10%", help="how far under the target counts as 'well under' (default 10%%)")
    p.add_argument("--results", metavar="RESULTS.json", help="measurements to use (default: newest complete run on main in history)")
    p.add_argument("--write", action="store_true", help="write the tighter budgets to the file")
    _common(p)
    p.set_defaults(handler=cmd_ratchet)

    p = subparsers.add_parser(
        "budget-diff", help="gate on budget changes: budgets.yaml at the base commit against the working tree",
        description="List every budget change since the base commit with its verdict. Fails (exit 1) on a loosening "
                    "without a new justification, a loosening far past what was measured, a removal without a "
                    "reason, or an expired waiver. See docs/budget-review.md.")
    p.add_argument("--base", metavar="REF", help="base commit (default: merge-base of HEAD and settings.remote_main, else main)")
    p.add_argument("--results", metavar="RESULTS.json", help="measurements for the 'far looser than measured' check "
                   "(default: newest run on main in history, else the base file's seeded_from)")
    p.add_argument("--json", action="store_true", help="print JSON")
    _common(p)
    p.set_defaults(handler=cmd_budget_diff)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="budgets.yaml", metavar="FILE", help="budgets file (default: ./budgets.yaml)")
    p.add_argument("--today", metavar="YYYY-MM-DD", help=argparse.SUPPRESS)   # tests and replays


def _today(args: argparse.Namespace) -> date:
    from datetime import date

    from molt_budget.budgets.edit import parse_day

    return parse_day(args.today, "--today") if getattr(args, "today", None) else date.today()


def _head_commit(config_path: Path) -> str | None:
    from molt_budget import gitutil

    return gitutil.resolve_commit(config_path.resolve().parent, "HEAD")


# -- bump ------------------------------------------------------------------------------


def cmd_bump(args: argparse.Namespace) -> int:
    from molt_budget.budgets.edit import bump_kpi, parse_number, parse_pct

    config = Path(args.config)
    result = bump_kpi(
        config, args.kpi,
        target=parse_number(args.target) if args.target is not None else None,
        limit=parse_number(args.limit) if args.limit is not None else None,
        from_results=args.from_results,
        headroom_pct=parse_pct(args.headroom) if args.headroom is not None else None,
        reason=args.reason or "", owner=args.owner, expires=args.expires,
        max_increase_pct=parse_pct(args.max_increase_pct) if args.max_increase_pct is not None else None,
        max_increase_abs=parse_number(args.max_increase_abs) if args.max_increase_abs is not None else None,
        today=_today(args), commit=_head_commit(config), write=not args.dry_run,
    )
    sys.stdout.write(result.diff)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    verb = "would update" if args.dry_run else "updated"
    print(f"molt-budget: {verb} kpis.{result.kpi} in {args.config}; commit it for review (CODEOWNERS approve budget changes)",
          file=sys.stderr)
    return 0


# -- ratchet ---------------------------------------------------------------------------


def cmd_ratchet(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from molt_budget.budgets.edit import measured_values, parse_pct
    from molt_budget.budgets.ratchet import apply_ratchets, latest_main_measurements, propose_ratchets
    from molt_budget.config import load_config
    from molt_budget.report.escape import plain

    margin = parse_pct(args.margin)
    config = load_config(args.config)
    if args.results:
        from molt_budget.results.store import load_results

        results = load_results(Path(args.results))
        measured = measured_values(results, config)
        source, commit = f"run {results.run_id}", results.provenance.get("commit")
        if not results.authoritative:
            # a noisy host says nothing trustworthy about times; counts stay exact
            timed = sorted(k for k in measured if k in config.kpis and config.kpis[k].kpi_class == "timed")
            measured = {k: v for k, v in measured.items() if k not in timed}
            if timed:
                print(f"molt-budget: note: {args.results} was not measured on a quiet host: no ratchet for timed "
                      f"KPIs ({', '.join(timed)})", file=sys.stderr)
    else:
        latest = latest_main_measurements(config)
        measured, source, commit = latest.values, latest.source, latest.commit
    # the run id and commit came from a results file or the history's data branch (anyone can
    # forge one): one printable line each, on the terminal and in the basis written to the YAML
    source, commit = plain(source), (plain(commit) if commit else commit)
    ratchets = propose_ratchets(config, measured, margin)
    if not ratchets:
        print(f"no ratchets: no KPI measures more than {margin:g}% under its target ({source})")
        return 0
    rows = [[r.kpi, _num(r.measured), f"{_num(r.old_target)} -> {_num(r.new_target)}", f"{_num(r.old_limit)} -> {_num(r.new_limit)}"]
            for r in ratchets]
    print(f"ratchets from {source} (margin {margin:g}%):")
    print(tabulate(rows, headers=["KPI", "measured", "target", "limit"], tablefmt="github", disable_numparse=True))
    diff = apply_ratchets(Path(args.config), ratchets, margin_pct=margin, today=_today(args), source=source,
                          commit=commit, write=args.write)
    print()
    sys.stdout.write(diff)
    if args.write:
        print(f"molt-budget: wrote {len(ratchets)} tighter budget(s) to {args.config}; commit it for review", file=sys.stderr)
    else:
        print("molt-budget: not written (pass --write to apply)", file=sys.stderr)
    return 0


def _num(value: float | None) -> str:
    from molt_budget.budgets.edit import format_number, short_number

    return "-" if value is None else format_number(short_number(value))


# -- budget-diff -----------------------------------------------------------------------


def cmd_budget_diff(args: argparse.Namespace) -> int:
    from molt_budget.compare.budget_changes import budget_gate
    from molt_budget.compare.model import exit_code

    config_path = Path(args.config)
    measured = _measurements(config_path, args.results)
    gate = budget_gate(config_path, args.base, measured=measured, today=_today(args))
    if args.json:
        print(json.dumps({"base": gate.base, "path": gate.rel_path, "base_found": gate.base_found, "status": gate.status,
                          "unmeasured": gate.unmeasured, "changes": [c.to_dict() for c in gate.changes]}, indent=2, default=str))
    else:
        print(render_changes(gate))
    return exit_code(gate.status)


def _measurements(config_path: Path, results_path: str | None) -> dict[str, float]:
    """--results if given; else the newest main run in history; else none (the check falls back to the base file's seeded_from)."""
    from molt_budget.budgets.edit import measured_values
    from molt_budget.config import load_config
    from molt_budget.errors import ConfigError

    config = load_config(config_path)
    if results_path:
        from molt_budget.results.store import load_results

        return measured_values(load_results(Path(results_path)), config)
    from molt_budget.budgets.ratchet import latest_main_measurements

    try:
        return latest_main_measurements(config).values
    except ConfigError:
        return {}


def render_changes(gate: Any) -> str:
    from tabulate import tabulate

    from molt_budget.compare.model import severity_key

    base = (gate.base or "?")[:12]
    if not gate.changes:
        return f"no budget changes in {gate.rel_path} since {base}"
    rows = []
    for c in sorted(gate.changes, key=lambda c: severity_key(c.status)):
        status = c.status.upper() if c.status != "pass" else "pass"
        what = c.kpi or (f"lane {c.lane}" if c.lane else "-")
        where = f"{gate.rel_path}:{c.line}" if c.line else "-"
        rows.append([status, c.kind, what, c.field, f"{_show(c.old)} -> {_show(c.new)}", c.justification or "-", c.reason, where])
    table = tabulate(rows, headers=["status", "change", "KPI", "field", "old -> new", "justification", "reason", "where"],
                     tablefmt="github", disable_numparse=True)
    counts = {s: sum(1 for c in gate.changes if c.status == s) for s in ("fail", "yellow", "pass")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    adoption = " (no budgets file at the base: new adoption)" if not gate.base_found else ""
    unmeasured = ""
    if gate.unmeasured:
        unmeasured = (f"\nnot checked for 'far looser than measured' (nothing measured to compare with): "
                      f"{', '.join(gate.unmeasured)}; pass --results RESULTS.json or record a main run")
    return (f"budget changes in {gate.rel_path} since {base}{adoption}\n{table}\n"
            f"budget gate: {gate.status.upper()} ({summary}){unmeasured}")


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        text = " ".join(str(v) for v in value)
    else:
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."
