"""`.pre-commit-hooks.yaml` with the real `pre-commit` tool: installed from a local clone of this
repository, run by `git push` to a bare remote; a failing KPI blocks the push."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, check=check, capture_output=True, text=True)


def _hook_repo(tmp: Path) -> tuple[Path, str]:
    """A local clone of this repository as it is now (tracked files, working-tree content)."""
    clone = tmp / "molt-budget"
    files = git(REPO, "ls-files", "-z").stdout.split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, clone / name)
    git(clone.parent, "init", "-q", "-b", "main", str(clone))
    git(clone, "add", "-A")
    git(clone, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "hook repo")
    return clone, git(clone, "rev-parse", "HEAD").stdout.strip()


def _budgets(size: int) -> str:
    return yaml.safe_dump({
        "version": 1,
        "settings": {"output_root": ".molt-budget", "quiescence": {"max_wait_s": 0}},
        "lanes": {"fast": {"command": [sys.executable, "-c", f"print('size={size}')"], "repeats": 1, "pre_push": True}},
        "kpis": {"size": {"lane": "fast", "metric": r"regex:stdout:size=(\d+)", "target": 8, "limit": 10}},
    }, sort_keys=False)


def test_the_hook_blocks_a_push_with_a_failed_kpi(tmp_path: Path) -> None:
    manifest = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())   # valid YAML at all
    assert [h["id"] for h in manifest] == ["molt-budget"]
    hook_repo, rev = _hook_repo(tmp_path)
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    work = tmp_path / "project"
    git(tmp_path, "init", "-q", "-b", "main", str(work))
    git(work, "config", "user.email", "t@example.com")
    git(work, "config", "user.name", "t")
    git(work, "remote", "add", "origin", str(remote))
    (work / ".gitignore").write_text(".molt-budget/\n")
    (work / "budgets.yaml").write_text(_budgets(5))
    (work / ".pre-commit-config.yaml").write_text(yaml.safe_dump(
        {"repos": [{"repo": hook_repo.as_uri(), "rev": rev, "hooks": [{"id": "molt-budget"}]}]}))
    git(work, "add", "-A")
    git(work, "commit", "-qm", "budgets")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"), "PYTHONPATH": "",
           # the hook's environment builds the clone with the setuptools virtualenv seeds it with,
           # not a fresh isolated one (~3 CPU-s of a second install; `.ci/run` and README's
           # install build isolated): PIP_NO_BUILD_ISOLATION=0 is pip's spelling of --no-build-isolation
           "VIRTUALENV_SETUPTOOLS": "bundle", "PIP_NO_BUILD_ISOLATION": "0",
           # virtualenv's app data is new in every session (XDG_CACHE_HOME, conftest.py), so each
           # run started its periodic update: detached `pip download`s of pip, setuptools and wheel
           # from the package index, ~15 CPU-s beside the suite that no test waits for or uses
           "VIRTUALENV_NO_PERIODIC_UPDATE": "1",
           # pyyaml, jsonschema, ... come from this interpreter (installed from the same pyproject by
           # `.ci/run`) instead of ~4 CPU-s of downloading and installing them again; the hook repo
           # itself is still built and installed into the hook's own environment (asserted below)
           "VIRTUALENV_SYSTEM_SITE_PACKAGES": "1"}
    pre_commit = [sys.executable, "-m", "pre_commit"]
    installed = subprocess.run([*pre_commit, "install", "--hook-type", "pre-push"], cwd=work, env=env,
                               capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    assert (work / ".git" / "hooks" / "pre-push").is_file()

    ok = subprocess.run(["git", "push", "-q", "origin", "main"], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "InvalidManifestError" not in ok.stdout + ok.stderr
    # the hook runs the clone installed into its own environment, not this interpreter's molt_budget
    assert list((tmp_path / "pre-commit-home").glob("repo*/py_env-*/lib/python*/site-packages/molt_budget-*.dist-info"))
    pushed = git(remote, "rev-parse", "main").stdout.strip()
    assert pushed == git(work, "rev-parse", "HEAD").stdout.strip()

    (work / "budgets.yaml").write_text(_budgets(50))          # now above the limit of 10
    git(work, "commit", "-qam", "grow")
    blocked = subprocess.run(["git", "push", "-q", "origin", "main"], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert blocked.returncode != 0
    assert "molt-budget" in blocked.stdout + blocked.stderr and "Failed" in blocked.stdout + blocked.stderr
    assert git(remote, "rev-parse", "main").stdout.strip() == pushed       # nothing reached the remote
