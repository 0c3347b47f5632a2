"""`molt-budget history`: list, show and prune the local index; push and pull the shared data branch.

The local SQLite index (settings.history) is the embedded default. `push` publishes one main
record to the data branch (settings.data_branch on settings.data_remote) and `pull` indexes the
branch's records that are not indexed yet, so a fresh CI runner remembers main.
Registered through molt_budget.cli.COMMAND_MODULES; only argparse is imported at module level.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from molt_budget.commands.args import count
from molt_budget.report.escape import terminal as t

ACTIONS = ["list", "show", "record", "prune", "push", "pull"]
EPILOG = """\
A main record is a run of a commit on main's first-parent history, on a clean tree, with every
lane of the budgets file complete, on a quiet host. Only main records are baselines, trend
points, ratchet and noise bases; `list` says why any other run is not one.

examples:
  molt-budget history                       newest runs, their verdict, and whether each is a main record
  molt-budget history show <run-id>
  molt-budget history record merged.json --report-json report.json   record a results file (no push)
  molt-budget history prune --keep 200      drop older runs and their run folders (IR included)
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "history", help="list, show or prune recorded runs; push and pull main's records on the data branch",
        description="list / show RUN_ID / prune --keep N: the local history database.\n"
                    "push: publish a main record to the data branch (commits and pushes one file; never touches "
                    "your work tree or index; retries when another runner pushed first).\n"
                    "pull: fetch the data branch and index the records not indexed yet (read access is enough).",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
    )
    p.add_argument("--config", default="budgets.yaml", metavar="FILE", help="budgets file (default: ./budgets.yaml)")
    p.add_argument("--db", metavar="PATH", help="history database (default: settings.history)")
    p.add_argument("action", nargs="?", choices=ACTIONS, default="list")
    p.add_argument("run_id", nargs="?", metavar="ARG", help="run id for `show`; RESULTS.json for `record`")
    p.add_argument("--limit", type=count(), default=20, help="rows for `list` (default 20)")
    p.add_argument("--main-only", action="store_true", help="`list`: main records only")
    p.add_argument("--json", action="store_true", help="`show`: print the whole record as JSON")
    p.add_argument("--keep", type=count(), help="runs to keep for `prune` (their run folders, IR included, go too)")
    p.add_argument("--report-json", metavar="PATH", help="`record` and `push --results`: that run's comparison report (its whole verdict)")
    sync = p.add_argument_group("push and pull")
    sync.add_argument("--remote", metavar="REMOTE", help="git remote (name, URL or path) of the data branch (default: settings.data_remote)")
    sync.add_argument("--branch", metavar="NAME", help="the data branch (default: settings.data_branch, molt-budget-data)")
    sync.add_argument("--no-fetch", action="store_true",
                      help="pull: index <remote>/<branch> as already fetched (e.g. by actions/checkout with fetch-depth: 0) "
                           "instead of fetching it")
    sync.add_argument("--results", metavar="RESULTS.json",
                      help="push: record this results file (e.g. merged CI shards) and push it if it is a main record")
    sync.add_argument("--run", metavar="RUN_ID", help="push: this recorded run (default: the newest main record)")
    sync.add_argument("--site", metavar="DIR", help="push: also publish DIR (e.g. `report --html DIR`) as docs/ on the data branch")
    p.set_defaults(handler=cmd_history)


