"""`molt-budget check`: measure head (and its base), judge, record.

Where the base comes from, in order: `--baseline RESULTS.json`; `--aa` (the same commit
twice); `--base REF` or the merge-base with the main branch, measured in a git worktree
(always for timed KPIs, which must be interleaved) or taken from history by commit.
Nothing to compare with (no git, HEAD is the base and the tree is clean): budgets alone.
Only argparse and light modules load at import time (`molt-budget --help` stays fast); the
engine, history and comparator are imported by the functions that use them.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from molt_budget import gitutil
from molt_budget.commands.args import EXIT_CODES_EPILOG, close_progress, load_config_arg, run_args, run_options
from molt_budget.errors import BudgetError, ConfigError

if TYPE_CHECKING:
    from molt_budget.compare.budget_changes import Parser
    from molt_budget.compare.model import BaseInfo, Report
    from molt_budget.compare.sampler import Noise
    from molt_budget.config.model import Config
    from molt_budget.results.history import History
    from molt_budget.results.model import RunResults
    from molt_budget.runner.engine import RunOptions


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("check", help="run the lanes, judge every KPI, record history (the gate)",
                              description="Run the lanes, judge every KPI against budgets.yaml and record the run.",
                              epilog=EXIT_CODES_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    run_args(p)
    p.add_argument("--base", metavar="REF", help="compare with this commit (default: merge-base of HEAD and settings.remote_main, then main_branch)")
    p.add_argument("--baseline", metavar="RESULTS.json", help="compare with a saved results file instead of measuring a base")
    p.add_argument("--base-source", choices=["auto", "worktree", "history"], default="auto",
                   help="measure the base in a git worktree, or take it from history by commit (exact KPIs only); default auto")
    p.add_argument("--no-base", action="store_true", help="judge against the budgets only, no baseline")
    p.add_argument("--aa", action="store_true", help="A/A: build the same commit twice; any exact-KPI difference is `nondeterministic`")
    p.add_argument("--report-json", metavar="PATH", help="write the comparison report (schemas/report.schema.json)")
    p.add_argument("--github", action="store_true", help="post the verdict to GitHub (comment, check run, summary) from GITHUB_* env")
    p.add_argument("--check-name", default="molt-budget", help="check run name with --github (default molt-budget)")
    p.add_argument("--color", choices=["auto", "always", "never"], default="auto", help="colour the status column")
    p.set_defaults(handler=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from molt_budget.report.terminal import render_report
    from molt_budget.results.store import save_results, write_json_atomic

    if sum(bool(x) for x in (args.base, args.baseline, args.aa, args.no_base)) > 1:
        raise BudgetError("--base, --baseline, --aa and --no-base exclude each other")
    config = load_config_arg(args)
    options = run_options(args, config)
    if args.pre_push and not options.lanes:
        close_progress(options)
        print("molt-budget: no lanes are marked `pre_push: true`; nothing to check", file=sys.stderr)
        return 0
    try:
        outcome = run_check(config, CheckOptions(
            run=options, base=args.base, baseline=Path(args.baseline) if args.baseline else None,
            base_source=args.base_source, aa=args.aa, no_base=args.no_base, record=not args.no_history,
        ))
    finally:
        close_progress(options)
    if args.results:
        save_results(Path(args.results), outcome.head)
    if args.report_json:
        write_json_atomic(Path(args.report_json), outcome.report.to_dict())
    if not args.quiet:
        print(f"[molt-budget] wrote {outcome.head_results_path}", file=sys.stderr)
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    print(render_report(outcome.report, color=color))
    if args.github:
        from molt_budget.report.github import publish

        publish(outcome.report, check_name=args.check_name, sparklines=outcome.report.trends)
    return outcome.report.exit_code()


@dataclass
class CheckOptions:
    run: RunOptions
    base: str | None = None
    baseline: Path | None = None
    base_source: str = "auto"           # auto | worktree | history
    aa: bool = False
    no_base: bool = False
    record: bool = True


@dataclass
class CheckOutcome:
    report: Report
    head: RunResults
    base: RunResults | None
    head_results_path: Path


def run_check(config: Config, options: CheckOptions) -> CheckOutcome:
    from molt_budget.compare.budget_changes import Parser
    from molt_budget.compare.comparator import compare
    from molt_budget.compare.model import BaseInfo
    from molt_budget.compare.sampler import load_noise, measured_noise, noise_warnings, record_noise
    from molt_budget.results.history import History
    from molt_budget.results.store import load_results
    from molt_budget.runner.engine import Engine
    from molt_budget.runner.events import ProgressEvent

    history = History(config.resolve(config.settings.history))
    parser = Parser(config.path.name, config)      # each budgets text parsed once: base choice and budget gate share it
    engine = Engine(config, options.run)
    lanes = [l.id for l in engine.selected]
    noise = load_noise(config, lanes)
    for warning in noise_warnings(config, lanes, noise):      # up front: before anyone pays for the pairs
        options.run.progress(ProgressEvent("noise", lane=warning.lane, message=warning.message))
    base_info, base = None, None
    if options.baseline is not None:
        base = load_results(options.baseline)
        base_info = BaseInfo(commit=base.provenance.get("commit"), ref=str(options.baseline), source="results", run_id=base.run_id)
        head = engine.run()
        head_path = engine.results_path
    elif options.aa:
        paired = _paired(config, config, options, lanes, options.run.output_root / "aa", noise)
        head, base, head_path = paired.head, paired.base, Path(paired.head_results_path)
        base_info = BaseInfo(commit=head.provenance.get("commit"), ref="HEAD", source="same-commit", run_id=base.run_id)
    else:
        target = None if options.no_base else _resolve_base(config, options.base, parser)
        if target is None:
            head = engine.run()
            head_path = engine.results_path
        else:
            ref, sha = target
            stored = _from_history(config, history, sha, lanes) if options.base_source in ("auto", "history") else None
            if options.base_source == "history" and stored is None:
                if any(k.kpi_class != "exact" for k in config.kpis.values() if k.lane in lanes):
                    raise ConfigError("--base-source history: timed and counted KPIs need the base measured in this run "
                                      "(interleaved); use --lanes with exact KPIs only, or --base-source worktree")
                raise ConfigError(f"no complete run of commit {sha[:12]} (clean tree, all of {', '.join(lanes)} measured, "
                                  f"every KPI's metric present) in {history.path}")
            if stored is not None:
                base = stored
                base_info = BaseInfo(commit=sha, ref=ref, source="history", run_id=base.run_id)
                head = engine.run()
                head_path = engine.results_path
            else:
                base_config = _config_in_worktree(config, sha, options.run.output_root)
                paired = _paired(config, base_config, options, lanes, options.run.output_root / "base", noise)
                head, base, head_path = paired.head, paired.base, Path(paired.head_results_path)
                base_info = BaseInfo(commit=sha, ref=ref, source="worktree", run_id=base.run_id)
                if options.record:
                    history.record(base, Path(paired.base_results_path))
    paired_run = base_info is not None and base_info.source in ("worktree", "same-commit")
    if options.record:
        history.record(head, head_path)
        if paired_run and base is not None:
            record_noise(config, measured_noise(config, lanes, base, head, "check"))
    fences = _fences(config, history, lanes) if base is not None else None
    report = compare(config, head, base, base_info, aa=options.aa, paired=base_info is None or paired_run,
                     reproduce=_reproduce(config, options, base_info), history_fences=fences, noise=noise)
    report.results_path = str(head_path)
    _budget_review(config, report, base_info, parser)
    report.trends = _trends(config, history, report)
    return CheckOutcome(report=report, head=head, base=base, head_results_path=head_path)


def _resolve_base(config: Config, ref: str | None, parser: Parser) -> tuple[str, str] | None:
    """(ref, sha) of the base, or None when there is nothing to compare with (no git, no main branch)."""
    repo = gitutil.toplevel(config.root)
    if repo is None:
        if ref is not None:
            raise ConfigError(f"--base {ref}: {config.root} is not inside a git repository")
        return None
    from molt_budget.compare.budget_changes import choose_base_ref

    head = gitutil.resolve_commit(repo, "HEAD")
    if ref is not None:
        sha = gitutil.resolve_commit(repo, ref)
        if sha is None:
            raise ConfigError(f"--base {ref}: no such commit or branch in {repo}")
        return ref, sha
    try:
        rel = config.path.resolve().relative_to(repo.resolve()).as_posix()
        # the one base selection (budget-diff and the budget gate use it too): steered by the
        # base's budgets file, so an edit of remote_main/main_branch cannot pick its own base
        base_ref, sha = choose_base_ref(repo, rel, config.settings, parser)
    except (ValueError, ConfigError):
        return None
    dirty = bool(gitutil.try_git(repo, "status", "--porcelain", "--untracked-files=no"))
    if sha == head and not dirty:
        return None
    return f"merge-base(HEAD, {base_ref})", sha


def _from_history(config: Config, history: History, sha: str, lanes: list[str]) -> RunResults | None:
    """A stored base is good enough for exact KPIs only: timed ones need interleaving."""
    from molt_budget.results.store import load_results

    if any(k.kpi_class != "exact" for k in config.kpis.values() if k.lane in lanes):
        return None
    if not history.path.exists():
        return None
    found = history.latest_run_for_commit(sha)
    if found is None or not found[1] or not Path(found[1]).exists():
        return None
    stored = load_results(Path(found[1]))
    wanted = [(k.lane, k.metric) for k in config.kpis.values() if k.lane in lanes]
    # every metric the current KPIs need (a KPI added since may ask for one never collected)
    if all(stored.lanes.get(lane) is not None and stored.lanes[lane].status == "ok"
           and any(metric in s.metrics for s in stored.lanes[lane].measured()) for lane, metric in wanted):
        return stored
    return None


def _config_in_worktree(config: Config, sha: str, output_root: Path) -> Config:
    repo = gitutil.toplevel(config.root)
    if repo is None:
        raise ConfigError(f"{config.path}: not inside a git repository; cannot measure a base commit")
    try:
        rel = config.path.relative_to(repo)
    except ValueError:
        raise ConfigError(f"{config.path}: the budgets file must be inside the repository {repo} to measure a base") from None
    folder = output_root.resolve() / "worktrees"
    worktree = gitutil.ensure_worktree(repo, sha, folder / sha[:12])
    gitutil.prune_worktrees(repo, folder, keep=3)
    # The head's lanes and KPIs, run in the base's checkout: same procedure, other code.
    return dataclasses.replace(config, path=worktree / rel)


def _paired(head_config: Config, base_config: Config, options: CheckOptions, lanes: list[str], base_root: Path,
            noise: Noise) -> Any:
    from molt_budget.compare.sampler import samplers_for
    from molt_budget.runner.paired import run_paired

    if options.run.resume is not None:
        raise ConfigError("--resume continues a run without a measured base (run, check --no-base or --baseline); "
                          "with a base both sides are measured interleaved: run the check again")
    # the base engine checks the host before each lane; a second check right after the base's
    # own prime and warm-ups would only measure ourselves
    base_options = dataclasses.replace(options.run, output_root=base_root, resume=None, resumable=False)
    head_options = dataclasses.replace(options.run, quiescence=False, resumable=False)
    return run_paired(head_config, base_config, head_options, base_options, lanes, samplers_for(head_config, lanes, noise))


def _fences(config: Config, history: History, lanes: list[str]) -> dict[str, float | None]:
    """rustc-perf's learned noise fence per counted KPI, from main-branch history."""
    from molt_budget.compare import stats

    fences: dict[str, float | None] = {}
    for kpi in config.kpis.values():
        if kpi.kpi_class == "counted" and kpi.lane in lanes and history.path.exists():
            series = history.metric_series(kpi.lane, kpi.metric, branch=config.settings.main_branch)
            fences[kpi.id] = stats.learned_fence([v for _, _, v, _ in series])
    return fences


