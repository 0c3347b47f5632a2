"""The two shipped budgets files: the demo gate catches the seed's bloat story, molt's file is sound."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from molt_budget.cli import main
from molt_budget.config import load_config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.xdist_group("demo-mp")      # the build test_compare_git.py's check measured (conftest.demo_mp_regression)
def test_import_multiprocessing_breaks_the_demo_ir_budgets(demo_mp_regression: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped budgets.yaml judges the demo's `import multiprocessing` build: its IR KPIs fail on
    their own limits (`verdict`: budgets only, no base). The build is the session's one (~7 CPU-s):
    the dev_cold lane of the same demo and profile, whose IR is byte-identical with or without a
    cache (test_demo.py); the shipped lane's own command runs in test_github_cli.py's shards."""
    results = demo_mp_regression["report"]["results_path"]
    capsys.readouterr()
    code = main(["verdict", results, "--config", str(REPO / "budgets.yaml")])
    out = capsys.readouterr().out
    assert code == 1
    failed = {line.split()[1].rstrip(":") for line in out.splitlines() if line.strip().startswith("FAIL")}
    assert {"ir_size_mb", "ir_ops", "init_modules"} <= failed, out
    config = load_config(REPO / "budgets.yaml")
    measured = {k["id"]: k["head"] for k in demo_mp_regression["report"]["kpis"]}
    for kpi in ("ir_size_mb", "ir_ops", "init_modules"):      # past the shipped limit, not only above a base
        assert config.kpis[kpi].limit is not None and measured[kpi] > config.kpis[kpi].limit, (kpi, measured[kpi])


MOLT = load_config(REPO / "examples" / "molt" / "budgets.yaml")


def test_molt_lanes_are_real_molt_builds() -> None:
    for lane in MOLT.lanes.values():
        argv = lane.command
        assert isinstance(argv, list) and argv[argv.index("molt.cli") + 1] == "build", lane.id
        assert "--build-profile" in argv
        profile = argv[argv.index("--build-profile") + 1]
        assert profile == ("dev" if lane.id.startswith("dev") else "release"), lane.id
        assert ("--no-cache" in argv) == ("nocache" in lane.id or "queue" in lane.id), lane.id
        assert lane.env.get("MOLT_RELEASE_CARGO_PROFILE") == ("release-fast" if "release_fast" in lane.id else None), lane.id
        assert lane.env["MOLT_BACKEND_DAEMON"] == ("0" if "daemon_off" in lane.id else "1"), lane.id


def test_molt_cold_lanes_get_fresh_caches_and_warm_lanes_are_primed() -> None:
    for lane in MOLT.lanes.values():
        assert lane.env["MOLT_CACHE"].startswith("${cache_dir}") and lane.env["CARGO_TARGET_DIR"].startswith("${cache_dir}")
        if "cold" in lane.id:
            assert lane.cache_state == "cold" and lane.expect_cache == "miss" and "--no-cache" not in lane.command
        if lane.id.endswith("_warm") and "nocache" not in lane.id:
            assert lane.prime is not None and lane.expect_cache == "hit"
            prime = MOLT.lanes[lane.prime]
            assert prime.cache_state == "cold"
    assert MOLT.lanes["dev_queue_daemon_on"].warmups == 2 and MOLT.lanes["dev_queue_daemon_off"].warmups == 2


def _number(text: str) -> float:
    return float(re.sub(r"[\s,\u2009\u202f]", "", text))


def test_molt_targets_are_the_trackers(shared: Path) -> None:
    """Each KPI's target is the one molt's tracker sets (formats.md §5: baseline → target → latest),
    found through the `latest` value its `basis` cites: the budgets file and the tracker agree."""
    doc = (shared / "molt" / "formats.md").read_text(encoding="utf-8")
    section = doc[doc.index("## 5."):]
    section = section[: section.index("\n---")]
    tracker = {_number(latest): _number(target)
               for target, latest in re.findall(r"≤\s*([\d][\d\s,.]*?)\s*→\s*\**\s*([\d][\d\s,.]*\d)", section)}
    assert len(tracker) == 8, tracker
    judged = {}
    for kpi in MOLT.kpis.values():
        assert kpi.owner and kpi.basis and kpi.justification, kpi.id
        cited = re.search(r"latest ([\d][\d,.]*\d)", kpi.basis)
        if cited is not None:
            judged[kpi.id] = (kpi.target, tracker.get(_number(cited.group(1))))
    assert len(judged) == len(tracker) and all(target == want for target, want in judged.values()), judged


@pytest.mark.slow   # a real git repository whose hook runs `check` on real lanes
def test_install_hook_in_a_real_repo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    config = tmp_path / "budgets.yaml"
    config.write_text(
        "version: 1\nsettings: {quiescence: {max_wait_s: 0}}\n"
        "lanes:\n  fast: {command: ['${python}', '-S', '-c', 'pass'], repeats: 1, pre_push: true}\n"
        "  slow: {command: ['${python}', '-S', '-c', 'import sys; sys.exit(1)'], repeats: 1}\n"
        "kpis:\n  fast_s: {lane: fast, metric: wall_s, target: 30}\n  slow_s: {lane: slow, metric: wall_s, target: 30}\n"
    )
    assert main(["install-hook", "--config", str(config)]) == 0
    hook = tmp_path / ".git" / "hooks" / "pre-push"
    text = hook.read_text()
    assert "-m molt_budget check --pre-push --config" in text and hook.stat().st_mode & 0o111
    run = subprocess.run([str(hook)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "verdict: PASS" in run.stdout and "slow_s" not in run.stdout
    hook.write_text("#!/bin/sh\necho mine\n")
    assert main(["install-hook", "--config", str(config)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["install-hook", "--config", str(config), "--force"]) == 0
