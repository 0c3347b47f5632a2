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
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from molt_budget import gitutil
from molt_budget.commands.args import (
    EXIT_CODES_EPILOG,
    close_progress,
    load_config_arg,
    run_args,
    run_options,
    start_of_command,
)
from molt_budget.errors import EXIT_CONFIG, EXIT_INTERNAL, BudgetError, ConfigError

if TYPE_CHECKING:
    from molt_budget.compare.budget_changes import Parser
    from molt_budget.compare.model import BaseInfo, Report
    from molt_budget.compare.sampler import Noise
    from molt_budget.config.model import Config
    from molt_budget.results.history import History
    from molt_budget.results.model import RunResults
    from molt_budget.results.record import MainCheck, RunRecord
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
    p.add_argument("--report-json", metavar="PATH", help="write the comparison report (schemas/report.schema.json); `-` for stdout")
    p.add_argument("--github", action="store_true", help="post the verdict to GitHub (comment, check run, summary) from GITHUB_* env")
    p.add_argument("--check-name", default="molt-budget", help="check run name with --github (default molt-budget)")
    p.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                   help="colour the status column (auto: NO_COLOR / FORCE_COLOR, else only on a terminal)")
    p.set_defaults(handler=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from molt_budget.environment import writing
    from molt_budget.report.terminal import render_report, use_color
    from molt_budget.results.store import save_results, write_json_atomic

    started = start_of_command(args)
    if sum(bool(x) for x in (args.base, args.baseline, args.aa, args.no_base)) > 1:
        raise BudgetError("--base, --baseline, --aa and --no-base exclude each other")
    config = load_config_arg(args)
    options = run_options(args, config, started)
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
        with writing(args.results, "the results"):
            save_results(Path(args.results), outcome.head)
    to_stdout = args.report_json == "-"
    if args.report_json and not to_stdout:
        with writing(args.report_json, "the report"):
            write_json_atomic(Path(args.report_json), outcome.report.to_dict())
    for note in outcome.notes:
        print(f"molt-budget: note: {note}", file=sys.stderr)
    if not args.quiet:
        print(f"[molt-budget] wrote {outcome.head_results_path}", file=sys.stderr)
    # with `--report-json -` stdout carries the JSON alone; the human report goes to stderr
    human = sys.stderr if to_stdout else sys.stdout
    print(render_report(outcome.report, color=use_color(args.color, human)), file=human)
    if to_stdout:
        sys.stdout.write(json.dumps(outcome.report.to_dict(), indent=2) + "\n")
        sys.stdout.flush()
    if args.github:
        from molt_budget.report.github import publish

        posted = publish(outcome.report, check_name=args.check_name, sparklines=outcome.report.trends)
        if posted.internal_error or posted.refused:
            return EXIT_INTERNAL if posted.internal_error else EXIT_CONFIG
    return outcome.report.exit_code()


class CheckOptions(NamedTuple):
    """What `check` does beyond the run (a NamedTuple, like CheckOutcome: this module is
    imported by `--help`, which need not import msgspec for two records)."""

    run: RunOptions
    base: str | None = None
    baseline: Path | None = None
    base_source: str = "auto"           # auto | worktree | history
    aa: bool = False
    no_base: bool = False
    record: bool = True


class CheckOutcome(NamedTuple):
    report: Report
    head: RunResults
    base: RunResults | None
    head_results_path: Path
    notes: list[str]                    # one line each, printed on stderr


def run_check(config: Config, options: CheckOptions) -> CheckOutcome:
    from molt_budget.compare.budget_changes import Parser
    from molt_budget.compare.comparator import compare
    from molt_budget.compare.model import BaseInfo
    from molt_budget.compare.sampler import load_noise, measured_noise, noise_warnings, record_noise
    from molt_budget.results.history import History
    from molt_budget.results.mainline import classify
    from molt_budget.results.store import load_results
    from molt_budget.runner.engine import Engine
    from molt_budget.runner.events import ProgressEvent

    history = History(config.resolve(config.settings.history), config.settings.main_branch)
    notes: list[str] = []
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
        target = None if options.no_base else _resolve_base(config, options.base, parser, notes)
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
                    record_run(config, history, base, Path(paired.base_results_path))
    paired_run = base_info is not None and base_info.source in ("worktree", "same-commit")
    if options.record and paired_run and base is not None:
        record_noise(config, measured_noise(config, lanes, base, head, "check"))
    fences = _fences(config, history, lanes) if base is not None else None
    report = compare(config, head, base, base_info, aa=options.aa, paired=base_info is None or paired_run,
                     reproduce=_reproduce(config, options, base_info), history_fences=fences, noise=noise)
    report.results_path = str(head_path)
    head_main = classify(config, head)
    _budget_review(config, report, base_info, parser, head, head_main)
    report.trends = _trends(config, history, report)
    if options.record:
        # after the verdict: the record keeps change and budget-gate verdicts, not only budgets
        record_run(config, history, head, head_path, report, head_main)
    return CheckOutcome(report=report, head=head, base=base, head_results_path=head_path, notes=notes)


def record_run(config: Config, history: History, results: RunResults, results_path: Path,
               report: Report | dict[str, Any] | None = None, main: MainCheck | None = None) -> RunRecord:
    """Record a run with its main verdict, write its record next to its results, apply retention."""
    from molt_budget.results.mainline import classify
    from molt_budget.results.retention import is_run_dir, keep_recent_run_dirs
    from molt_budget.results.store import write_bytes_atomic

    check = main if main is not None else classify(config, results)
    from molt_budget.environment import record_history

    record: RunRecord = record_history(history, results, results_path, main=check, report=report)  # type: ignore[assignment]
    if is_run_dir(results_path.parent):
        # as in the history database: a run that can never be a base keeps no IR/diagnostics summaries
        kept = record if record.main else record.without_detail()
        write_bytes_atomic(results_path.parent / "record.json.gz", kept.to_gzip())
        keep_recent_run_dirs(results_path.parent.parent, config.settings.keep_run_dirs)
    return record


def _resolve_base(config: Config, ref: str | None, parser: Parser, notes: list[str] | None = None) -> tuple[str, str] | None:
    """(ref, sha) of the base, or None when there is nothing to compare with (no git, no main branch:
    then a note saying how to set it, never a silent "nothing to compare")."""
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
        from molt_budget.results.mainline import main_candidates

        if notes is not None and gitutil.main_ref(repo, main_candidates(config)) is None:
            notes.append(gitutil.MAIN_HINT)
        return None
    dirty = bool(gitutil.try_git(repo, "status", "--porcelain", "--untracked-files=no"))
    if sha == head and not dirty:
        return None
    return f"merge-base(HEAD, {base_ref})", sha


def _from_history(config: Config, history: History, sha: str, lanes: list[str]) -> RunResults | None:
    """A stored base is good enough for exact KPIs only: timed ones need interleaving."""

    if any(k.kpi_class != "exact" for k in config.kpis.values() if k.lane in lanes):
        return None
    if not history.path.exists():
        return None
    record = history.main_record_for_commit(sha)
    if record is None:
        return None
    stored = record.to_results()
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
    from molt_budget.structs import replace

    return replace(config, path=worktree / rel)


def _paired(head_config: Config, base_config: Config, options: CheckOptions, lanes: list[str], base_root: Path,
            noise: Noise) -> Any:
    from molt_budget.compare.sampler import samplers_for
    from molt_budget.runner.paired import run_paired
    from molt_budget.structs import replace

    if options.run.resume is not None:
        raise ConfigError("--resume continues a run without a measured base (run, check --no-base or --baseline); "
                          "with a base both sides are measured interleaved: run the check again")
    # the base engine checks the host before each lane; a second check right after the base's
    # own prime and warm-ups would only measure ourselves
    base_options = replace(options.run, output_root=base_root, resume=None, resumable=False, label="base")
    head_options = replace(options.run, quiescence=False, resumable=False, label="head")
    return run_paired(head_config, base_config, head_options, base_options, lanes, samplers_for(head_config, lanes, noise))


def _fences(config: Config, history: History, lanes: list[str]) -> dict[str, float | None]:
    """rustc-perf's learned noise fence per counted KPI, from main-branch history."""
    from molt_budget.compare import stats

    fences: dict[str, float | None] = {}
    for kpi in config.kpis.values():
        if kpi.kpi_class == "counted" and kpi.lane in lanes and history.path.exists():
            series = history.kpi_series(kpi.id, kpi.lane, kpi.metric, kpi.aggregate, limit=50)
            fences[kpi.id] = stats.learned_fence([p.value for p in series])
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


def _budget_review(config: Config, report: Report, base_info: BaseInfo | None, parser: Parser, head: RunResults,
                   head_main: MainCheck) -> None:
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
        report.extra["budget_unmeasured"] = gate.unmeasured
        report.rejudge()
    if base_info is None:
        report.ratchets = ratchet_hint(config, head, head_main, report)


def ratchet_hint(config: Config, head: RunResults, head_main: MainCheck, report: Report) -> list[dict[str, Any]]:
    """The ratchets `molt-budget ratchet` would propose once this run is recorded: only for a
    main record (then it is the newest one, ratchet's input), with ratchet's own default margin."""
    if not head_main.main:
        return []                      # before the imports: the editor's modules cost a branch check nothing
    from molt_budget.budgets.ratchet import (
        DEFAULT_MARGIN_PCT,
        main_measurements,
        propose_ratchets,
    )
    from molt_budget.results.record import RunRecord
    from molt_budget.structs import asdict

    measured = main_measurements(config, RunRecord.from_run(head, head_main, report)).values
    return [asdict(r) for r in propose_ratchets(config, measured, DEFAULT_MARGIN_PCT)]


def _trends(config: Config, history: History, report: Report, runs: int = 20) -> dict[str, list[float]]:
    """Each KPI over the last main-branch runs: the PR comment's sparkline, carried in the report
    so the fork-safe posting job (which has no history) can draw it too."""
    if not history.path.exists():
        return {}
    out: dict[str, list[float]] = {}
    for k in report.kpis:
        kpi = config.kpis.get(k.id)
        series = history.kpi_series(k.id, k.lane, k.metric, kpi.aggregate if kpi else "median", limit=runs)
        if len(series) > 1:
            out[k.id] = [p.value for p in series]
    return out
