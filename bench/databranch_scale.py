"""The data branch at scale: `history pull` of 10k / 100k records next to a bare `git fetch`
of the same branch, an incremental pull (one new record), and the branch's bytes per record.

    python3 bench/databranch_scale.py                  # 10k and 100k records
    python3 bench/databranch_scale.py --sizes 10000    # quicker
    python3 bench/databranch_scale.py --sizes "" --template results.json   # size a year of real records
    python3 bench/history_scale.py --part pull         # the same rows in the history bench's table

The branch is built the way `history push` builds it: one commit per record adding one file
under records/<YYYY-MM>/ (written with git fast-import, which makes the same objects a
hundred thousand pushes would, in seconds), then packed as a server keeps it. Both sides fetch
from that bare repository into an empty clone; pull also decompresses, validates and indexes
every record (a real `molt-budget history pull` process). On a shared, loaded VM the timings
are noisy: each side is the median of interleaved rounds.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import median, print_table

from molt_budget.results import databranch
from molt_budget.results.record import RunRecord
from molt_budget.structs import replace

BRANCH = "molt-budget-data"


def git(cwd: Path, *args: str, data: bytes | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, input=data, check=True, capture_output=True).stdout.decode().strip()


def as_main(records: list[RunRecord]) -> list[RunRecord]:
    """Only main records go on the branch: the bench's branch holds n of them."""
    return [r if r.main else replace(r, main=True, not_main_reasons=[]) for r in records]


def build_branch(remote: Path, records: list[RunRecord]) -> None:
    """One commit per record, as `history push` makes them, via one git fast-import stream."""
    git(remote.parent, "init", "-q", "--bare", str(remote))
    chunks = []
    for i, record in enumerate(records):
        blob = record.to_gzip()
        path = databranch.record_path(record.run_id, record.commit, record.started_utc)
        message = f"molt-budget: record {record.run_id} of {(record.commit or '?')[:12]}".encode()
        when = 1_772_345_600 + 3600 * i
        chunks.append(b"commit refs/heads/%s\ncommitter molt-budget <molt-budget@users.noreply.github.com> %d +0000\n"
                      b"data %d\n%s\n" % (BRANCH.encode(), when, len(message), message))
        chunks.append(b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(blob), blob))
    git(remote, "fast-import", "--quiet", data=b"".join(chunks))          # consecutive commits to one ref chain up
    git(remote, "repack", "-adq", "--window=50", "--depth=50")     # how a server keeps it (gc)


def packed_bytes(remote: Path) -> int:
    return sum(p.stat().st_size for p in (remote / "objects" / "pack").glob("*.pack"))


def consumer(work: Path, remote: Path, name: str, budgets_text: str) -> Path:
    """An empty clone of a project whose data remote is `remote`."""
    repo = work / name
    git(work, "init", "-q", str(repo))
    (repo / "budgets.yaml").write_text(budgets_text)
    git(repo, "remote", "add", "origin", str(remote))
    return repo


