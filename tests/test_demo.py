"""Real runs of the moltdemo stand-in compiler (examples/demo), the way molt-budget drives molt."""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import demo_runtime

pytestmark = pytest.mark.slow   # real git repositories and demo builds: `pytest -m "not slow"` skips them

DEMO_DIR = Path(__file__).resolve().parents[1] / "examples" / "demo"
DEMO = DEMO_DIR / "moltdemo.py"
HELLO = DEMO_DIR / "hello.py"
MISS_PHASES = ["resolve_entry", "module_graph", "module_analysis", "ir_lowering", "cache_lookup", "backend_codegen",
               "backend_prepare", "backend_daemon_setup", "backend_dispatch", "backend_daemon_compile",
               "backend_artifact_stage", "backend_cache_write"]
HIT_PHASES = ["resolve_entry", "module_graph", "module_analysis", "ir_lowering", "cache_lookup", "runtime_setup"]
MOLT_HELLO_REASONS = {"__future__": ["core_closure"], "_intrinsics": ["core_closure"],
                      "_sitebuiltins": ["core_closure"], "builtins": ["core_closure", "core_required"],
                      "hello": ["entry_closure", "entry_root"], "sys": ["core_closure", "core_required"]}


def run(args: list[str], cache: Path, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    """Run `moltdemo.py build ...` with an isolated cache and a clean molt environment."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("MOLT_", "CARGO_"))}
    full_env.update({"MOLT_CACHE": str(cache), "CARGO_TARGET_DIR": demo_runtime(), **env})
    return subprocess.run([sys.executable, str(DEMO), "build", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=120)


def ir_counts(path: Path) -> dict:
    ir = json.loads(path.read_text())
    names = [f["name"] for f in ir["functions"]]
    return {"functions": len(names), "ops": sum(len(f["ops"]) for f in ir["functions"]),
            "inits": sum(n.startswith("molt_init_") for n in names), "bytes": path.stat().st_size, "ir": ir}


def build(tmp: Path, entry: Path, *extra: str, name: str = "b", **env: str) -> tuple:
    ir, diag = tmp / f"{name}.ir.json", tmp / f"{name}.diag.json"
    args = [str(entry), "--emit-ir", str(ir), "--diagnostics-file", str(diag), "--out-dir", str(tmp / name), *extra]
    proc = run(args, tmp / "cache", **env)
    assert proc.returncode == 0, proc.stderr
    return proc, ir, json.loads(diag.read_text())


def assert_counts_agree(counts: dict, diag: dict) -> None:
    backend = diag["binary_image_analysis"]["backend_ir"]["backend_ir"]
    assert backend["function_count"] == counts["functions"]
    assert backend["op_count"] == counts["ops"]
    assert diag["module_count"] == diag["compile_module_count"] == diag["known_module_count"] == counts["inits"]
    assert sum(c["count"] for c in backend["op_kind_top"]) <= counts["ops"]
    assert backend["call_op_count"] == sum(o["kind"] == "call" for f in counts["ir"]["functions"] for o in f["ops"])


@pytest.fixture(scope="module")
def hello_dev(tmp_path_factory) -> tuple:
    tmp = tmp_path_factory.mktemp("hello")
    return (tmp, *build(tmp, HELLO, "--cache-report"))


def test_hello_dev_build_matches_molt_shape(hello_dev) -> None:
    tmp, proc, ir_path, diag = hello_dev
    counts = ir_counts(ir_path)
    assert_counts_agree(counts, diag)
    assert counts["inits"] == 6 and counts["ops"] < 5000 and counts["bytes"] < 1_000_000
    assert diag["module_reasons"] == MOLT_HELLO_REASONS
    assert diag["module_reason_summary"] == {"core_closure": 5, "core_required": 2, "entry_closure": 1, "entry_root": 1}
    assert list(diag["phase_sec"]) == MISS_PHASES and diag["phase_sec"]["backend_codegen"] == 0.0
    assert abs(sum(diag["phase_sec"].values()) - diag["total_sec"]) < 1e-4
    attribution = diag["phase_attribution"]
    assert len(attribution["phase_sec"]) == 13 and attribution["ranked_phases"][0] == "frontend_lowering"
    main = counts["ir"]["functions"][-1]
    assert main["name"] == "molt_main" and counts["ir"]["module_registry"]["schema"] == 2
    assert all(os.path.isabs(f["source_file"]) for f in counts["ir"]["functions"][:-1])
    assert ir_path.read_text().endswith("}\n") and (tmp / "b" / "hello").is_file()


def test_hello_stderr_block(hello_dev) -> None:
    tmp, proc, _, diag = hello_dev
    lines = proc.stderr.splitlines()
    assert lines[0] == f"Successfully built {tmp / 'b' / 'hello'}" and lines[1] == "Build diagnostics:"
    assert lines[2] == f"- total_sec: {diag['total_sec']:.6f}" and lines[3] == "- modules: 6"
    phases = [ln.split(":")[0][len("- phase."):] for ln in lines if ln.startswith("- phase.")]
    assert phases == sorted(MISS_PHASES)
    assert [ln for ln in lines if ln.startswith("- reason.")][0] == "- reason.core_closure: 5"
    assert lines[-1] == f"- wrote: {tmp / 'b.diag.json'}"
    assert re.fullmatch(r"Cache: miss \([0-9a-f]{64}\)\n", proc.stdout)


def test_ir_is_byte_identical_across_builds_and_cache_hits(tmp_path) -> None:
    _, ir1, _ = build(tmp_path, HELLO, "--no-cache", name="one")
    _, ir2, _ = build(tmp_path, HELLO, "--no-cache", name="two")
    build(tmp_path, HELLO, name="prime")
    _, ir3, _ = build(tmp_path, HELLO, name="hit")
    assert ir1.read_bytes() == ir2.read_bytes() == ir3.read_bytes()


def test_cache_miss_then_hit(tmp_path) -> None:
    miss, ir_miss, d_miss = build(tmp_path, HELLO, "--cache-report", name="miss")
    hit, ir_hit, d_hit = build(tmp_path, HELLO, "--cache-report", name="hit")
    key = re.fullmatch(r"Cache: miss \(([0-9a-f]{64})\)\n", miss.stdout).group(1)
    assert hit.stdout == f"Cache: hit ({key}) [module]\n"
    assert list(d_miss["phase_sec"]) == MISS_PHASES and list(d_hit["phase_sec"]) == HIT_PHASES
    assert all(t["lower_s"] == 0.0 for t in d_hit["frontend_module_timings"])
    assert_counts_agree(ir_counts(ir_hit), d_hit)
    release, _, _ = build(tmp_path, HELLO, "--cache-report", "--build-profile", "release", name="rel")
    assert release.stdout.startswith("Cache: miss (") and key not in release.stdout


def test_no_cache_and_daemon_modes(tmp_path) -> None:
    quiet, _, d_on = build(tmp_path, HELLO, "--no-cache", name="on")
    loud, _, d_off = build(tmp_path, HELLO, "--no-cache", "--cache-report", name="off", MOLT_BACKEND_DAEMON="0")
    assert quiet.stdout == "" and loud.stdout == "Cache: disabled\n"
    assert list(d_on["phase_sec"]) == MISS_PHASES[:-1]
    assert list(d_off["phase_sec"]) == ["resolve_entry", "module_graph", "module_analysis", "ir_lowering",
                                        "cache_lookup", "backend_codegen", "backend_prepare", "backend_dispatch",
                                        "backend_subprocess_compile", "backend_artifact_stage"]
    assert not list((tmp_path / "cache").glob("??/*/binary"))  # --no-cache writes no cache entry


def test_release_optimises_more_than_release_fast_and_dev(tmp_path) -> None:
    dev = ir_counts(build(tmp_path, HELLO, "--no-cache", name="dev")[1])
    fast = ir_counts(build(tmp_path, HELLO, "--no-cache", "--build-profile", "release", name="fast",
                           MOLT_RELEASE_CARGO_PROFILE="release-fast")[1])
    rel = ir_counts(build(tmp_path, HELLO, "--no-cache", "--build-profile", "release", name="rel")[1])
    assert rel["ops"] < fast["ops"] < dev["ops"]
    assert rel["functions"] == fast["functions"] == dev["functions"] and rel["inits"] == dev["inits"] == 6


@pytest.mark.xdist_group("demo-mp")
def test_multiprocessing_import_blows_every_ir_budget(demo_mp_regression: dict) -> None:
    """The build of hello.py with `import multiprocessing` that test_compare_git.py's check ran
    (conftest.demo_mp_regression: one ~7 CPU-s build a session): its IR and diagnostics files."""
    results = json.loads(Path(demo_mp_regression["report"]["results_path"]).read_text())
    (sample,) = results["lanes"]["dev_cold"]["samples"]
    attempt = Path(sample["attempt_log"][-1]["stdout_log"]).parent
    ir_path, diag = attempt / "ir.json", json.loads((attempt / "diagnostics.json").read_text())
    assert (demo_mp_regression["repo"] / "hello.py").read_text().startswith("import multiprocessing\n")
    counts = ir_counts(ir_path)
    assert_counts_agree(counts, diag)
    assert 30 <= counts["inits"] <= 60 and counts["ops"] > 100_000 and counts["bytes"] > 10_000_000
    assert diag["module_reason_summary"]["spawn_closure"] >= 30
    assert diag["module_reasons"]["multiprocessing.spawn"] == ["spawn_closure"]
    assert diag["module_reasons"]["hello"] == ["entry_closure", "entry_root"]
    assert diag["binary_image_closure"]["spawn_enabled"] is True


def test_syntax_error_is_a_frontend_error(tmp_path) -> None:
    entry = tmp_path / "broken.py"
    entry.write_text("print(42)\ndef oops(:\n")
    ir, diag = tmp_path / "ir.json", tmp_path / "diag.json"
    proc = run([str(entry), "--emit-ir", str(ir), "--diagnostics-file", str(diag)], tmp_path / "cache")
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {entry}:2: SyntaxError")
    assert not ir.exists() and not diag.exists() and "Successfully built" not in proc.stderr


def test_build_lock_timeout(tmp_path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    with open(cache / "build.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        start = time.monotonic()
        proc = run([str(HELLO), "--out-dir", str(tmp_path / "o")], cache, MOLT_BUILD_LOCK_TIMEOUT="1")
        elapsed = time.monotonic() - start
    assert proc.returncode == 1 and "Timed out waiting for build lock" in proc.stderr
    assert elapsed >= 1.0 and not (tmp_path / "o" / "hello").exists()


def test_relative_paths_and_env_enablement(tmp_path) -> None:
    proc = run([str(HELLO), "--emit-ir", "rel_ir.json", "--out-dir", "out"], tmp_path / "cache", cwd=tmp_path,
               MOLT_BUILD_DIAGNOSTICS="yes", MOLT_BUILD_DIAGNOSTICS_FILE="diag.json")
    assert proc.returncode == 0, proc.stderr
    diag = tmp_path / "out" / ".molt_build" / "hello" / "diag.json"  # molt: relative to the artifacts root
    assert (tmp_path / "rel_ir.json").is_file() and diag.is_file()
    assert proc.stderr.splitlines()[-1] == f"- wrote: {diag}"
