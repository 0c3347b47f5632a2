"""`molt-budget calibrate LANE...`: measure a lane's timing noise with A/A pairs and remember it.

The same commit runs on both sides, interleaved exactly as `check` pairs base and head, so
every head/base difference is noise. Per timed metric of the lane (wall_s for a lane with no
timed KPI yet) it records the per-pair log-ratio SD and lag-1 autocorrelation in the history
database (results.noise); `check` then tunes its sequential test with them, and `validate` /
`check` name up front a KPI whose noise cannot resolve its budget within max_pairs.
Registered through molt_budget.cli.EXTENSIONS; only argparse is imported at module level.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from molt_budget.commands.args import MAX_PAIRS, count

DEFAULT_PAIRS = 20


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "calibrate", help="measure lanes' timing noise with A/A pairs; plan the pairs their budgets need",
        description="Runs each LANE as interleaved A/A pairs (the same commit on both sides, alternating order as "
                    "`check` does) and records, per timed metric, the SD and lag-1 autocorrelation of the per-pair "
                    "log ratios in the history database. Then prints, per timed KPI, the pairs its budget needs.",
    )
    p.add_argument("lanes", nargs="+", metavar="LANE", help="lane ids from budgets.yaml")
    p.add_argument("--config", default="budgets.yaml", metavar="FILE", help="budgets file (default: ./budgets.yaml)")
    p.add_argument("--pairs", type=count(high=MAX_PAIRS), default=DEFAULT_PAIRS, help=f"A/A pairs per lane (default {DEFAULT_PAIRS})")
    p.add_argument("--output-root", metavar="DIR", help="runs, logs and caches go here (default: settings.output_root)")
    p.add_argument("--no-record", action="store_true", help="print the noise, do not record it")
    p.add_argument("--no-quiescence", action="store_true", help="skip the quiet-host check before the lanes")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(handler=cmd_calibrate)


class _FixedPairs:
    """The paired runner's sampler for calibration: exactly `pairs` rounds, no early stop."""

    def __init__(self, pairs: int) -> None:
        self.most = pairs

    def more(self, base: Any, head: Any, rounds: int) -> bool:
        return rounds < self.most


def cmd_calibrate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tabulate import tabulate

    from molt_budget import fmt
    from molt_budget.compare import sampler, stats
    from molt_budget.config import load_config
    from molt_budget.errors import EXIT_MEASUREMENT, BudgetError
    from molt_budget.report.progress import make_progress
    from molt_budget.runner.engine import RunOptions
    from molt_budget.runner.paired import run_paired
    from molt_budget.structs import replace

    config = load_config(args.config)
    unknown = [lane for lane in args.lanes if lane not in config.lanes]
    if unknown:
        raise BudgetError(f"{args.config}: no lane {', '.join(unknown)} (lanes: {', '.join(config.lanes)})")
    if args.pairs < 4:
        raise BudgetError(f"--pairs {args.pairs}: calibration needs at least 4 pairs")
    root = Path(args.output_root) if args.output_root else config.resolve(config.settings.output_root)
    progress = make_progress(sys.stderr, quiet=args.quiet)
    head_options = RunOptions(output_root=root, lanes=list(args.lanes), quiescence=False, resumable=False, progress=progress)
    base_options = replace(head_options, output_root=root / "calibrate", quiescence=not args.no_quiescence)
    try:
        paired = run_paired(config, config, head_options, base_options, list(args.lanes), lambda lane: _FixedPairs(args.pairs))
    finally:
        progress.close()
    metrics = {lane: sorted({k.metric for k in sampler.timed_kpis(config, [lane])}) or ["wall_s"] for lane in args.lanes}
    found = sampler.measured_noise(config, args.lanes, paired.base, paired.head, "calibrate", metrics)
    if not args.no_record:
        sampler.record_noise(config, found)
    noise = {(e.lane, e.metric): e.sd for e in found}
    rows = []
    for e in found:
        kpis = [k for k in sampler.timed_kpis(config, [e.lane]) if k.metric == e.metric]
        plans = []
        family = sampler.lane_kpi_count(config, e.lane)
        for kpi in kpis:
            policy = sampler.timed_policy(kpi, noise)
            limit = stats.noise_limit(e.sd, policy, family)
            plans.append(f"{kpi.id}: " + (limit if limit else f"~{stats.plan_pairs(e.sd, policy, family)} pairs for a "
                                          f"{fmt.number(policy.max_increase_pct)}% budget, within max_pairs {policy.max_pairs}"))
        rows.append([e.lane, e.metric, str(e.pairs), f"{fmt.number(e.sd * 100, sig=2)}%",
                     "-" if e.lag1 is None else f"{e.lag1:+.2f}", "; ".join(plans) or "no timed KPI yet"])
    print(tabulate(rows, headers=["lane", "metric", "pairs", "log-ratio SD", "lag-1", "plan"], tablefmt="simple",
                   disable_numparse=True))
    failed = [lane for lane in args.lanes if paired.head.lanes.get(lane) is None or paired.head.lanes[lane].status == "error"
              or paired.base.lanes.get(lane) is None or paired.base.lanes[lane].status == "error"]
    if failed:
        print(f"molt-budget: calibration incomplete, lane(s) failed: {', '.join(failed)}", file=sys.stderr)
        return EXIT_MEASUREMENT
    if not args.no_record:
        print(f"recorded in {config.resolve(config.settings.history)}")
    return 0
