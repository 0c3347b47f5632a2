"""The data branch's git mechanics in real repositories: a bare remote and clones of it.

Concurrent pushers are real processes started together (a start file releases them at once),
several rounds each; every file must land exactly once on a linear, append-only branch, and the
pushers' work trees and indexes must stay as they were.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_for_file

from molt_budget.errors import ConfigError
from molt_budget.results import databranch

pytestmark = pytest.mark.slow   # real git remotes and pushes

BRANCH = "molt-budget-data"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def bare_remote(tmp_path: Path, *, refuse_pushes: bool = False) -> Path:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    if refuse_pushes:       # a fork's view of upstream: it can read, never write
        hook = remote / "hooks" / "pre-receive"
        hook.write_text("#!/bin/sh\necho 'push refused: read-only' >&2\nexit 1\n")
        hook.chmod(0o755)
    return remote


def clone(tmp_path: Path, remote: Path, name: str) -> Path:
    work = tmp_path / name
    git(tmp_path, "clone", "-q", str(remote), str(work))
    git(work, "config", "user.email", f"{name}@example.com")
    git(work, "config", "user.name", name)
    return work


def seeded(tmp_path: Path) -> tuple[Path, Path]:
    """A remote with one commit on main, and a first clone."""
    remote = bare_remote(tmp_path)
    first = clone(tmp_path, remote, "a")
    (first / "README").write_text("project\n")
    git(first, "add", "README")
    git(first, "commit", "-qm", "init")
    git(first, "push", "-q", "origin", "HEAD:main")
    return remote, first


def branch_files(remote: Path) -> list[str]:
    return git(remote, "ls-tree", "-r", "--name-only", BRANCH).splitlines()


RACER = """
import sys, time
from pathlib import Path
from molt_budget.results import databranch
repo, who, rounds, start = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
Path(f"{start}.{who}").write_text("imported\\n")   # up and imported: only the pushes are left
while not start.exists():
    time.sleep(0.005)
lost = 0
for i in range(rounds):
    path = databranch.record_path(f"20261201T0000{i:02d}000Z-{who}", "c0ffee" * 7, "2026-12-01T00:00:00Z")
    out = databranch.push_files(repo, "origin", "molt-budget-data", {path: f"{who} {i}".encode()}, f"record {who} {i}")
    lost += out.attempts - 1
