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

ACTIONS = ["list", "show", "prune", "push", "pull"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "history", help="list, show or prune recorded runs; push and pull main's records on the data branch",
        description="list / show RUN_ID / prune --keep N: the local history database.\n"
                    "push: publish a main record to the data branch (commits and pushes one file; never touches "
                    "your work tree or index; retries when another runner pushed first).\n"
                    "pull: fetch the data branch and index the records not indexed yet (read access is enough).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", default="budgets.yaml", metavar="FILE", help="budgets file (default: ./budgets.yaml)")
    p.add_argument("--db", metavar="PATH", help="history database (default: settings.history)")
    p.add_argument("action", nargs="?", choices=ACTIONS, default="list")
    p.add_argument("run_id", nargs="?", help="run id for `show`")
    p.add_argument("--limit", type=int, default=20, help="rows for `list` (default 20)")
    p.add_argument("--keep", type=int, help="runs to keep for `prune`")
    sync = p.add_argument_group("push and pull")
    sync.add_argument("--remote", metavar="REMOTE", help="git remote (name, URL or path) of the data branch (default: settings.data_remote)")
    sync.add_argument("--branch", metavar="NAME", help="the data branch (default: settings.data_branch, molt-budget-data)")
    sync.add_argument("--ref", metavar="REF",
                      help="pull: index this local ref instead of fetching (e.g. origin/molt-budget-data that a full "
                           "actions/checkout already fetched)")
    sync.add_argument("--results", metavar="RESULTS.json",
                      help="push: record this results file (e.g. merged CI shards) and push it if it is a main record")
    sync.add_argument("--report", metavar="REPORT.json", help="push --results: its comparison report (the whole verdict)")
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

    history = _history(args)
    if args.action == "show":
        if not args.run_id:
            raise BudgetError("history show needs a RUN_ID (see `molt-budget history`)")
        data = history.show(args.run_id)
        print(json.dumps(data["run"], indent=2, default=str))
        print(tabulate(data["verdicts"], headers=["KPI", "lane", "metric", "value", "target", "limit", "status", "reason"], tablefmt="github"))
        return 0
    if args.action == "prune":
        if args.keep is None or args.keep < 0:
            raise BudgetError("history prune needs --keep N (N >= 0)")
        print(f"pruned {history.prune(args.keep)} run(s)")
        return 0
    rows = [
        [r.run_id, r.started_utc, (r.commit or "-")[:12], r.branch or "-", r.state, "yes" if r.authoritative else "no", r.source,
         " ".join(f"{k}={v}" for k, v in sorted(r.counts.items())) or "-"]
        for r in history.runs(args.limit)
    ]
    if not rows:
        print(f"no runs recorded in {history.path}")
        return 0
    print(tabulate(rows, headers=["run", "started (UTC)", "commit", "branch", "state", "authoritative", "source", "verdicts"], tablefmt="github"))
    return 0


def _config(args: argparse.Namespace) -> Any:
    from molt_budget.config import load_config

    return load_config(args.config)


def _history(args: argparse.Namespace, config: Any = None) -> Any:
    from molt_budget.results.history import History

    if args.db:
        return History(Path(args.db))
    config = config or _config(args)
    return History(config.resolve(config.settings.history))


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
    what = f"record {record.run_id} of {(record.commit or '?')[:12]}" if record is not None else "site"
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
        from molt_budget.results.mainline import classify
        from molt_budget.results.store import load_results, read_json_file

        results = load_results(Path(args.results))
        report = read_json_file(Path(args.report), "report file") if args.report else None
        history.record(results, Path(args.results), main=classify(config, results), report=report)
        record = history.get(results.run_id)
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
    if args.ref:
        tip = gitutil.try_git(repo, "rev-parse", "--verify", "--quiet", f"{args.ref}^{{commit}}")
        listing = databranch.list_records(repo, tip) if tip else databranch.BranchListing(None, {})
        source = args.ref
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
            try:
                record = RunRecord.from_gzip(data, f"{branch}:{path}")
            except ConfigError as exc:
                bad.append(str(exc))
                continue
            if record.run_id != databranch.run_id_of(path) or not record.main:
                bad.append(f"{branch}:{path}: not the main record its name says (run {record.run_id})")
                continue
            yield record

    indexed = history.index_many(records())
    print(f"{source} @ {listing.tip[:12]}: {indexed} new record(s) indexed, "
          f"{len(listing.records) - len(new)} already indexed" + (f", {len(bad)} invalid file(s) skipped" if bad else ""))
    for line in bad:
        print(f"molt-budget: error: {line}", file=sys.stderr)
    return 2 if bad else 0
