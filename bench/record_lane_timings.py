"""Record real A/A lane timings on this machine, idle and under load, for decision_quality.py.

Why: the timed verdict's false-alarm rate and power depend on the noise of real lanes (how
much one run varies, how much of that the base/head pairing cancels, how long host phases
last). The simulator in decision_quality.py only models that; this records it. Each lane
runs as molt-budget's paired runner runs it: interleaved rounds, base then head, one lane
after the other. Both sides run the same command (A/A), each side with its own cache dir
(base and head are separate checkouts in a real run), so any head/base difference is noise.

Conditions:
- idle: nothing else running (whatever the host itself does);
- load: one process burning a core all the time, plus a memory-bandwidth hog (a 128 MiB
  memmove loop) that switches on and off at random every 1-4 s, like a noisy neighbour, so
  the host has slow and fast phases. Both are started and stopped here.
- shared: no quiet-host wait and no load of our own: whatever else the machine runs (on a
  shared CI box or dev VM, other jobs). Recorded in the order the paired runner uses
  (base, head; then head, base; ...), so an order effect shows as it does in a real run.

Output: bench/data/lane_timings.json, one (base, head) wall-time pair per line, seconds,
perf_counter around subprocess.run (interpreter start-up included, as in the runner).

Usage: python bench/record_lane_timings.py [pairs per lane and condition, default 150]
       python bench/record_lane_timings.py 60 --condition shared --out bench/data/lane_timings_shared.json
About 6 minutes on the 2-core dev box at the default (the loaded lanes run slower).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from molt_budget.runner.quiescence import wait_for_quiescence

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "data" / "lane_timings.json"
DEMO = [sys.executable, str(REPO / "examples/demo/moltdemo.py"), "build", str(REPO / "examples/demo/hello.py")]
# lane -> build arguments; every lane runs with MOLT_CACHE set to the side's own dir.
LANES: dict[str, list[str]] = {
    "release_nocache": ["--build-profile", "release", "--no-cache"],
    "dev_warm_hit": ["--build-profile", "dev", "--cache-report"],
}
WARMUP_PAIRS = 2           # not recorded: first runs after a switch of lane or load are atypical
HOG_SEED = 20261126
CPU_HOG = "while True: pass"
MEM_HOG = f"""
import random, time
rng = random.Random({HOG_SEED})
src, dst = bytearray(128 << 20), bytearray(128 << 20)
while True:
    end = time.monotonic() + rng.uniform(1, 4)
    while time.monotonic() < end:
        dst[:] = src
    time.sleep(rng.uniform(1, 4))
