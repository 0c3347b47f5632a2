"""The shared history: one gzip'd record file per main run on an append-only git branch.

Why a git branch: CI runners start empty, but every clone of the repository can fetch a
branch with the token it already has (`contents: read` is enough, so fork PRs can read it);
only the main workflow writes. Files are named by run id and commit, so two runners never
write the same path and a retried push never duplicates a record.

Writing never touches the user's work tree or index: the commit is built from a blob in a
temporary index (gitutil.commit_files) on top of the fetched tip and pushed as a fast-forward.
When another runner pushed first, the push is refused; we fetch the new tip and commit the
same file on top of it again, until it lands.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from molt_budget import gitutil
from molt_budget.errors import ConfigError
from molt_budget.structs import Struct

RECORDS = "records"
MAX_RECORD_BYTES = 8 << 20     # gzip'd; real records are 1-50 kB
SITE = "docs"          # GitHub Pages serves a branch's root or its docs/ folder
_SAFE = re.compile(r"[^A-Za-z0-9.+-]")


def tracking_ref(branch: str) -> str:
    """Where a fetched data branch is kept: a private ref, never a branch the user sees or checks out."""
    return f"refs/molt-budget/{branch}"


def record_path(run_id: str, commit: str | None, started_utc: str) -> str:
    """`records/<YYYY-MM>/<run id>_<commit12>.json.gz`: unique by run and commit; grouped by month so
    each append rewrites only a small tree."""
    month = started_utc[:7] if re.match(r"\d{4}-\d{2}", started_utc) else "undated"
    return f"{RECORDS}/{month}/{_SAFE.sub('-', run_id)}_{(commit or 'nocommit')[:12]}.json.gz"


def run_id_of(path: str) -> str | None:
    """The run id a record file is named after (None: not a record file)."""
    name = path.rsplit("/", 1)[-1]
    if not (path.startswith(RECORDS + "/") and name.endswith(".json.gz") and "_" in name):
        return None
    return name[: -len(".json.gz")].rsplit("_", 1)[0]


class PushOutcome(Struct):
    branch: str
    paths: list[str]
    commit: str | None          # the data-branch commit that holds them
    attempts: int               # pushes tried (1: no race)
    already: bool = False       # every file was already on the branch: nothing pushed


def push_files(repo: Path, remote: str, branch: str, files: dict[str, bytes], message: str, *,
               replace: str | None = None, attempts: int = 30, sleep: Callable[[float], None] = time.sleep) -> PushOutcome:
    """Commit `files` onto `branch` of `remote` and push; on a lost race fetch the new tip and again.

    A file already on the branch with the same content is not committed again (a retried
    `history push` is a no-op). `replace` drops a folder's old files first (the site).
    """
    blobs = {path: gitutil.hash_blob(repo, data) for path, data in files.items()}
    ref = tracking_ref(branch)
    for attempt in range(1, attempts + 1):
        tip = gitutil.fetch_branch(repo, remote, branch, ref)
        if tip is not None and replace is None:
            present = gitutil.ls_tree(repo, tip, *blobs)
            if all(present.get(p) == sha for p, sha in blobs.items()):
                return PushOutcome(branch, sorted(blobs), tip, attempt - 1, already=True)
            clash = sorted(p for p in blobs if p in present and present[p] != blobs[p])
            if clash:
                # append-only: the first record of a run stays; a different file of the same run id is refused
                raise ConfigError(f"{remote} {branch}: {clash[0]} is already recorded with other content (append-only)")
        commit = gitutil.commit_files(repo, tip, blobs, message, replace=replace)
        try:
            gitutil.push_commit(repo, remote, commit, branch)
        except gitutil.PushRejected:
            # another runner landed first: back off a little (jittered, so two racers part) and rebuild on its tip
            sleep(random.uniform(0.05, min(2.0, 0.1 * 2 ** min(attempt, 5))))
            continue
        gitutil.git(repo, "update-ref", ref, commit)
        return PushOutcome(branch, sorted(blobs), commit, attempt)
    raise ConfigError(f"git push {remote} {branch}: gave up after {attempts} attempts (the branch kept moving); "
                      "run `molt-budget history push` again, nothing was lost")


class BranchListing(Struct):
    tip: str | None                    # None: the remote has no data branch yet
    records: dict[str, str]            # path -> blob sha of every record file


def fetch_records(repo: Path, remote: str, branch: str) -> BranchListing:
    """Fetch the data branch (read-only) and list its record files."""
    tip = gitutil.fetch_branch(repo, remote, branch, tracking_ref(branch))
    return list_records(repo, tip) if tip is not None else BranchListing(None, {})


def list_records(repo: Path, tip: str) -> BranchListing:
    listing = gitutil.ls_tree(repo, tip, RECORDS + "/")
    return BranchListing(tip, {p: sha for p, sha in listing.items() if run_id_of(p) is not None})


def read_files(repo: Path, files: dict[str, str]) -> Iterator[tuple[str, bytes | None]]:
    """(path, bytes) of the given branch files, read through one git process; None for a file
    past MAX_RECORD_BYTES (a record is a few kB; anything that big is not one)."""
    paths = sorted(files)
    for path, (_sha, data) in zip(paths, gitutil.read_blobs(repo, [files[p] for p in paths], MAX_RECORD_BYTES)):
        yield path, data
