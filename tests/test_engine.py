"""The gate end to end on real subprocesses: lanes, retries, prime, resume, snapshots, history."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from conftest import fake_build, tables_of, wait_for_file

from molt_budget.cli import main
from molt_budget.results.store import detail_bytes, load_results, results_chunks

pytestmark = pytest.mark.slow   # the gate end to end: CLI runs of real subprocess lanes (`pytest -m "not slow"` skips them)


def write_budgets(tmp_path: Path, lanes: dict[str, Any], kpis: dict[str, Any], **settings: Any) -> Path:
    doc = {
        "version": 1,
        "defaults": {"timeout_s": 20, "repeats": 2, "retries": 2, "retry_backoff_s": 0.05},
        "settings": {"output_root": "out", "history": "out/history.sqlite", "lock_timeout_s": 1,
                     "quiescence": {"max_wait_s": 0}, **settings},
        "lanes": lanes,
        "kpis": kpis,
    }
    path = tmp_path / "budgets.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run_cli(*args: str) -> int:
    return main(list(args))


def latest_results(tmp_path: Path) -> Any:
    runs = sorted((tmp_path / "out" / "runs").iterdir())
    return load_results(runs[-1] / "results.json")


def ir_lane(shared: Path, **extra: Any) -> dict[str, Any]:
    return {
        "command": fake_build("--ir", str(shared / "molt/real/A/ir.json"), "--emit-ir", "${emit_ir}",
                              "--diag", str(shared / "molt/real/A/diagnostics.json")),
        "emit_ir": True, "diagnostics": True, "repeats": 1, **extra,
    }


def test_exact_kpis_from_real_molt_files(tmp_path: Path, shared: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meta = json.loads((shared / "molt/real/A/meta.json").read_text())
    config = write_budgets(
        tmp_path,
        {"dev": ir_lane(shared)},
        {
            "ops": {"lane": "dev", "metric": "ir.ops", "target": 100000, "limit": 120000},
            "funcs": {"lane": "dev", "metric": "ir.functions", "target": 100, "limit": 500},
            "init": {"lane": "dev", "metric": "ir.init_modules", "target": 2, "limit": 4},
            "mods": {"lane": "dev", "metric": "diag.module_count", "target": 12},
            "graph": {"lane": "dev", "metric": "diag.phase.module_graph", "target": 100},
            "core": {"lane": "dev", "metric": "diag.reason.core_closure", "target": 10},
            "spawn": {"lane": "dev", "metric": "diag.reason.spawn_closure", "limit": 0},
        },
    )
    assert run_cli("check", "--config", str(config), "--quiet") == 1
    out = capsys.readouterr().out
    results = latest_results(tmp_path)
    by_id = {k.id: k for k in results.kpis}
    assert by_id["ops"].value == meta["ir"]["op_count"] and by_id["ops"].status == "pass"
    assert by_id["funcs"].value == meta["ir"]["function_count"] and by_id["funcs"].status == "yellow"
    assert by_id["init"].value == meta["ir"]["molt_init_count"] and by_id["init"].status == "fail"
    assert by_id["mods"].value == meta["module_count"]
    assert by_id["graph"].value == pytest.approx(meta["diagnostics"]["phase_sec"]["module_graph"])
    assert by_id["core"].value == meta["diagnostics"]["module_reason_summary"]["core_closure"]
    assert by_id["spawn"].value == 0 and by_id["spawn"].status == "pass"
    assert re.search(r"^FAIL +init\b.* 6 modules", out, re.M) and "verdict: FAIL" in out
    detail = results.lanes["dev"].detail
    assert sorted(detail["diagnostics"]["module_reasons"]) == sorted(meta["ir"]["molt_init_functions"][i][len("molt_init_"):] for i in range(6))
    # the run's last write put the lane's detail in as the journal's encoded piece (compact JSON)
    # between the lane's own lines: writing the parsed file out again the same way gives its bytes
    written = (sorted((tmp_path / "out" / "runs").iterdir())[-1] / "results.json").read_bytes()
    doc = json.loads(written)
    lane_detail = doc["lanes"]["dev"]["detail"]
    assert written == b"".join(results_chunks(doc, {"dev": (lane_detail, detail_bytes(lane_detail))}, tables_of(doc)))


def test_compile_error_is_not_retried_and_is_a_measurement_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    count = tmp_path / "count"
    config = write_budgets(
        tmp_path,
        {"broken": {"command": fake_build("--exit", "2", "--count", str(count))}},
        {"wall": {"lane": "broken", "metric": "wall_s", "target": 10}},
    )
    assert run_cli("check", "--config", str(config), "--quiet") == 3
    assert count.read_text().count("run") == 1
    results = latest_results(tmp_path)
    assert results.lanes["broken"].status == "error"
    assert "exit code 2 (expected 0)" in results.lanes["broken"].error
    assert results.kpis[0].status == "error"
    assert "ERROR" in capsys.readouterr().out


def test_lock_timeout_line_is_retried_with_reason(tmp_path: Path) -> None:
    config = write_budgets(
        tmp_path,
        {"flaky": {"command": fake_build("--lock-fail", "2", "--state", str(tmp_path / "state")), "repeats": 1}},
        {"wall": {"lane": "flaky", "metric": "wall_s", "target": 10}},
    )
    assert run_cli("check", "--config", str(config), "--quiet") == 0
    sample = latest_results(tmp_path).lanes["flaky"].measured()[0]
    assert sample.attempts == 3
    assert sample.retry_reason == "build_lock_timeout"
    assert [a.retry_reason for a in sample.attempt_log] == ["build_lock_timeout", "build_lock_timeout", None]
    assert all(Path(a.stderr_log).exists() for a in sample.attempt_log)
    # each attempt in a folder of its own, one level under the lane's
    folders = [Path(a.stderr_log).parent for a in sample.attempt_log]
    assert len(set(folders)) == 3 and {f.parent.name for f in folders} == {"flaky"}


def test_timeout_retries_then_errors(tmp_path: Path) -> None:
    config = write_budgets(
        tmp_path,
        {"hang": {"command": fake_build("--sleep", "60"), "timeout_s": 0.5, "retries": 1, "repeats": 1}},
        {"wall": {"lane": "hang", "metric": "wall_s", "target": 10}},
    )
    assert run_cli("check", "--config", str(config), "--quiet") == 3
    lane = latest_results(tmp_path).lanes["hang"]
    assert "timed out after 0.5s after 2 attempt(s)" in lane.error
    assert lane.samples[0].retry_reason == "timeout"


def test_prime_makes_warm_real_and_cold_wipes(tmp_path: Path) -> None:
    build = fake_build("--cache-report")
    config = write_budgets(
        tmp_path,
        {
            "cold": {"command": build, "env": {"MOLT_CACHE": "${cache_dir}"}, "cache_state": "cold", "expect_cache": "miss"},
            "warm": {"command": build, "env": {"MOLT_CACHE": "${cache_dir}"}, "prime": "cold", "expect_cache": "hit"},
        },
        {"w": {"lane": "warm", "metric": "wall_s", "target": 10}, "c": {"lane": "cold", "metric": "wall_s", "target": 10}},
    )
    assert run_cli("check", "--config", str(config), "--quiet") == 0
    results = latest_results(tmp_path)
    assert [s.cache_state for s in results.lanes["cold"].samples] == ["miss", "miss"]
    warm = results.lanes["warm"].samples
    assert [(s.kind, s.cache_state) for s in warm] == [("prime", "miss"), ("measure", "hit"), ("measure", "hit")]


def test_warm_lane_that_missed_is_an_error(tmp_path: Path) -> None:
    config = write_budgets(
        tmp_path,
        {"warm": {"command": fake_build("--cache-report"), "env": {"MOLT_CACHE": "${cache_dir}"},
                  "cache_state": "warm", "expect_cache": "hit"}},   # no prime: the first build misses
        {"w": {"lane": "warm", "metric": "wall_s", "target": 10}},
    )
    assert run_cli("check", "--config", str(config), "--quiet") == 3
    assert "expected a cache hit, the build reported 'miss'" in latest_results(tmp_path).lanes["warm"].error


def test_missing_diagnostics_file_names_the_file(tmp_path: Path) -> None:
    config = write_budgets(
        tmp_path,
        {"nodiag": {"command": fake_build(), "diagnostics": True, "repeats": 1}},
        {"t": {"lane": "nodiag", "metric": "diag.total_sec", "target": 10}},
    )
    assert run_cli("check", "--config", str(config), "--quiet") == 3
    error = latest_results(tmp_path).lanes["nodiag"].error
    assert "diagnostics.json" in error


def test_resume_keeps_finished_lanes_and_reruns_failed(tmp_path: Path) -> None:
    flag = tmp_path / "broken"
    flag.write_text("1")
    good_count, bad_count = tmp_path / "good", tmp_path / "bad"
    shell = f"test ! -f {flag} && {sys.executable} -c pass"
    config = write_budgets(
        tmp_path,
        {
            "good": {"command": fake_build("--count", str(good_count)), "repeats": 1},
            "bad": {"command": f"echo run >> {bad_count}; {shell}", "repeats": 1, "retries": 0},
        },
        {"g": {"lane": "good", "metric": "wall_s", "target": 10}, "b": {"lane": "bad", "metric": "wall_s", "target": 10}},
    )
    assert run_cli("check", "--config", str(config), "--quiet") == 3
    run_dir = sorted((tmp_path / "out" / "runs").iterdir())[-1]
    failed_attempt = Path(load_results(run_dir / "results.json").lanes["bad"].samples[0].attempt_log[0].stderr_log).parent
    (failed_attempt / "left.over").write_text("from the failed run")
    flag.unlink()
    assert run_cli("check", "--config", str(config), "--quiet", "--resume", str(run_dir)) == 0
    assert failed_attempt.is_dir() and not (failed_attempt / "left.over").exists()   # its folder, emptied
    assert good_count.read_text().count("run") == 1
    assert bad_count.read_text().count("run") == 2
    assert load_results(run_dir / "results.json").lanes["bad"].status == "ok"


def test_sigterm_mid_run_keeps_measured_samples_and_kills_the_tree(tmp_path: Path) -> None:
    started = tmp_path / "started"
    config = write_budgets(
        tmp_path,
        {
            "fast": {"command": fake_build(), "repeats": 2},
            # a shell with a background child: the tree, not only the lane's main process, must die
            "slow": {"command": f"{sys.executable} -c 'import sys, time; open(sys.argv[1], \"w\").write(\"up\\n\"); time.sleep(60)' {shlex.quote(str(started))} & wait",
                     "repeats": 1, "timeout_s": 120},
        },
        {"f": {"lane": "fast", "metric": "wall_s", "target": 10}, "s": {"lane": "slow", "metric": "wall_s", "target": 100}},
    )
    proc = subprocess.Popen([sys.executable, "-m", "molt_budget", "check", "--config", str(config)],
                            stderr=subprocess.PIPE, text=True)
    wait_for_file(started)                   # the slow lane's build (the shell's child) is running
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=30)[1]
    assert proc.returncode == 130, rest
    assert "--resume" in rest
    results = latest_results(tmp_path)
    assert results.state == "interrupted"
    assert len(results.lanes["fast"].measured()) == 2
    survivors = []
    for p in psutil.process_iter(["environ"]):
        try:
            if (p.info["environ"] or {}).get("MOLT_BUDGET_RUN_ID") == results.run_id:
                survivors.append(p.pid)
        except psutil.Error:
            pass
    assert survivors == []


def test_output_root_lock_times_out_with_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import fcntl

    config = write_budgets(tmp_path, {"a": {"command": fake_build(), "repeats": 1}}, {"w": {"lane": "a", "metric": "wall_s", "target": 10}})
    (tmp_path / "out").mkdir()
    with open(tmp_path / "out" / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        code = subprocess.run([sys.executable, "-m", "molt_budget", "check", "--config", str(config), "--quiet"],
                              capture_output=True, text=True, timeout=60)
    assert code.returncode == 3
    assert "another molt-budget run holds this output root" in code.stderr
    assert len(code.stderr.strip().splitlines()) == 1


def test_a_killed_run_never_leaves_its_output_root_locked(tmp_path: Path) -> None:
    """The lock is the kernel's (flock): SIGKILL of its holder frees it, no stale lock file to clear."""
    from molt_budget.runner.lock import LockHeld, RootLock

    path = tmp_path / ".lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from molt_budget.runner.lock import RootLock\n"
        f"RootLock(Path({str(path)!r})).acquire(5); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LockHeld):
            RootLock(path).acquire(0.2)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    mine = RootLock(path)
    mine.acquire(0)
    mine.release()
    mine.release()                  # a second release does nothing