def _reproduce(config: Config, options: CheckOptions, base_info: BaseInfo | None) -> str:
    """The local command that gives the same verdict (what a PR comment tells people to run)."""
    repo = gitutil.toplevel(config.root)
    try:
        shown = str(config.path.relative_to(repo)) if repo else str(config.path)
    except ValueError:
        shown = str(config.path)
    parts = ["molt-budget", "check", "--config", shown]
    if options.run.lanes:
        parts += ["--lanes", ",".join(options.run.lanes)]
    if options.aa:
        parts.append("--aa")
    elif base_info is not None and base_info.source in ("worktree", "history") and base_info.commit:
        parts += ["--base", base_info.commit]
    elif base_info is not None and base_info.source == "results" and base_info.ref:
        parts += ["--baseline", base_info.ref]
    elif base_info is None:
        parts.append("--no-base")
    return " ".join(shlex.quote(p) for p in parts)


def _budget_review(config: Config, report: Report, base_info: BaseInfo | None, parser: Parser) -> None:
    """Budget edits since the base are part of the verdict; on main, mention available ratchets."""
    from datetime import date

    from molt_budget.compare.budget_changes import budget_gate

    measured = {k.id: k.head for k in report.kpis if k.head is not None}
    base_ref = base_info.commit if base_info is not None and base_info.source in ("worktree", "history") else None
    try:
        gate = budget_gate(config.path, base_ref, measured=measured, today=date.today(), head=config, parser=parser)
    except ConfigError:
        gate = None                    # not a git checkout, or no base to read the old budgets from
    if gate is not None:
        report.budget_changes = list(gate.changes)
        report.rejudge()
    if base_info is None:
        from dataclasses import asdict

        from molt_budget.budgets.ratchet import propose_ratchets

        # timed values on one run are too noisy to tighten on; counts are not
        steady = {k: v for k, v in measured.items() if config.kpis[k].kpi_class != "timed"}
        report.ratchets = [asdict(r) for r in propose_ratchets(config, steady, 10.0)]


def _trends(config: Config, history: History, report: Report, runs: int = 20) -> dict[str, list[float]]:
    """Each KPI over the last main-branch runs: the PR comment's sparkline, carried in the report
    so the fork-safe posting job (which has no history) can draw it too."""
    if not history.path.exists():
        return {}
    out: dict[str, list[float]] = {}
    for k in report.kpis:
        series = history.metric_series(k.lane, k.metric, branch=config.settings.main_branch, limit=runs)
        if len(series) > 1:
            out[k.id] = [value for _, _, value, _ in series]
    return out
