"""`molt-budget merge RESULTS.json... --out merged.json`: one results file from CI shards.

Why: the PR workflow runs lane groups as a GitHub Actions matrix (one job each, same
commit); the gate judges the union. Two shards with the same lane, different commits or
different budgets files are refused: their union would not be one measurement.
The exit code is the merge's (0 merged, 2 bad input), not the verdict's: `report` or
`verdict` gate on that.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from molt_budget.config.model import Config
    from molt_budget.results.model import RunResults


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "merge", help="merge sharded results files (one per lane group, same commit) into one",
        description="Merge results files of lane groups measured at the same commit; with --config the KPIs are "
                    "judged again against the budgets file. Exit 0 when merged (the verdict is `report`'s job).",
    )
    p.add_argument("results", nargs="*", metavar="RESULTS.json")
    p.add_argument("--out", required=True, metavar="PATH", help="merged results file to write")
    p.add_argument("--config", metavar="FILE", help="budgets file to judge every KPI against (its KPI lines go into annotations)")
    p.add_argument("--report-json", metavar="PATH",
                   help="also write a budgets-only comparison report (base: null) for `molt-budget report`")
    p.add_argument("--allow-empty", action="store_true",
                   help="no results files is not an error: every lane group was skipped (the check reports neutral)")
    p.add_argument("--reports", nargs="+", metavar="REPORT.json",
                   help="comparison reports of the shards (`check --lanes G --base SHA --report-json`): merged into "
                        "--report-json instead of a budgets-only report")
    p.add_argument("--expect-lanes", metavar="A,B",
                   help="lanes that were meant to run (needs --config): a missing one makes its KPIs errors, not skipped")
    p.set_defaults(handler=cmd_merge)


def merge_results(shards: list[RunResults], names: list[str]) -> RunResults:
    """Union of lanes; one commit, one budgets file, each lane once."""
    from molt_budget.errors import ConfigError
    from molt_budget.results.model import RunResults

    owner: dict[str, str] = {}
    commits: dict[str, str] = {}
    for shard, name in zip(shards, names):
        for lane in shard.lanes:
            if lane in owner:
                raise ConfigError(f"{name}: lane {lane!r} is also in {owner[lane]}: each lane must be measured in one shard only")
            owner[lane] = name
        commit = shard.provenance.get("commit")
        if commit:
            commits.setdefault(str(commit), name)
    if len(commits) > 1:
        (c1, n1), (c2, n2) = list(commits.items())[:2]
        raise ConfigError(f"{n2}: measured commit {c2[:12]} but {n1} measured {c1[:12]}: shards must come from the same commit")
    digests = {s.config_sha256 for s in shards if s.config_sha256}
    if len(digests) > 1:
        raise ConfigError(f"{names[-1]}: shards were measured with different budgets files (config_sha256 differs)")
    first = shards[0]
    reasons: list[str] = []
    for s in shards:
        reasons += [r for r in s.authoritative_reasons if r not in reasons]
    states = {s.state for s in shards}
    provenance = dict(first.provenance)
    provenance["shards"] = [{"run_id": s.run_id, "results": n, "host": s.provenance.get("host")} for s, n in zip(shards, names)]
    finished = [s.finished_utc for s in shards]
    return RunResults(
        run_id="+".join(s.run_id for s in shards),
        config_path=first.config_path,
        config_sha256=first.config_sha256,
        started_utc=min(s.started_utc for s in shards),
        finished_utc=None if None in finished else max(f for f in finished if f),
        state="complete" if states == {"complete"} else "interrupted" if "interrupted" in states else "running",
        provenance=provenance,
        authoritative=all(s.authoritative for s in shards),
        authoritative_reasons=reasons,
        lanes={lane: result for s in shards for lane, result in s.lanes.items()},
        kpis=[k for s in shards for k in s.kpis],
    )


def empty_results(config_path: str) -> RunResults:
    """What `--allow-empty` merges when no lane group ran."""
    import os
    from datetime import datetime, timezone

    from molt_budget.results.model import RunResults

    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return RunResults(
        run_id="skipped", config_path=config_path, config_sha256="", started_utc=now, finished_utc=now, state="complete",
        provenance={"commit": os.environ.get("GITHUB_SHA")}, authoritative=False,
        authoritative_reasons=["no lane group ran: every lane was skipped"],
    )


def rejudge(results: RunResults, config: Config, expected: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """Judge every KPI whose lane ran or was expected to (a missing shard is an error); return the skipped ids."""
    from molt_budget.compare.budget import judge_kpi

    judged = [k for k in config.kpis.values() if k.lane in results.lanes or k.lane in expected]
    results.kpis = [judge_kpi(k, results.lanes.get(k.lane)) for k in judged]
    return [k.id for k in config.kpis.values() if k not in judged]


def budget_report(results: RunResults, config: Config | None, config_path: str, skipped: list[str],
                  results_path: str | None) -> dict[str, Any]:
    """A comparison report with no baseline: the budgets alone decide (schemas/report.schema.json)."""
    from molt_budget import __version__

    counts: dict[str, int] = {}
    kpis = []
    for k in results.kpis:
        counts[k.status] = counts.get(k.status, 0) + 1
        spec = config.kpis.get(k.id) if config else None
        kpis.append({
            "id": k.id, "title": (spec.title if spec and spec.title else k.id), "lane": k.lane, "metric": k.metric,
            "class": k.kpi_class, "unit": k.unit, "direction": k.direction, "target": k.target, "limit": k.limit,
            "line": spec.line if spec and spec.line else None, "base": None, "head": k.value, "delta": None,
            "delta_pct": None, "status": k.status, "budget_status": k.status, "reason": k.reason,
        })
    if skipped:
        counts["skipped"] = len(skipped)
    status = next((s for s in ("fail", "error", "yellow") if counts.get(s)), "pass")
    lanes = ",".join(sorted(results.lanes))
    prov = results.provenance
    return {
        "schema_version": 1,
        "tool_version": __version__,
        "config_path": config_path,
        "verdict": {"status": status, "counts": counts},
        "authoritative": results.authoritative,
        "authoritative_reasons": list(results.authoritative_reasons),
        "base": None,
        "head": {"commit": prov.get("commit"), "ref": prov.get("branch"), "dirty": prov.get("dirty"), "run_id": results.run_id},
        "kpis": kpis,
        "diff": {},
        "reproduce": f"molt-budget check --config {config_path}" + (f" --lanes {lanes}" if lanes else ""),
        "results_path": results_path,
    }


def _display_path(path: str) -> str:
    """Repository-relative when possible, so annotations land on the file in the PR."""
    import os

    try:
        rel = os.path.relpath(path)
    except ValueError:
        return os.path.basename(path)
    return os.path.basename(path) if rel.startswith("..") else rel.replace(os.sep, "/")


def cmd_merge(args: argparse.Namespace) -> int:
    from pathlib import Path

    from molt_budget.errors import ConfigError
    from molt_budget.report.terminal import render
    from molt_budget.results.store import load_results, save_results, write_json_atomic

    if args.reports and not args.report_json:
        raise ConfigError("--reports needs --report-json: the merged report has to go somewhere")
    if not args.results and not args.allow_empty:
        raise ConfigError("merge needs at least one RESULTS.json (or --allow-empty when every lane group was skipped)")
    config = None
    expected = {x.strip() for x in (args.expect_lanes or "").split(",") if x.strip()}
    if expected and not args.config:
        raise ConfigError("--expect-lanes needs --config (the KPIs of a missing lane come from the budgets file)")
    if args.config:
        from molt_budget.config import load_config

        config = load_config(args.config)
        unknown = sorted(expected - set(config.lanes))
        if unknown:
            raise ConfigError(f"--expect-lanes: {', '.join(unknown)} not declared in {args.config}")
    if args.results:
        shards = [load_results(Path(p)) for p in args.results]
        merged = merge_results(shards, list(args.results))
    else:
        merged = empty_results(args.config or "budgets.yaml")
    skipped = rejudge(merged, config, expected) if config else []
    save_results(Path(args.out), merged)
    config_path = _display_path(args.config) if args.config else _display_path(merged.config_path)
    if args.report_json and args.reports:
        import json

        from molt_budget.commands.report_cmd import load_report
        from molt_budget.compare.merge_reports import merge_reports

        report = merge_reports([load_report(Path(p)) for p in args.reports], list(args.reports))
        missing = sorted(expected - {k["lane"] for k in report["kpis"]}) if expected else []
        if missing and config is not None:
            for kpi in config.kpis.values():
                if kpi.lane in missing:
                    report["kpis"].append(_missing_kpi(kpi))
            report["verdict"]["counts"]["error"] = report["verdict"]["counts"].get("error", 0) + sum(
                1 for k in config.kpis.values() if k.lane in missing)
            if report["verdict"]["status"] != "fail":
                report["verdict"]["status"] = "error"
        report["results_path"] = args.out
        write_json_atomic(Path(args.report_json), json.loads(json.dumps(report)))
    elif args.report_json:
        write_json_atomic(Path(args.report_json), budget_report(merged, config, config_path, skipped, args.out))
    print(render(merged))
    if skipped:
        print(f"not judged (no shard measured their lanes): {', '.join(skipped)}")
    print(f"molt-budget: merged {len(args.results)} results file(s), lanes {', '.join(sorted(merged.lanes)) or 'none'}, "
          f"into {args.out}", file=sys.stderr)
    return 0


def _missing_kpi(kpi: Any) -> dict[str, Any]:
    """A KPI whose lane group left no report: an error row, never a silent pass."""
    return {
        "id": kpi.id, "title": kpi.title or kpi.id, "lane": kpi.lane, "metric": kpi.metric, "class": kpi.kpi_class,
        "unit": kpi.unit, "direction": kpi.direction, "target": kpi.target, "limit": kpi.limit, "line": kpi.line,
        "base": None, "head": None, "delta": None, "delta_pct": None, "status": "error", "budget_status": "error",
        "reason": f"lane {kpi.lane}: its lane group produced no report", "p_value": None, "ci_low": None,
        "ci_high": None, "pairs": None,
    }
