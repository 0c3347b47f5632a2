"""Command line: `molt-budget check` and friends.

Imports are lazy (inside each command) so `molt-budget --help` starts fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from molt_budget import __version__
from molt_budget.errors import EXIT_CONFIG, EXIT_MEASUREMENT, BudgetError

DESCRIPTION = """\
molt-budget: a CI regression-budget gate for compiler build cost.

Runs the lanes declared in budgets.yaml (build commands with env, cache state,
warm-ups, repeats, timeouts), collects wall/CPU time, peak memory, molt's
diagnostics payload and IR stats, and judges every KPI against its budget:
pass (within target), yellow (past target, within limit), fail (past limit).
"""

EPILOG = """\
exit codes: 0 pass or yellow, 1 a KPI failed (or a build is nondeterministic),
            2 usage or config error, 3 measurement error (a lane failed or a
            metric is missing), 130 interrupted (measured samples are kept)

examples:
  molt-budget check                      run every lane, judge, record history
  molt-budget check --lanes dev_warm     one lane only
  molt-budget check --resume .molt-budget/runs/<run-id>
  molt-budget verdict results.json       judge saved results again
  molt-budget inspect ir out/ir.json --json
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="molt-budget", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"molt-budget {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def config_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", default="budgets.yaml", metavar="FILE", help="budgets file (default: ./budgets.yaml)")

    def run_args(p: argparse.ArgumentParser) -> None:
        config_arg(p)
        p.add_argument("--lanes", metavar="A,B", help="run only these lanes (comma-separated); KPIs of other lanes are skipped")
        p.add_argument("--pre-push", action="store_true", help="run only the lanes marked `pre_push: true`")
        p.add_argument("--output-root", metavar="DIR", help="runs, logs and caches go here (default: settings.output_root, .molt-budget)")
        p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run: keeps lanes that finished, re-runs failed or unfinished ones")
        p.add_argument("--clean-state", action="store_true", help="wipe caches before running (never results or logs)")
        p.add_argument("--results", metavar="PATH", help="also write the results JSON here")
        p.add_argument("--no-history", action="store_true", help="do not record the run in the history database")
        p.add_argument("--no-quiescence", action="store_true", help="skip the quiet-host check before timed lanes")
        p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")

    p = sub.add_parser("check", help="run the lanes, judge every KPI, record history (the gate)",
                       description="Run the lanes, judge every KPI against budgets.yaml and record the run.", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
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

    p = sub.add_parser("run", help="measure only: run the lanes and write results, no verdict exit code",
                       description="Run the lanes and write the results JSON; exits 3 only if a lane failed.")
    run_args(p)

    p = sub.add_parser("verdict", help="judge a saved results file against budgets.yaml",
                       description="Judge RESULTS.json against the (possibly edited) budgets file.")
    p.add_argument("results", metavar="RESULTS.json")
    config_arg(p)

    p = sub.add_parser("validate", help="check budgets.yaml (syntax, schema, metrics, lanes) without running anything")
    config_arg(p)

    p = sub.add_parser("import-compile-progress", help="import molt's compile_progress.json snapshots into history")
    config_arg(p)
    p.add_argument("files", nargs="+", metavar="compile_progress.json")
    p.add_argument("--db", metavar="PATH", help="history database (default: settings.history)")

    p = sub.add_parser("inspect", help="probe one molt file: IR stats or the diagnostics payload")
    isub = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    pi = isub.add_parser("ir", help="functions, ops, init modules, bytes of an --emit-ir file")
    pi.add_argument("path")
    pi.add_argument("--json", action="store_true", help="print JSON")
    pi.add_argument("--normalize-root", action="append", default=[], metavar="DIR",
                    help="absolute checkout path to replace for bytes_normalized (repeatable)")
    pd = isub.add_parser("diagnostics", help="phases, backend seconds, modules and reasons of a diagnostics payload")
    pd.add_argument("path")
    pd.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("install-hook", help="install a git pre-push hook running `check --pre-push`")
    config_arg(p)
    p.add_argument("--force", action="store_true", help="replace an existing pre-push hook")

    import importlib

    for module in EXTENSIONS:
        importlib.import_module(module).register(sub)
    return parser


# Command modules outside this file: each has `register(subparsers)` which adds its parser
# with `set_defaults(handler=...)`; they import only argparse at module level.
EXTENSIONS: tuple[str, ...] = (
    "molt_budget.commands.tracker_cmd",
    "molt_budget.commands.budget_cmds",
    "molt_budget.commands.report_cmd",
    "molt_budget.commands.merge_cmd",
    "molt_budget.commands.history_cmd",
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_CONFIG
    handler = getattr(args, "handler", None) or COMMANDS[args.command]
    try:
        return handler(args)
    except BudgetError as exc:
        print(f"molt-budget: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("molt-budget: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: still one line, the traceback on request
        if os.environ.get("MOLT_BUDGET_DEBUG"):
            raise
        print(f"molt-budget: internal error: {type(exc).__name__}: {' '.join(str(exc).split())} "
              f"(set MOLT_BUDGET_DEBUG=1 for the traceback; results already measured are kept)", file=sys.stderr)
        return EXIT_MEASUREMENT


# -- commands ------------------------------------------------------------------------


def _load(args: argparse.Namespace) -> Any:
    from molt_budget.config import load_config

    return load_config(args.config)


def _run_options(args: argparse.Namespace, config: Any) -> Any:
    from molt_budget.runner.engine import RunOptions

    if args.lanes is not None and args.pre_push:
        raise BudgetError("--lanes and --pre-push exclude each other (--pre-push picks the lanes marked `pre_push: true`)")
    lanes = [x.strip() for x in args.lanes.split(",") if x.strip()] if args.lanes is not None else None
    if lanes == []:
        raise BudgetError(f"--lanes {args.lanes!r} names no lane")
    if args.pre_push:
        lanes = [l.id for l in config.lanes.values() if l.pre_push]
    root = Path(args.output_root) if args.output_root else config.resolve(config.settings.output_root)
    from molt_budget.report.progress import make_progress
    from molt_budget.results.history import History

    history = config.resolve(config.settings.history)
    # History() would create a missing database: only read estimates from one that exists.
    progress = make_progress(sys.stderr, quiet=args.quiet, history=History(history) if history.is_file() else None)
    return RunOptions(
        output_root=root, lanes=lanes, resume=Path(args.resume) if args.resume else None,
        clean_state=args.clean_state, quiescence=not args.no_quiescence, progress=progress,
    )


def _run(args: argparse.Namespace) -> tuple[Any, Any]:
    from molt_budget.runner.engine import Engine

    config = _load(args)
    options = _run_options(args, config)
    if args.pre_push and not options.lanes:
        options.progress.close()
        print("molt-budget: no lanes are marked `pre_push: true`; nothing to run", file=sys.stderr)
        return config, None
    engine = Engine(config, options)
    try:
        results = engine.run()
    finally:
        options.progress.close()
    if args.results:
        from molt_budget.results.store import save_results

        save_results(Path(args.results), results)
    if not args.no_history:
        from molt_budget.results.history import History

        History(config.resolve(config.settings.history)).record(results, engine.results_path)
    if not args.quiet:
        print(f"[molt-budget] wrote {engine.results_path}", file=sys.stderr)
    return config, results


def cmd_check(args: argparse.Namespace) -> int:
    from molt_budget.gate import CheckOptions, run_check
    from molt_budget.report.terminal import render_report
    from molt_budget.results.store import save_results, write_json_atomic

    if sum(bool(x) for x in (args.base, args.baseline, args.aa, args.no_base)) > 1:
        raise BudgetError("--base, --baseline, --aa and --no-base exclude each other")
    config = _load(args)
    options = _run_options(args, config)
    if args.pre_push and not options.lanes:
        options.progress.close()
        print("molt-budget: no lanes are marked `pre_push: true`; nothing to check", file=sys.stderr)
        return 0
    try:
        outcome = run_check(config, CheckOptions(
            run=options, base=args.base, baseline=Path(args.baseline) if args.baseline else None,
            base_source=args.base_source, aa=args.aa, no_base=args.no_base, record=not args.no_history,
        ))
    finally:
        options.progress.close()
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

        publish(outcome.report.to_dict(), check_name=args.check_name, sparklines=outcome.report.trends)
    return outcome.report.exit_code()


def cmd_run(args: argparse.Namespace) -> int:
    _config, results = _run(args)
    if results is None:
        return 0
    failed = [l for l in results.lanes.values() if l.status == "error"]
    for lane in results.lanes.values():
        print(f"{lane.lane}: {lane.status}" + (f" ({lane.error})" if lane.error else ""))
    return 3 if failed else 0


def cmd_verdict(args: argparse.Namespace) -> int:
    from molt_budget.compare.budget import judge_kpi
    from molt_budget.report.terminal import exit_code, render
    from molt_budget.results.store import load_results

    config = _load(args)
    results = load_results(Path(args.results))
    results.kpis = [judge_kpi(k, results.lanes.get(k.lane)) for k in config.kpis.values() if k.lane in results.lanes]
    skipped = [k.id for k in config.kpis.values() if k.lane not in results.lanes]
    print(render(results))
    if skipped:
        print(f"not judged (their lanes are not in {args.results}): {', '.join(skipped)}")
    return exit_code(results.kpis)


def cmd_validate(args: argparse.Namespace) -> int:
    config = _load(args)
    print(f"{args.config}: OK ({len(config.lanes)} lanes, {len(config.kpis)} KPIs)")
    return 0


def _history(args: argparse.Namespace) -> Any:
    from molt_budget.results.history import History

    if args.db:
        return History(Path(args.db))
    config = _load(args)
    return History(config.resolve(config.settings.history))


def cmd_import_compile_progress(args: argparse.Namespace) -> int:
    from molt_budget.results.importer import import_compile_progress

    history = _history(args)
    for file in args.files:
        results = import_compile_progress(Path(file))
        history.record(results, Path(file), source="compile_progress")
        print(f"imported {file}: run {results.run_id}, {len(results.lanes)} case(s)")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from molt_budget.collectors.inspect import diagnostics_report, ir_report

    if args.what == "ir":
        report = ir_report(Path(args.path), args.normalize_root)
    else:
        report = diagnostics_report(Path(args.path))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            shown = json.dumps(value) if isinstance(value, (dict, list)) else value
            print(f"{key}: {shown}")
    return 0


def cmd_install_hook(args: argparse.Namespace) -> int:
    from molt_budget.hooks import install_pre_push

    path = install_pre_push(Path(args.config), force=args.force)
    print(f"installed {path}: runs `molt-budget check --pre-push --config {args.config}` before every push")
    return 0


COMMANDS = {
    "check": cmd_check,
    "run": cmd_run,
    "verdict": cmd_verdict,
    "validate": cmd_validate,
    "import-compile-progress": cmd_import_compile_progress,
    "inspect": cmd_inspect,
    "install-hook": cmd_install_hook,
}
