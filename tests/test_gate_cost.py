"""The gate's own cost, as counts that can regress: parses per check, builds per exact lane."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from molt_budget.cli import main
from molt_budget.config import loader


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def budgets(target: int, justification: str = "") -> str:
    doc: dict[str, Any] = {
        "version": 1,
        "defaults": {"timeout_s": 60, "repeats": 1, "retries": 0},
        "settings": {"output_root": "../out", "history": "../out/history.sqlite", "quiescence": {"max_wait_s": 0}},
        "lanes": {"echo": {"command": [sys.executable, "-c", "print('size: 42')"]}},
        "kpis": {"size": {"lane": "echo", "metric": "regex:stdout:size: (\\d+)", "class": "exact", "target": target,
                          "owner": "me", "justification": justification}},
    }
    return yaml.safe_dump(doc, sort_keys=False)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often each distinct budgets text goes through the loader (YAML + schema + model)."""
    seen: Counter[str] = Counter()
    real = loader.parse_text

    def counting(path: Path, text: str) -> Any:
        seen[text] += 1
        return real(path, text)

    monkeypatch.setattr(loader, "parse_text", counting)
    return seen


def test_check_parses_head_and_base_budgets_once_each(tmp_path: Path, parses: Counter[str]) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    (repo / ".gitignore").write_text("out/\n")
    base_text = budgets(50)
    (repo / "budgets.yaml").write_text(base_text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "feature")
    head_text = budgets(60, "the new parser needs room")
    (repo / "budgets.yaml").write_text(head_text)
    git(repo, "commit", "-qam", "loosen")

    code = main(["check", "--config", str(repo / "budgets.yaml"), "--quiet", "--report-json", str(tmp_path / "r.json")])

    assert code == 0
    report = yaml.safe_load((tmp_path / "r.json").read_text())
    assert [c["kind"] for c in report["budget_changes"]] == ["loosened"]   # the budget gate did run
    assert parses == Counter({head_text: 1, base_text: 1})