def cmd_history(args: argparse.Namespace) -> int:
    if args.action == "push":
        return cmd_push(args)
    if args.action == "pull":
        return cmd_pull(args)
    from tabulate import tabulate

    from molt_budget.errors import BudgetError

    if args.action == "record":
        return cmd_record(args)
    history = _history(args)
    if args.action == "show":
        if not args.run_id:
            raise BudgetError("history show needs a RUN_ID (see `molt-budget history`)")
        record = history.show(args.run_id)
        if args.json:
            print(json.dumps(record.to_dict(), indent=2))
            return 0
        print(f"run {t(record.run_id)}: {record.status}, started {t(record.started_utc)}, commit {t(record.commit or '-')}, "
              f"branch {t(record.branch or '-')}, source {t(record.source)}")
        print("main record" if record.main else "not a main record: " + "; ".join(t(r) for r in record.not_main_reasons))
        rows = [_cells([k.id, k.lane, k.metric, "-" if k.value is None else f"{k.value:g}", k.target, k.limit, k.budget_status,
                        k.status, k.reason]) for k in record.kpis]
        print(tabulate(rows, headers=["KPI", "lane", "metric", "value", "target", "limit", "budget", "verdict", "reason"],
                       tablefmt="github"))
        return 0
    if args.action == "prune":
        if args.keep is None or args.keep < 0:
            raise BudgetError("history prune needs --keep N (N >= 0)")
        from molt_budget.results.retention import remove_run_dir

        dropped = history.prune(args.keep)
        folders = sum(remove_run_dir(path) for _run, path in dropped)
        print(f"pruned {len(dropped)} run(s), {folders} run folder(s) removed")
        return 0
    rows = [
        _cells([r.run_id, r.started_utc, (r.commit or "-")[:12], r.branch or "-", r.state, r.status,
                "yes" if r.main else f"no: {r.why_not_main}", r.source,
                " ".join(f"{k}={v}" for k, v in sorted(r.counts.items())) or "-"])
        for r in history.runs(args.limit, main_only=args.main_only)
    ]
    if not rows:
        print(f"no runs recorded in {history.path}")
        return 0
    print(tabulate(rows, headers=["run", "started (UTC)", "commit", "branch", "state", "verdict", "main", "source", "verdicts"],
                   tablefmt="github", maxcolwidths=[None, None, None, None, None, None, 60, None, None]))
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    """Record a results file (e.g. merged CI shards) with its report's verdict and its main check."""
    from molt_budget.commands.check import record_run
    from molt_budget.errors import BudgetError

    if not args.run_id:
        raise BudgetError("history record needs RESULTS.json")
    config = _config(args)
    history = _history(args, config)
    record = record_run(config, history, *_results_and_report(Path(args.run_id), args.report_json))
    state = "main record" if record.main else "not a main record: " + "; ".join(record.not_main_reasons)
    print(f"recorded {t(record.run_id)} in {history.path} ({record.status}; {t(state)})")
    return 0


def _results_and_report(results_path: Path, report_path: str | None) -> tuple[Any, Path, Any]:
    """(results, results_path, report): both files checked against their schemas (one line naming the file)."""
    from molt_budget.commands.report_cmd import read_report_json
    from molt_budget.errors import ConfigError
    from molt_budget.results.store import load_results

    results = load_results(results_path)
    report = read_report_json(Path(report_path), text_only=True) if report_path else None   # stored
    if report is not None:
        from molt_budget.schemas import first_error

        error = first_error("report", report)
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
            raise ConfigError(f"{report_path}: invalid report at {where}: {error.message}")
    return results, results_path, report


def _config(args: argparse.Namespace) -> Any:
    from molt_budget.config import load_config

    return load_config(args.config)


def _history(args: argparse.Namespace, config: Any = None) -> Any:
    from molt_budget.results.history import History

    if args.db:
        return History(Path(args.db))
    config = config or _config(args)
    return History(config.resolve(config.settings.history), config.settings.main_branch)


def _sync_target(args: argparse.Namespace, config: Any) -> tuple[Path, str, str]:
    """(repository, remote, branch): the repository is the one holding the budgets file."""
    from molt_budget import gitutil
    from molt_budget.errors import ConfigError

    repo = gitutil.toplevel(config.root)
    if repo is None:
        raise ConfigError(f"{config.path}: not inside a git repository; `history {args.action}` needs one")
    return repo, args.remote or config.settings.data_remote, args.branch or config.settings.data_branch


def cmd_push(args: argparse.Namespace) -> int:
    from molt_budget.errors import ConfigError
    from molt_budget.results import databranch

    config = _config(args)
    history = _history(args, config)
    repo, remote, branch = _sync_target(args, config)
    record = _record_to_push(args, config, history)
    files: dict[str, bytes] = {}
    if record is not None:
        files[databranch.record_path(record.run_id, record.commit, record.started_utc)] = record.to_gzip()
    if args.site:
        files.update(_site_files(Path(args.site)))
    if not files:
        raise ConfigError("history push: nothing to push (give --results, --run, or --site)")
    what = t(f"record {record.run_id} of {(record.commit or '?')[:12]}") if record is not None else "site"
    outcome = databranch.push_files(repo, remote, branch, files, f"molt-budget: {what}",
                                    replace=databranch.SITE if args.site else None)
    if outcome.already:
        print(f"{remote} {branch}: {what} is already there ({outcome.commit[:12] if outcome.commit else '-'}); nothing pushed")
    else:
        retried = f" after {outcome.attempts - 1} lost race(s)" if outcome.attempts > 1 else ""
        print(f"{remote} {branch}: pushed {what} as {(outcome.commit or '')[:12]}{retried}")
    return 0


