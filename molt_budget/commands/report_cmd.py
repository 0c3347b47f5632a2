"""`molt-budget report REPORT.json`: render or publish a saved comparison report.

Why a separate command: the fork-safe workflow judges in an unprivileged job and posts
from a privileged `workflow_run` job that only has the report file. The exit code is the
verdict's (1 on fail, 3 on error), never a reporting failure's.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from molt_budget.commands.args import count

if TYPE_CHECKING:
    from pathlib import Path

    from molt_budget.compare.model import Report


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report", help="render a comparison report as Markdown/HTML or publish it to GitHub",
        description="Render REPORT.json (written by `check --report-json`) or publish it: sticky PR comment, "
                    "check run with annotations, job summary. Exit code: 0 when --markdown/--html rendered; with "
                    "--github, the report's verdict (1 on fail), so the posting job fails with the gate.",
    )
    p.add_argument("report", metavar="REPORT.json")
    p.add_argument("--github", action="store_true",
                   help="post the PR comment and check run from the GITHUB_* environment (token from GITHUB_TOKEN)")
    p.add_argument("--check-name", default="molt-budget", metavar="NAME", help="check run name (default: molt-budget)")
    p.add_argument("--markdown", action="store_true", help="print the Markdown report (default when nothing else is asked)")
    p.add_argument("--max-chars", type=count(low=200), default=65_536, metavar="N", help="cut --markdown output to N characters (default 65536)")
    p.add_argument("--html", metavar="DIR", help="write an HTML report into DIR")
    p.add_argument("--history", metavar="DB", help="history database for trend sparklines and the HTML report's charts "
                   "(default: settings.history of the budgets file, when it exists)")
    p.add_argument("--all-branches", action="store_true",
                   help="with --history: trends from every recorded run, not only main records")
    p.add_argument("--if-missing", action="store_true",
                   help="REPORT.json may be missing or invalid (the measuring run was cancelled, skipped or broke): "
                        "post a failure check saying so, so a required check is never left pending or green")
    p.add_argument("--config-path", default="budgets.yaml", metavar="FILE",
                   help="with --if-missing: the budgets file the missing report was for (its sticky comment and "
                        "annotations; default budgets.yaml)")
    p.add_argument("--bot-login", metavar="LOGIN",
                   help="with --github: the GitHub App login that posts the comment (`my-app[bot]`), besides "
                        "github-actions[bot]; only a comment of one of them is ever updated")
    p.set_defaults(handler=cmd_report)


def read_report_json(path: Path, text_only: bool = False) -> Any:
    """A report file's JSON, refused (one line naming it) past MAX_KPIS rows before anything
    walks it: a forged report's rows cost ~0.2 ms each to check and render. `text_only`: for
    a report that is stored (see bounded.parse_json)."""
    from molt_budget.bounded import MAX_KPIS
    from molt_budget.errors import ConfigError
    from molt_budget.results.store import read_json_file

    data = read_json_file(path, "report file", text_only=text_only)
    rows = data.get("kpis") if isinstance(data, dict) else None
    if isinstance(rows, list) and len(rows) > MAX_KPIS:
        raise ConfigError(f"{path}: not a molt-budget report: {len(rows):,} KPI rows, more than the {MAX_KPIS:,} "
                          f"molt-budget reads (a budgets file holds fewer)")
    return data


def load_report(path: Path) -> Report:
    """Read and schema-check a report; any problem is one line naming the file (exit 2).

    The reader (molt_budget.bounded) refuses NaN/Infinity, out-of-range numbers and deep
    nesting with their line; lone surrogates become U+FFFD (they could not be posted).
    """
    from molt_budget.compare.model import Report
    from molt_budget.errors import ConfigError
    from molt_budget.report.escape import clean_tree
    from molt_budget.schemas import is_valid, validator

    data = clean_tree(read_report_json(path))
    try:
        # a valid report passes the compiled check alone (jsonschema's import costs more than
        # the rest of `report`); an invalid one gets jsonschema's path and wording
        valid = is_valid("report", data)
        errors = [] if valid else sorted(validator("report").iter_errors(data), key=lambda e: list(e.absolute_path))
    except RecursionError:
        raise ConfigError(f"{path}: not a molt-budget report: nested too deeply") from None
    error = next(iter(errors), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ConfigError(f"{path}: not a molt-budget report at {where}: {' '.join(error.message.split())[:300]}")
    try:
        return Report.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: not a molt-budget report: {exc}") from None


def missing_report(path: Path, env: Any, config_path: str = "budgets.yaml") -> Report:
    """Stands in for a report the measuring workflow never produced: always an error.

    Only a run that skipped every lane (documentation only) is neutral, and that run uploads a
    report of its own; a missing one means it failed, timed out, was cancelled or skipped, or
    needs approval, and a required check must not pass on that.
    """
    import json
    from pathlib import Path

    conclusion = None
    try:
        event = json.loads(Path(env.get("GITHUB_EVENT_PATH") or "").read_text(encoding="utf-8"))
        conclusion = (event.get("workflow_run") or {}).get("conclusion")
    except (OSError, ValueError, AttributeError):
        pass
    why = f"the measuring workflow ended {conclusion}" if conclusion else "the measuring workflow left no report"
    return stand_in_report(config_path, f"no report at {path}: {why}")


def stand_in_report(config_path: str, why: str) -> Report:
    """An error report with nothing judged: the check fails and says why (one definition, the poster's)."""
    from molt_budget.report.github import stand_in_report as poster_stand_in

    return poster_stand_in(config_path, why)


def sparklines_from_history(report: Report, db: Path, main_only: bool = True) -> dict[str, list[float]]:
    """Per-KPI series (oldest first) from the history database, for the table's trend column:
    main records only unless `main_only=False`."""
    from molt_budget.results.history import History

    history = History(db)
    out: dict[str, list[float]] = {}
    for k in report.kpis:
        if k.metric:
            series = [p.value for p in history.kpi_series(k.id, k.lane, k.metric, limit=20, main_only=main_only)]
            if len(series) > 1:
                out[k.id] = series
    return out


def default_history(report: Report, config_path: str) -> Path:
    """settings.history of the report's budgets file (or --config-path), for the HTML charts:
    a missing database gives a page that says so, never a silent page without charts."""
    from pathlib import Path

    from molt_budget.config import load_config
    from molt_budget.errors import BudgetError

    for candidate in (report.config_path, config_path):
        if candidate and Path(candidate).is_file():
            try:
                config = load_config(candidate)
            except BudgetError:
                continue
            return config.resolve(config.settings.history)
    return Path(config_path).parent / ".molt-budget" / "history.sqlite"


def cmd_report(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from molt_budget.compare.model import exit_code
    from molt_budget.errors import EXIT_CONFIG, EXIT_INTERNAL, ConfigError

    path = Path(args.report)
    history = Path(args.history) if args.history else None
    if history is not None and not history.is_file():
        raise ConfigError(f"{history}: no such history database")
    if args.html:
        from molt_budget.environment import output_folder

        output_folder(args.html, "--html", "the HTML report's pages")
    if args.if_missing and not path.exists():
        report = missing_report(path, os.environ, args.config_path)
        print(f"molt-budget: {report.authoritative_reasons[0]}", file=sys.stderr)
    else:
        try:
            report = load_report(path)
        except Exception as exc:
            if not args.github:
                raise
            # the required check must still fail visibly, never stay missing: post a stand-in
            from molt_budget.report.github import publish

            internal = not isinstance(exc, ConfigError)
            message = " ".join(str(exc).split()) if not internal else f"internal error: {type(exc).__name__}: {exc}"
            print(f"molt-budget: error: {message}", file=sys.stderr)
            publish(stand_in_report(args.config_path, f"invalid report: {message}"), check_name=args.check_name,
                    bot_login=args.bot_login)
            return EXIT_INTERNAL if internal else EXIT_CONFIG
    if history is None and args.html:
        history = default_history(report, args.config_path)
    sparklines = sparklines_from_history(report, history, not args.all_branches) if history and history.is_file() else report.trends
    if args.html:
        try:
            from molt_budget.report.html import write_html
        except ImportError as exc:
            print(f"molt-budget: error: the HTML report is not available in this installation ({exc})", file=sys.stderr)
            return EXIT_CONFIG
        from molt_budget.environment import writing

        with writing(args.html, "the HTML report"):
            write_html(report, Path(args.html), history, main_only=not args.all_branches)
        print(f"molt-budget: wrote the HTML report to {args.html}", file=sys.stderr)
    if args.markdown or not (args.github or args.html):
        from molt_budget.report.markdown import render_markdown

        sys.stdout.write(render_markdown(report, max_chars=args.max_chars, sparklines=sparklines))
        sys.stdout.flush()
    if args.github:
        from molt_budget.report.github import publish

        posted = publish(report, check_name=args.check_name, sparklines=sparklines, bot_login=args.bot_login)
        if posted.internal_error:
            print(f"molt-budget: internal error {posted.internal_error} (a failing check run was posted)", file=sys.stderr)
            return EXIT_INTERNAL
        if posted.refused:
            print(f"molt-budget: error: {args.report}: {posted.refused}", file=sys.stderr)
            return EXIT_CONFIG
        return exit_code(posted.verdict)          # the verdict as the report's own rows judge it
    return 0          # rendering worked; the verdict is in what was rendered