print(lost)
"""


def test_concurrent_pushers_land_every_record_exactly_once(tmp_path: Path) -> None:
    remote, a = seeded(tmp_path)
    b = clone(tmp_path, remote, "b")
    (a / "README").write_text("uncommitted edit\n")              # a dirty work tree and a staged file
    (a / "staged.txt").write_text("staged\n")
    git(a, "add", "staged.txt")
    status_before, head_before = git(a, "status", "--porcelain"), git(a, "rev-parse", "HEAD")
    log_before = git(a, "log", "--format=%H %P", "HEAD")
    start = tmp_path / "go"
    rounds = 6
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(repo), who, str(rounds), str(start)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for repo, who in ((a, "a"), (b, "b"))]
    for who in "ab":
        wait_for_file(Path(f"{start}.{who}"))   # both racers are up: release them at one instant
    start.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    files = branch_files(remote)
    expected = sorted(databranch.record_path(f"20261201T0000{i:02d}000Z-{who}", "c0ffee" * 7, "2026-12-01T00:00:00Z")
                      for who in "ab" for i in range(rounds))
    assert sorted(files) == expected                             # all 12, none lost, none twice
    # append-only and linear: one commit per record, each adding exactly one file on top of the last
    assert git(remote, "rev-list", "--count", BRANCH) == str(2 * rounds)
    assert git(remote, "rev-list", "--min-parents=2", BRANCH) == ""
    for sha in git(remote, "rev-list", BRANCH).splitlines():
        assert len(git(remote, "diff-tree", "--root", "--no-commit-id", "--name-status", "-r", sha).splitlines()) == 1
    # the pushers' own checkouts were never touched
    assert git(a, "status", "--porcelain") == status_before and git(a, "rev-parse", "HEAD") == head_before
    assert git(a, "log", "--format=%H %P", "HEAD") == log_before      # the shallow data-branch fetch cut nothing of main
    assert git(a, "branch", "--list", BRANCH) == ""
    assert git(remote, "log", "-1", "--format=%an", BRANCH) == "molt-budget"


def test_push_again_is_a_no_op_and_history_cannot_be_rewritten(tmp_path: Path) -> None:
    remote, a = seeded(tmp_path)
    path = databranch.record_path("20261201T000000000Z-abc123", "f" * 40, "2026-12-01T00:00:00Z")
    first = databranch.push_files(a, "origin", BRANCH, {path: b"one"}, "record")
    again = databranch.push_files(a, "origin", BRANCH, {path: b"one"}, "record")
    assert (first.already, again.already, again.commit) == (False, True, first.commit)
    assert git(remote, "rev-list", "--count", BRANCH) == "1"
    with pytest.raises(ConfigError, match="already recorded with other content"):
        databranch.push_files(a, "origin", BRANCH, {path: b"two"}, "record")


def test_a_remote_that_refuses_pushes_fails_once_with_one_line(tmp_path: Path) -> None:
    remote = bare_remote(tmp_path, refuse_pushes=True)
    fork = clone(tmp_path, remote, "fork")
    slept: list[float] = []
    with pytest.raises(ConfigError) as err:
        databranch.push_files(fork, "origin", BRANCH, {"records/2026-12/x_y.json.gz": b"x"}, "record", sleep=slept.append)
    assert "pre-receive hook declined" in str(err.value) and "\n" not in str(err.value)
    assert slept == []                                           # a refusal is not a race: no retry loop


def test_listing_and_reading_after_fetch(tmp_path: Path) -> None:
    remote, a = seeded(tmp_path)
    reader = clone(tmp_path, remote, "reader")
    assert databranch.fetch_records(reader, "origin", BRANCH).tip is None      # no data branch yet
    paths = {databranch.record_path(f"20261201T00000{i}000Z-r", "a" * 40, "2026-12-01T00:00:00Z"): f"{i}".encode() for i in range(3)}
    for path, data in paths.items():
        databranch.push_files(a, "origin", BRANCH, {path: data}, "record")
    databranch.push_files(a, "origin", BRANCH, {"docs/index.html": b"<html>"}, "site", replace=databranch.SITE)
    listing = databranch.fetch_records(reader, "origin", BRANCH)
    assert sorted(listing.records) == sorted(paths)              # the site is not a record
    assert dict(databranch.read_files(reader, listing.records)) == paths
    assert {databranch.run_id_of(p) for p in paths} == {f"20261201T00000{i}000Z-r" for i in range(3)}


def test_site_is_replaced_whole_and_records_stay(tmp_path: Path) -> None:
    remote, a = seeded(tmp_path)
    record = databranch.record_path("20261201T000000000Z-abc", "b" * 40, "2026-12-01T00:00:00Z")
    databranch.push_files(a, "origin", BRANCH, {record: b"r"}, "record")
    databranch.push_files(a, "origin", BRANCH, {"docs/index.html": b"1", "docs/old.png": b"x"}, "site", replace="docs")
    databranch.push_files(a, "origin", BRANCH, {"docs/index.html": b"2"}, "site", replace="docs")
    assert sorted(branch_files(remote)) == ["docs/index.html", record]
    assert git(remote, "show", f"{BRANCH}:docs/index.html") == "2"


def test_record_names_are_unique_by_run_and_commit() -> None:
    one = databranch.record_path("20261201T000000000Z-aaa", "1" * 40, "2026-12-01T00:00:00Z")
    assert one == "records/2026-12/20261201T000000000Z-aaa_111111111111.json.gz"
    assert one != databranch.record_path("20261201T000000000Z-aaa", "2" * 40, "2026-12-01T00:00:00Z")
    merged = databranch.record_path("r1+r2", "3" * 40, "2026-12-01T00:00:00Z")
    assert databranch.run_id_of(merged) == "r1+r2"
    assert databranch.run_id_of(databranch.record_path("../../x y", None, "garbage")) == "..-..-x-y"
    assert databranch.run_id_of("docs/index.html") is None


def test_a_lost_race_recommits_on_the_winners_tip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic: B lands between A's fetch and A's push; A's push is refused, A recommits on B's tip."""
    from molt_budget import gitutil

    remote, a = seeded(tmp_path)
    b = clone(tmp_path, remote, "b")
    real = gitutil.commit_files
    calls: list[str | None] = []

    def commit_then_lose(repo: Path, parent: str | None, *args: object, **kwargs: object) -> str:
        calls.append(parent)
        if len(calls) == 1:      # B wins the race right after A built its commit
            databranch.push_files(b, "origin", BRANCH, {"records/2026-12/b_1.json.gz": b"b"}, "record b")
        return real(repo, parent, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(gitutil, "commit_files", commit_then_lose)
    slept: list[float] = []
    out = databranch.push_files(a, "origin", BRANCH, {"records/2026-12/a_1.json.gz": b"a"}, "record a", sleep=slept.append)
    assert out.attempts == 2 and len(slept) == 1
    assert calls[0] is None and calls[-1] == git(remote, "rev-parse", f"{BRANCH}~1")   # rebuilt on B's commit
    assert sorted(branch_files(remote)) == ["records/2026-12/a_1.json.gz", "records/2026-12/b_1.json.gz"]


def test_an_oversized_file_is_skipped_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remote, a = seeded(tmp_path)
    small = databranch.record_path("20261201T000000000Z-s", "a" * 40, "2026-12-01T00:00:00Z")
    big = databranch.record_path("20261201T000000000Z-b", "a" * 40, "2026-12-01T00:00:00Z")
    databranch.push_files(a, "origin", BRANCH, {small: b"s" * 10, big: os.urandom(3000)}, "two")
    monkeypatch.setattr(databranch, "MAX_RECORD_BYTES", 1000)
    listing = databranch.fetch_records(a, "origin", BRANCH)
    assert dict(databranch.read_files(a, listing.records)) == {small: b"s" * 10, big: None}


@pytest.mark.parametrize("via", ["fetch", "push"])
def test_a_remote_git_would_read_as_an_option_is_refused_before_git_runs(tmp_path: Path, via: str) -> None:
    """`--upload-pack=CMD` as the data remote made `git fetch` run CMD (and `--receive-pack=CMD`
    `git push`): the remote comes from budgets.yaml and --remote."""
    _remote, work = seeded(tmp_path)
    mark = tmp_path / "ran"
    option = "--upload-pack" if via == "fetch" else "--receive-pack"
    with pytest.raises(ConfigError) as err:
        databranch.push_files(work, f"{option}=touch {mark}", BRANCH, {"records/2026-12/x_y.json.gz": b"x"}, "record")
    assert "starts with '-'" in str(err.value) and not mark.exists()
    from molt_budget import gitutil

    with pytest.raises(ConfigError):
        gitutil.push_commit(work, f"--receive-pack=touch {mark}", git(work, "rev-parse", "HEAD"), BRANCH)
    assert not mark.exists()


def test_a_data_remote_option_in_budgets_is_refused_with_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from molt_budget.cli import main

    mark = tmp_path / "ran"
    _remote, work = seeded(tmp_path)
    config = work / "budgets.yaml"
    config.write_text(
        "version: 1\n"
        f"settings: {{data_remote: '--upload-pack=touch {mark}'}}\n"
        "lanes: {dev: {command: [/bin/true]}}\n"
        "kpis: {wall: {lane: dev, metric: wall_s, target: 10}}\n")
    assert main(["history", "pull", "--config", str(config)]) == 2
    assert "budgets.yaml:2: settings.data_remote:" in capsys.readouterr().err
    config.write_text(config.read_text().replace(f"'--upload-pack=touch {mark}'", "origin"))
    assert main(["history", "pull", "--config", str(config), "--remote", f"--upload-pack=touch {mark}"]) == 2
    assert not mark.exists()


@pytest.mark.parametrize("where", ["main_branch", "remote_main", "--base of check", "--base of budget-diff"])
def test_a_main_branch_or_base_git_would_read_as_an_option_is_refused(where: str, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """`git rev-list --first-parent --output=FILE` creates FILE: a main branch or a base that
    starts with '-' (a pull request edits budgets.yaml) never reaches git. The budgets file is
    refused with its line; a command-line base by gitutil, before any lane runs (exit 2 both)."""
    from molt_budget.cli import main

    mark = tmp_path / "made"
    _remote, work = seeded(tmp_path)
    option = f"--output={mark}"
    config = work / "budgets.yaml"
    settings = f"settings: {{{where}: '{option}'}}\n" if not where.startswith("--") else "settings: {}\n"
    ran = tmp_path / "lane-ran"
    config.write_text("version: 1\n" + settings + f"lanes: {{dev: {{command: [/bin/touch, '{ran}']}}}}\n"
                      "kpis: {wall: {lane: dev, metric: wall_s, target: 10}}\n")
    verb = "budget-diff" if where.endswith("budget-diff") else "check"
    argv = [verb, "--config", str(config)] + ([f"--base={option}"] if where.startswith("--") else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (f"budgets.yaml:2: settings.{where}:" in err) if not where.startswith("--") else repr(option) in err
    assert not mark.exists() and not ran.exists()


def test_every_ref_git_is_handed_is_checked_where_git_is_called(tmp_path: Path) -> None:
    """The rule lives in gitutil, beside the remote's: each function that hands git a ref refuses
    one it would read as an option, whoever asks (a base, main's branch, a record's commit)."""
    from molt_budget import gitutil

    _remote, work = seeded(tmp_path)
    mark = tmp_path / "made"
    option = f"--output={mark}"
    head = git(work, "rev-parse", "HEAD")
    for call in (lambda: gitutil.resolve_commit(work, option), lambda: gitutil.ref_exists(work, option),
                 lambda: gitutil.default_base(work, [option]), lambda: gitutil.main_ref(work, [option]),
                 lambda: gitutil.on_first_parent(work, option, head), lambda: gitutil.on_first_parent(work, "HEAD", option)):
        with pytest.raises(ConfigError):
            call()
    assert not mark.exists()