def test_history_and_verdict_rejudge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_budgets(tmp_path, {"a": {"command": fake_build("--print", "ops: 1234"), "repeats": 1}},
                           {"n": {"lane": "a", "metric": "regex:stdout:ops: (\\d+)", "target": 2000}})
    results_copy = tmp_path / "copy.json"
    assert run_cli("check", "--config", str(config), "--quiet", "--results", str(results_copy)) == 0
    assert load_results(results_copy).kpis[0].value == 1234
    capsys.readouterr()
    assert run_cli("history", "--config", str(config)) == 0
    assert "pass=1" in capsys.readouterr().out
    text = config.read_text().replace("target: 2000", "target: 1000\n    limit: 1100")
    config.write_text(text)
    assert run_cli("verdict", str(results_copy), "--config", str(config)) == 1
    assert "1,234 is above the limit 1,100" in capsys.readouterr().out


def test_pre_push_runs_only_marked_lanes(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    config = write_budgets(
        tmp_path,
        {"fast": {"command": fake_build("--count", str(a)), "repeats": 1, "pre_push": True},
         "slow": {"command": fake_build("--count", str(b)), "repeats": 1}},
        {"f": {"lane": "fast", "metric": "wall_s", "target": 10}, "s": {"lane": "slow", "metric": "wall_s", "target": 10}},
    )
    assert run_cli("check", "--config", str(config), "--quiet", "--pre-push") == 0
    assert a.exists() and not b.exists()
    assert [k.id for k in latest_results(tmp_path).kpis] == ["f"]


def test_instructions_are_counted_and_repeatable(tmp_path: Path) -> None:
    """Counted KPIs run under perf or callgrind; the same work gives (almost) the same count."""
    config = write_budgets(
        tmp_path,
        # an awk loop: ~0.6 CPU-s a callgrind run, where Python's start-up alone takes ~2.3 s
        {"count": {"command": ["awk", "BEGIN {for (i = 0; i < 20000; i++) s += i}"], "repeats": 2, "timeout_s": 120}},
        {"ins": {"lane": "count", "metric": "instructions", "limit": 10**11}},
    )
    assert run_cli("check", "--config", str(config), "--quiet", "--no-base") == 0
    results = latest_results(tmp_path)
    values = [s.metrics["instructions"] for s in results.lanes["count"].measured()]
    assert len(values) == 2 and min(values) > 1e6
    assert abs(values[0] - values[1]) / min(values) < 0.02
    kpi = results.kpis[0]
    assert kpi.kpi_class == "counted" and kpi.aggregate == "min" and kpi.value == min(values)


def test_clean_state_wipes_caches_but_keeps_earlier_results(tmp_path: Path) -> None:
    build = fake_build("--cache-report")
    config = write_budgets(
        tmp_path,
        {"warm": {"command": build, "env": {"MOLT_CACHE": "${cache_dir}"}, "repeats": 1}},
        {"w": {"lane": "warm", "metric": "wall_s", "target": 10}},
    )
    assert run_cli("check", "--config", str(config), "--quiet") == 0
    first = sorted((tmp_path / "out" / "runs").iterdir())
    assert run_cli("check", "--config", str(config), "--quiet") == 0
    assert latest_results(tmp_path).lanes["warm"].samples[0].cache_state == "hit"
    assert run_cli("check", "--config", str(config), "--quiet", "--clean-state") == 0
    assert latest_results(tmp_path).lanes["warm"].samples[0].cache_state == "miss"
    assert all((run / "results.json").exists() for run in first)
    assert len(list((tmp_path / "out" / "runs").iterdir())) == 3


def test_a_competing_compiler_makes_the_run_not_authoritative(tmp_path: Path) -> None:
    fake_cargo = tmp_path / "bin" / "cargo"
    fake_cargo.parent.mkdir()
    fake_cargo.symlink_to("/bin/sleep")
    competitor = subprocess.Popen([str(fake_cargo), "30"])   # not a descendant of the gate below
    try:
        config = write_budgets(
            tmp_path,
            {"timed": {"command": fake_build(), "repeats": 1}},
            {"t": {"lane": "timed", "metric": "wall_s", "target": 10}},
            quiescence={"max_wait_s": 0.5, "poll_s": 0.1, "competitors": ["cargo"]},
        )
        gate = subprocess.run([sys.executable, "-m", "molt_budget", "check", "--config", str(config), "--quiet"],
                              capture_output=True, text=True, timeout=120)
        assert gate.returncode == 0, gate.stderr
    finally:
        competitor.kill()
        competitor.wait()
    results = latest_results(tmp_path)
    assert results.authoritative is False
    assert any(f"cargo(pid {competitor.pid})" in r for r in results.authoritative_reasons), results.authoritative_reasons
    assert "not authoritative" in gate.stdout


def test_sigkill_mid_run_loses_no_sample_and_resumes(tmp_path: Path) -> None:
    """No chance to clean up: the journal beside results.json still holds every sample."""
    stop, started = tmp_path / "stop", tmp_path / "started"
    slow = (f"import os, pathlib, time\npathlib.Path({str(started)!r}).write_text('up\\n')\n"
            f"while not os.path.exists({str(stop)!r}): time.sleep(0.05)")
    config = write_budgets(
        tmp_path,
        {
            "fast": {"command": fake_build(), "repeats": 3},
            "slow": {"command": [sys.executable, "-c", slow], "repeats": 1, "timeout_s": 120},
        },
        {"f": {"lane": "fast", "metric": "wall_s", "target": 10}, "s": {"lane": "slow", "metric": "wall_s", "target": 100}},
    )
    proc = subprocess.Popen([sys.executable, "-m", "molt_budget", "check", "--config", str(config), "--no-base"],
                            stderr=subprocess.DEVNULL)
    wait_for_file(started)                   # the slow lane's first attempt is running (the fast lane is done)
    proc.kill()
    proc.wait(timeout=30)
    stop.write_text("")                      # the orphaned build ends on its own
    run_dir = sorted((tmp_path / "out" / "runs").iterdir())[-1]
    assert (run_dir / "journal.jsonl").exists()
    crashed = load_results(run_dir / "results.json")
    assert crashed.state == "running"
    assert crashed.lanes["fast"].status == "ok" and len(crashed.lanes["fast"].measured()) == 3
    assert crashed.lanes["slow"].status == "pending" and crashed.lanes["slow"].samples == []

    assert run_cli("check", "--config", str(config), "--quiet", "--resume", str(run_dir)) == 0
    resumed = load_results(run_dir / "results.json")
    assert resumed.state == "complete" and not (run_dir / "journal.jsonl").exists()
    assert [len(resumed.lanes[lane].measured()) for lane in ("fast", "slow")] == [3, 1]
    assert resumed.lanes["fast"].samples == crashed.lanes["fast"].samples     # kept, not re-run


def test_a_malformed_module_table_fails_the_lane_naming_the_file(tmp_path: Path, shared: Path) -> None:
    """The module tables are read once a lane (for the diff), yet a bad one still fails the lane."""
    doc = json.loads((shared / "molt/real/A/diagnostics.json").read_text())
    doc["module_reasons"][next(iter(doc["module_reasons"]))] = "not a list"
    bad = tmp_path / "bad_diagnostics.json"
    bad.write_text(json.dumps(doc))
    config = write_budgets(
        tmp_path,
        {"dev": {"command": fake_build("--diag", str(bad)), "diagnostics": True, "repeats": 2}},
        {"mods": {"lane": "dev", "metric": "diag.module_count", "target": 1000}},
    )
    assert run_cli("check", "--config", str(config), "--quiet") == 3
    lane = latest_results(tmp_path).lanes["dev"]
    assert lane.status == "error" and "module_reasons" in (lane.error or "") and "diagnostics.json" in (lane.error or "")
    assert len(lane.measured()) == 2          # the samples measured are kept


def test_the_diff_detail_comes_from_the_last_measured_sample(tmp_path: Path, shared: Path) -> None:
    config = write_budgets(tmp_path, {"dev": {**ir_lane(shared), "repeats": 3}},
                           {"ops": {"lane": "dev", "metric": "ir.ops", "target": 10**9}})
    assert run_cli("check", "--config", str(config), "--quiet") == 0
    lane = latest_results(tmp_path).lanes["dev"]
    assert len(lane.measured()) == 3
    assert set(lane.detail) == {"ir", "diagnostics"} and lane.detail["diagnostics"]["module_reasons"]


def test_a_lane_whose_folder_goes_away_still_measures_every_repeat(tmp_path: Path) -> None:
    """The lane's folder is made once a run; a build that removes it (a clean step run too
    wide) does not make the next repeat fail: its attempt folder is made again."""
    config = write_budgets(
        tmp_path,
        {"wipe": {"command": 'rm -rf "${lane_dir}"', "repeats": 3, "retries": 0}},
        {"w": {"lane": "wipe", "metric": "wall_s", "target": 10}},
    )
    assert run_cli("check", "--config", str(config), "--quiet", "--no-base") == 0
    lane = latest_results(tmp_path).lanes["wipe"]
    assert lane.status == "ok" and len(lane.measured()) == 3