"""
CONDITIONS: dict[str, list[str]] = {
    "idle": [],
    "load": [CPU_HOG, MEM_HOG],
}
CONDITION_TEXT = {
    "shared": "no quiet-host wait, no load of our own: the other jobs of a shared machine, as they came; "
              "rounds alternate base/head order as run_paired does",
    "idle": "no background load started",
    "load": "one core burned by `while True: pass` for the whole condition, plus a memory-bandwidth hog "
            "(memmove of 128 MiB in a loop) switching on and off every 1-4 s (seeded random durations)",
}


def run_once(args: Sequence[str], cache: Path) -> float:
    """Wall seconds of one build, as the runner measures it (interpreter start-up included)."""
    env = {**os.environ, "MOLT_CACHE": str(cache)}
    start = time.perf_counter()
    subprocess.run([*DEMO, *args], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def prime(cache: Path) -> None:
    """Build the runtime libraries and the dev cache entry, then check the dev lane really hits."""
    run_once(LANES["release_nocache"], cache)
    run_once(LANES["dev_warm_hit"], cache)
    out = subprocess.run([*DEMO, *LANES["dev_warm_hit"]], env={**os.environ, "MOLT_CACHE": str(cache)},
                         check=True, capture_output=True, text=True).stdout
    if not out.startswith("Cache: hit"):
        raise SystemExit(f"dev lane does not hit the primed cache: {out.strip()!r}")


def record_lane(args: Sequence[str], caches: tuple[Path, Path], pairs: int, alternate: bool = False) -> list[tuple[float, float]]:
    """Interleaved rounds, base (caches[0]) then head (caches[1]); `alternate`: the order flips
    every round (B A on odd rounds), as run_paired does."""
    for _ in range(WARMUP_PAIRS):
        run_once(args, caches[0])
        run_once(args, caches[1])
    out = []
    for i in range(pairs):
        if alternate and i % 2:
            head = run_once(args, caches[1])
            base = run_once(args, caches[0])
        else:
            base = run_once(args, caches[0])
            head = run_once(args, caches[1])
        out.append((base, head))
    return out


def start_hogs(sources: list[str]) -> list[subprocess.Popen[bytes]]:
    hogs = [subprocess.Popen([sys.executable, "-c", src]) for src in sources]
    if hogs:
        time.sleep(1.0)                               # let them get going (and the buffers allocated)
    return hogs


def stop_hogs(hogs: list[subprocess.Popen[bytes]]) -> None:
    for hog in hogs:
        hog.terminate()
    for hog in hogs:
        hog.wait(timeout=10)


def busy_cpu_seconds() -> tuple[float, float]:
    """(whole machine, this process + reaped children) CPU seconds: their difference over a
    condition is what *other* processes ran meanwhile, i.e. whether "idle" really was idle."""
    t = psutil.cpu_times()
    machine = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return machine, own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_head() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def render(doc: dict[str, object], series: dict[str, list[tuple[float, float]]]) -> str:
    """Metadata as indented JSON, then one pair per line: small diffs, easy to eyeball."""
    head = json.dumps(doc, indent=2)[:-2]            # drop the closing "\n}" to append the series
    blocks = []
    for key, pairs in series.items():
        lines = ",\n".join(f"      [{a:.6f}, {b:.6f}]" for a, b in pairs)
        blocks.append(f'    "{key}": [\n{lines}\n    ]')
    return head + ',\n  "pairs": {\n' + ",\n".join(blocks) + "\n  }\n}\n"


def main(pairs: int = 150, conditions: Sequence[str] = ("idle", "load"), out: Path = OUT) -> None:
    started = time.perf_counter()
    series: dict[str, list[tuple[float, float]]] = {}
    host: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="lane-timings-") as tmp:
        caches = (Path(tmp) / "base", Path(tmp) / "head")
        for cache in caches:
            prime(cache)
        for condition in conditions:
            sources = CONDITIONS.get(condition, [])
            quiet = wait_for_quiescence(max_wait_s=0 if condition == "shared" else 180, max_busy_cpus=0.3, check_load=False)
            machine0, own0 = busy_cpu_seconds()
            hogs = start_hogs(sources)
            try:
                for lane, args in LANES.items():
                    t0 = time.perf_counter()
                    series[f"{lane}/{condition}"] = record_lane(args, caches, pairs, alternate=condition == "shared")
                    print(f"{lane}/{condition}: {pairs} pairs in {time.perf_counter() - t0:.0f} s", flush=True)
            finally:
                stop_hogs(hogs)
            machine1, own1 = busy_cpu_seconds()
            host[condition] = {"quiet_before": quiet.quiet, "busy_cpus_before": round(quiet.busy_cpus, 2),
                               "waited_s": round(quiet.waited_s, 1), "loadavg_1min_end": round(os.getloadavg()[0], 2),
                               "own_cpu_s": round(own1 - own0, 1),
                               "other_processes_cpu_s": round((machine1 - machine0) - (own1 - own0), 1)}
    doc: dict[str, object] = {
        "what": "A/A wall-time pairs [base, head] in seconds of the moltdemo lanes, interleaved base then head, "
                "recorded by bench/record_lane_timings.py; read by bench/decision_quality.py --noise real",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "repo_commit": git_head(),
        "timer": "time.perf_counter around subprocess.run, stdout/stderr to /dev/null",
        "commands": {lane: " ".join(["python", "examples/demo/moltdemo.py", "build", "examples/demo/hello.py", *args])
                     + "  (MOLT_CACHE=<side's own dir>, primed)" for lane, args in LANES.items()},
        "conditions": {c: CONDITION_TEXT[c] for c in conditions},
        "host": host,
        "warmup_pairs_dropped": WARMUP_PAIRS,
        "pairs_per_series": pairs,
        "order": f"conditions {' then '.join(conditions)}; within a condition the lanes one after the other; "
                 "within a lane base then head each round" + (" (shared: alternating)" if "shared" in conditions else ""),
        "recording_seconds": round(time.perf_counter() - started, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    text = render(doc, series)
    json.loads(text)                                  # the hand-rendered file must stay valid JSON
    out.write_text(text)
    print(f"wrote {out} ({len(text)} bytes) in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Record A/A pairs of the demo lanes for bench/decision_quality.py.")
    parser.add_argument("pairs", nargs="?", type=int, default=150, help="pairs per lane and condition")
    parser.add_argument("--condition", action="append", choices=sorted(CONDITIONS) + ["shared"],
                        help="repeatable; default idle and load")
    parser.add_argument("--out", type=Path, default=OUT)
    ns = parser.parse_args()
    main(ns.pairs, ns.condition or ("idle", "load"), ns.out)