def timed_run(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def bench_pull(n: int, records: list[RunRecord], work: Path, rounds: int = 3) -> list[list[Any]]:
    import yaml
    from history_scale import budgets

    folder = work / f"pull-{n}"
    folder.mkdir(parents=True, exist_ok=True)
    records = as_main(records)
    remote = folder / "remote.git"
    start = time.perf_counter()
    build_branch(remote, records)
    build_s = time.perf_counter() - start
    size = packed_bytes(remote)
    blob = sum(len(r.to_gzip()) for r in records[:1000]) / min(n, 1000)
    text = yaml.safe_dump(budgets(2, 3), sort_keys=False)
    fetch_s, full_s, pull_s = [], [], []
    refspec = f"+refs/heads/{BRANCH}:refs/molt-budget/{BRANCH}"
    for k in range(rounds):                        # interleaved: a busy phase of the host hits every side alike
        bare = consumer(folder, remote, f"fetch-{k}", text)
        fetch_s.append(timed_run(["git", "fetch", "-q", "--no-tags", "--depth", "1", "origin", refspec], bare))
        full = consumer(folder, remote, f"full-{k}", text)
        full_s.append(timed_run(["git", "fetch", "-q", "--no-tags", "origin", refspec], full))
        puller = consumer(folder, remote, f"pull-{k}", text)
        pull_s.append(timed_run([sys.executable, "-m", "molt_budget", "history", "pull", "--db", str(puller / "h.sqlite")], puller))
    # incremental: one more record lands; pull again (only that file is read and indexed)
    extra = as_main([replace(records[-1], run_id=records[-1].run_id + "x", commit="e" * 40)])[0]
    pusher = consumer(folder, remote, "pusher", text)
    databranch.push_files(pusher, "origin", BRANCH, {databranch.record_path(extra.run_id, extra.commit, extra.started_utc):
                                                     extra.to_gzip()}, "one more")
    again = timed_run([sys.executable, "-m", "molt_budget", "history", "pull", "--db", str(puller / "h.sqlite")], puller)
    fetch_again = timed_run(["git", "fetch", "-q", "--no-tags", "--depth", "1", "origin", refspec], bare)
    indexed = subprocess.run([sys.executable, "-c", "import sys; from molt_budget.results.history import History; "
                              "print(len(History(sys.argv[1]).indexed_ids()))", str(puller / "h.sqlite")],
                             check=True, capture_output=True, text=True).stdout.strip()
    assert int(indexed) == n + 1, indexed
    tag = f"{n // 1000}k records"
    f, full_f, p = median(fetch_s), median(full_s), median(pull_s)
    return [
        [tag, "bare git fetch of the branch's tip (--depth 1, what pull fetches)", f"{f:.2f} s", "-", "-"],
        [tag, "bare git fetch of the whole branch", f"{full_f:.2f} s", "-", "-"],
        [tag, "history pull (fetch + read + validate + index)", f"{p:.2f} s ({p / f:.1f}× tip fetch, {p / full_f:.1f}× full fetch)", "-", "-"],
        [tag, "pull after one new record (incremental)", f"{again:.2f} s (fetch alone {fetch_again:.2f} s)", "-", "-"],
        [tag, "data branch, packed, per record", f"{size / n:,.0f} B (record file {blob:,.0f} B gz)", "-", "-"],
        [tag, "building the branch (fast-import, one commit per record)", f"{build_s:.1f} s", "-", "-"],
    ]


def records_like(template: Path, n: int) -> list[RunRecord]:
    """n main records shaped like a real run's (its lanes, KPIs, IR/diagnostics summaries), one a
    day, with the timings jittered as real days differ: what a year of daily runs adds."""
    import random

    from molt_budget.results.record import MainCheck
    from molt_budget.results.store import load_results

    base = RunRecord.from_run(load_results(template), MainCheck(True, [], "origin/main"))
    rng = random.Random(1)
    out = []
    for i in range(n):
        day = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(1_772_345_600 + 86400 * i))
        lanes = {name: replace(lane, metrics={m: round(v * rng.uniform(0.97, 1.03), 6) if m.endswith("_s") else v
                                                           for m, v in lane.metrics.items()})
                 for name, lane in base.lanes.items()}
        out.append(replace(base, run_id=f"{day[:10].replace('-', '')}T052300000Z-{i:06x}", started_utc=day,
                                       finished_utc=day, commit=f"{rng.getrandbits(160):040x}", lanes=lanes))
    return out


def bench_real(template: Path, n: int, work: Path) -> list[list[Any]]:
    """Bytes per record of a branch of real-shaped records (no pull timing: the size is the point)."""
    records = records_like(template, n)
    remote = work / f"real-{n}.git"
    build_branch(remote, records)
    size = packed_bytes(remote)
    blob = sum(len(r.to_gzip()) for r in records) / n
    tag = f"{n} real-shaped"
    return [[tag, "data branch, packed, per record", f"{size / n:,.0f} B (record file {blob:,.0f} B gz)", "-", "-"],
            [tag, "per year of daily runs (365 records)", f"{size / n * 365 / 1e6:.2f} MB", "-", "-"]]


def main(argv: list[str] | None = None) -> int:
    from history_scale import make_records

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="records on the branch (comma-separated)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per side (median; default 3)")
    parser.add_argument("--template", metavar="RESULTS.json",
                        help="also size a branch of 1000 records shaped like this real run (e.g. `molt-budget run --results R.json`)")
    args = parser.parse_args(argv)
    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory(prefix="databranch-scale-") as tmp:
        for n in (int(s) for s in args.sizes.split(",") if s):
            rows += bench_pull(n, make_records(n), Path(tmp), args.rounds)
        if args.template:
            rows += bench_real(Path(args.template), 1000, Path(tmp))
    print_table(f"data branch at scale (medians of {args.rounds} interleaved rounds)", rows,
                ["branch", "what", "measured", "goal", "verdict"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