def _record_to_push(args: argparse.Namespace, config: Any, history: Any) -> Any:
    """The main record to publish: from --results (recorded now), --run, or the newest main record."""
    from molt_budget.errors import ConfigError

    if args.results:
        from molt_budget.commands.check import record_run

        record = record_run(config, history, *_results_and_report(Path(args.results), args.report_json))
    elif args.run:
        record = history.get(args.run)
        if record is None:
            raise ConfigError(f"{history.path}: no run '{args.run}' in history")
    elif args.site:
        return None
    else:
        record = history.latest_main()
        if record is None:
            raise ConfigError(f"{history.path}: no main record to push (a clean, complete, authoritative run of a "
                              f"commit on {config.settings.main_branch}); see `molt-budget history list`")
    if record is None or not record.main:
        reasons = "; ".join(record.not_main_reasons) if record is not None else "not recorded"
        raise ConfigError(f"run {args.run or getattr(record, 'run_id', '?')} is not a main record ({reasons}): "
                          "only main records go on the data branch")
    return record


def _site_files(folder: Path) -> dict[str, bytes]:
    from molt_budget.errors import ConfigError
    from molt_budget.results import databranch

    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder (write it with `molt-budget report REPORT.json --html {folder}`)")
    files = {f"{databranch.SITE}/{p.relative_to(folder).as_posix()}": p.read_bytes()
             for p in sorted(folder.rglob("*")) if p.is_file()}
    files[f"{databranch.SITE}/.nojekyll"] = b""      # GitHub Pages: serve the files as they are
    return files


def cmd_pull(args: argparse.Namespace) -> int:
    from molt_budget import gitutil
    from molt_budget.errors import ConfigError
    from molt_budget.results import databranch
    from molt_budget.results.record import RunRecord

    config = _config(args)
    history = _history(args, config)
    repo, remote, branch = _sync_target(args, config)
    if args.no_fetch:
        source = f"refs/remotes/{remote}/{branch}"
        tip = gitutil.try_git(repo, "rev-parse", "--verify", "--quiet", f"{source}^{{commit}}")
        listing = databranch.list_records(repo, tip) if tip else databranch.BranchListing(None, {})
    else:
        listing = databranch.fetch_records(repo, remote, branch)
        source = f"{remote} {branch}"
    if listing.tip is None:
        print(f"{source}: no data branch yet, nothing to pull (the main workflow's `history push` creates it)")
        return 0
    known = history.indexed_ids()
    new = {p: sha for p, sha in listing.records.items() if databranch.run_id_of(p) not in known}
    bad: list[str] = []

    def records() -> Any:
        for path, data in databranch.read_files(repo, new):
            if data is None:
                bad.append(f"{branch}:{path}: larger than {databranch.MAX_RECORD_BYTES >> 20} MB, not a history record")
                continue
            try:
                record = RunRecord.from_gzip(data, f"{branch}:{path}")
            except ConfigError as exc:
                bad.append(str(exc))
                continue
            if databranch.record_path(record.run_id, record.commit, record.started_utc) != path or not record.main:
                # a file must be the main record of the run, commit and month its name gives
                bad.append(f"{branch}:{path}: not the main record its name says (run {record.run_id})")
                continue
            yield record

    indexed = history.index_many(records())
    print(f"{source} @ {listing.tip[:12]}: {indexed} new record(s) indexed, "
          f"{len(listing.records) - len(new)} already indexed" + (f", {len(bad)} invalid file(s) skipped" if bad else ""))
    for line in bad:
        print(f"molt-budget: error: {t(line)}", file=sys.stderr)
    return 2 if bad else 0


def _cells(row: list[Any]) -> list[Any]:
    """A table row of a record's fields for the terminal: the strings came from a results file
    or the data branch, which anyone can forge (report/escape.py); numbers stay numbers."""
    return [t(cell) if isinstance(cell, str) else cell for cell in row]
