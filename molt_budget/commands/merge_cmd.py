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
    from molt_budget.compare.model import Report
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
        run_id=merged_run_id([s.run_id for s in shards]),
        config_path=first.config_path,
        config_sha256=first.config_sha256,
        started_utc=min(s.started_utc for s in shards),
        finished_utc=None if None in finished else max((f for f in finished if f), default=None),
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


def budget_report(results: RunResults, config: Config | None, config_path: str, expected: set[str],
                  results_path: str | None) -> Report:
    """A comparison report with no baseline: the budgets alone decide. With the budgets file the
    KPIs are judged by compare (as `check --no-base` would); a lane that was expected but left no
    results makes its KPIs errors; KPIs of lanes nobody meant to run are counted as skipped."""
    from molt_budget.compare.comparator import compare
    from molt_budget.compare.merge_reports import missing_lane_rows
    from molt_budget.compare.model import HeadInfo, KpiRow, Report, Status, Verdict

    if config is not None:
        report = compare(config, results, None, None)
        missing = expected - set(results.lanes)
        report.kpis += missing_lane_rows(config, missing, "its lane group did not run")
        skipped = sum(1 for k in config.kpis.values() if k.lane not in results.lanes and k.lane not in expected)
    else:
        report = Report(verdict=Verdict(Status.PASS), head=HeadInfo.from_provenance(results.provenance, results.run_id))
        report.kpis = [KpiRow(id=k.id, title=k.id, lane=k.lane, metric=k.metric, kpi_class=k.kpi_class, unit=k.unit,
                              direction=k.direction, target=k.target, limit=k.limit, head=k.value,
                              status=Status.parse(k.status, f"KPI {k.id}"), budget_status=Status.parse(k.status, f"KPI {k.id}"),
                              reason=k.reason) for k in results.kpis]
        report.authoritative, report.authoritative_reasons = results.authoritative, list(results.authoritative_reasons)
        skipped = 0
    lanes = ",".join(sorted(results.lanes))
    report.config_path = config_path
    report.reproduce = f"molt-budget check --config {config_path}" + (f" --lanes {lanes}" if lanes else "")
    report.results_path = results_path
    report.verdict = Verdict.judge(report.kpis, skipped=skipped)
    return report


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

    from molt_budget.environment import writing
    from molt_budget.errors import ConfigError
    from molt_budget.report.terminal import render_report
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
    with writing(args.out, "the merged results"):
        save_results(Path(args.out), merged)
    config_path = _display_path(args.config) if args.config else _display_path(merged.config_path)
    if args.reports:
        report = merged_report(args.reports, config, expected)
        report.results_path = args.out
    else:
        report = budget_report(merged, config, config_path, expected, args.out)
    if args.report_json:
        with writing(args.report_json, "the report"):
            write_json_atomic(Path(args.report_json), report.to_dict())
    print(render_report(report))
    if skipped:
        print(f"not judged (no shard measured their lanes): {', '.join(skipped)}")
    print(f"molt-budget: merged {len(args.results)} results file(s), lanes {', '.join(sorted(merged.lanes)) or 'none'}, "
          f"into {args.out}", file=sys.stderr)
    return 0


def merged_report(paths: list[str], config: Config | None, expected: set[str]) -> Report:
    """The shards' comparison reports as one; an expected lane group without a report makes its KPIs errors."""
    from pathlib import Path

    from molt_budget.commands.report_cmd import load_report
    from molt_budget.compare.merge_reports import merge_reports, missing_lane_rows

    reports = [load_report(Path(p)) for p in paths]
    report = merge_reports(reports, list(paths))
    missing = expected - {k.lane for k in report.kpis}
    if missing and config is not None:
        report.kpis += missing_lane_rows(config, missing, "its lane group produced no report")
        report.rejudge(floor=report.status)
    return report


def merged_run_id(ids: list[str]) -> str:
    """The shards' ids joined by `+`, while that fits the bound the record schema sets on a run
    id; past it (eight engine ids), the first id, how many more and a digest of them all:
    unique, sorted by its first shard, and pullable by every other runner (each shard stays
    listed in the provenance)."""
    import hashlib

    from molt_budget.schemas import load_schema

    bound: int = load_schema("record")["properties"]["run_id"]["maxLength"]
    joined = "+".join(ids)
    if len(joined) <= bound:
        return joined
    digest = hashlib.sha256(joined.encode("utf-8")).hexdigest()[:12]
    return f"{ids[0][:bound - 40]}+{len(ids) - 1}-more-{digest}"
