"""Run folders (IR, diagnostics, logs) are bounded; history keeps what the diff and trends need.
The ratchet hint of `check` appears only when `ratchet` would propose the same thing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from test_compare_git import DEMO, commit, demo_repo, git

from molt_budget.cli import main
from molt_budget.results.history import History
from molt_budget.results.record import RunRecord

pytestmark = pytest.mark.slow   # real git repositories and demo builds: `pytest -m "not slow"` skips them


def set_settings(repo: Path, **settings: object) -> None:
    doc = yaml.safe_load((repo / "budgets.yaml").read_text())
    doc["settings"].update(settings)
    (repo / "budgets.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    git(repo, "commit", "-qam", "settings")


def run_dirs(repo: Path) -> list[Path]:
    return sorted(p for p in (repo.parent / "out" / "runs").iterdir() if p.is_dir())


def test_keep_run_dirs_bounds_the_folder_and_the_base_comes_from_the_record(tmp_path: Path) -> None:
    repo = demo_repo(tmp_path)
    set_settings(repo, keep_run_dirs=2)
    config = str(repo / "budgets.yaml")
    for _ in range(3):
        assert main(["check", "--config", config, "--quiet", "--no-base"]) == 0
    kept = run_dirs(repo)
    history = History(repo.parent / "out" / "history.sqlite")
    assert len(kept) == 2 and len(history.runs()) == 3
    assert [p.name for p in kept] == sorted(r.run_id for r in history.runs())[1:]      # the newest two
    # the record next to the results is the indexed record, byte for byte
    newest = kept[-1]
    assert RunRecord.from_gzip((newest / "record.json.gz").read_bytes()) == history.get(newest.name)
    assert history.get(newest.name).lanes["dev"].detail["ir"]["function_ops"]     # the diff's IR summary kept

    # every run folder gone: a branch still gets its base from main's record (no worktree build)
    main_sha = git(repo, "rev-parse", "HEAD")
    for folder in run_dirs(repo):
        shutil.rmtree(folder)
    git(repo, "checkout", "-qb", "feature")
    commit(repo, {"hello.py": "import json\n" + (DEMO / "hello.py").read_text()})      # a regression, cheap to build
    report_path = tmp_path / "report.json"
    assert main(["check", "--config", config, "--quiet", "--report-json", str(report_path)]) == 1
    report = json.loads(report_path.read_text())
    assert report["base"]["source"] == "history" and report["base"]["commit"] == main_sha
    assert {m["module"] for m in report["diff"]["modules_added"]} >= {"json"}
    assert not (repo.parent / "out" / "worktrees").exists()


def test_prune_removes_run_folders_but_never_other_files(tmp_path: Path, shared: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = demo_repo(tmp_path)
    config = str(repo / "budgets.yaml")
    snapshot = tmp_path / "compile_progress.json"
    shutil.copy(shared / "molt/examples/compile_progress.json", snapshot)
    assert main(["import-compile-progress", "--config", config, str(snapshot)]) == 0
    for _ in range(2):
        assert main(["check", "--config", config, "--quiet", "--no-base"]) == 0
    assert len(run_dirs(repo)) == 2
    capsys.readouterr()
    assert main(["history", "prune", "--keep", "1", "--config", config]) == 0
    assert capsys.readouterr().out.strip() == "pruned 2 run(s), 1 run folder(s) removed"
    assert len(run_dirs(repo)) == 1 and snapshot.is_file()          # an imported file is never ours to delete


def test_ratchet_hint_only_when_ratchet_would_propose_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    repo = demo_repo(tmp_path)         # demo IR ops sit far under the 100000 target
    config = str(repo / "budgets.yaml")
    report_path = tmp_path / "report.json"

    (repo / "hello.py").write_text("x = 2\n" + (DEMO / "hello.py").read_text())      # dirty: not a main record
    assert main(["check", "--config", config, "--quiet", "--no-base", "--report-json", str(report_path)]) == 0
    assert json.loads(report_path.read_text())["ratchets"] == []
    capsys.readouterr()
    assert main(["ratchet", "--config", config]) == 2                # and ratchet has nothing to read either
    assert "no main record" in capsys.readouterr().err
    git(repo, "checkout", "--", "hello.py")

    assert main(["check", "--config", config, "--quiet", "--no-base", "--report-json", str(report_path)]) == 0
    hinted = {r["kpi"]: r["new_target"] for r in json.loads(report_path.read_text())["ratchets"]}
    assert hinted
    capsys.readouterr()
    assert main(["ratchet", "--config", config]) == 0
    out = capsys.readouterr().out
    for kpi, target in hinted.items():
        assert any(line.startswith(f"| {kpi} ") and f"-> {target:g}" in line for line in out.splitlines()), (kpi, out)
