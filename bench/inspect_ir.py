"""Bench: `summarize_ir` against a bare `json.load` on a ~41 MB molt IR.

Targets (from the collectors brief): summarize_ir time <= 1.2x json.load time, and its
peak memory <= 1.5x the file size.

Input: real/A's functions repeated (renamed `<name>__rN`) until the file reaches the
target size, plus A's module_registry, written like molt does (`json.dumps(indent=2)`
plus a newline) into a temp dir. ~41 MB matches hello + `import multiprocessing`
(37.4 MB, formats.md §7).

Method, for each contender and each repeat:
* a fresh `python -c` subprocess runs `import json, molt_budget.collectors.molt_ir`
  and then the one operation, timed in-process with `perf_counter` (so interpreter
  start and imports are excluded from the time);
* peak memory = the child's resident-set high-water mark at exit (`VmHWM` in
  /proc/self/status) minus that of an identical child that does the imports but not the
  operation (the "baseline"). So the number is what the operation itself added to the
  resident set: the text it read and every object it built, freed or not (Python's
  allocator keeps some freed memory), which is what a CI runner's memory limit sees.
  Not `ru_maxrss`: on Linux it survives fork+exec, so a child reports at least the
  parent's peak (this script's parent holds the generated IR; we measured a 330 MiB
  "baseline" that way). tracemalloc would miss memory outside Python's allocator and
  slows the run, so it is not used either. Off Linux, ru_maxrss is the fallback.
Each operation runs in its own process so one cannot warm the other's heap; the
page cache is warmed by reading the file once before timing. The median of the
repeats is reported.

Usage: python bench/inspect_ir.py [--mb 41] [--repeats 5] [--shared DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TIME_TARGET = 1.2
MEMORY_TARGET = 1.5

CHILD = r"""
import json, resource, sys, time
from molt_budget.collectors.molt_ir import summarize_ir

def peak_kb():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux; bytes on macOS

path, what = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
if what == "json.load":
    with open(path, encoding="utf-8") as fh:
        result = json.load(fh)
    n = len(result["functions"])
elif what == "summarize_ir":
    n = summarize_ir(path, ["/src/molt"]).functions
else:
    n = 0
elapsed = time.perf_counter() - t0
print(json.dumps({"sec": elapsed, "maxrss_kb": peak_kb(), "n": n}))
"""


def default_shared() -> Path:
    env = os.environ.get("MOLT_BUDGET_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


def build_ir(source: Path, target_bytes: int, out: Path) -> int:
    """Repeat the source functions under new names until the indent=2 file reaches the size."""
    ir = json.loads(source.read_text(encoding="utf-8"))
    base = ir["functions"]
    registry = ir.get("module_registry", {})
    fixed = len(json.dumps({"functions": [], "module_registry": registry}, indent=2))
    text = json.dumps(base, indent=2)
    one_copy = len(text) + 2 * (text.count("\n") + 1)  # nested one level deeper in the document
    copies = max(1, round((target_bytes - fixed) / one_copy))
    functions = [
        dict(fn, name=fn["name"] if r == 0 else f"{fn['name']}__r{r}") for r in range(copies) for fn in base
    ]
    doc = {"functions": functions, "module_registry": registry}
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return len(functions)


def run_child(path: Path, what: str) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), what], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=41.0, help="target IR size in MB (1e6 bytes)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shared", type=Path, default=default_shared())
    args = parser.parse_args()

    source = args.shared / "molt" / "real" / "A" / "ir.json"
    if not source.is_file():
        print(f"missing {source} (set MOLT_BUDGET_SHARED)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="molt-budget-bench-") as tmp:
        path = Path(tmp) / "ir.json"
        n_functions = build_ir(source, int(args.mb * 1e6), path)
        size = path.stat().st_size
        path.read_bytes()  # warm the page cache for both contenders alike

        samples: dict[str, list[dict[str, float]]] = {"baseline": [], "json.load": [], "summarize_ir": []}
        for _ in range(args.repeats):  # interleaved, so drift hits both alike
            for what in samples:
                samples[what].append(run_child(path, what))
        for what in ("json.load", "summarize_ir"):
            if any(s["n"] != n_functions for s in samples[what]):
                print(f"{what} counted the wrong number of functions", file=sys.stderr)
                return 1

    base_kb = statistics.median(s["maxrss_kb"] for s in samples["baseline"])
    rows = []
    for what in ("json.load", "summarize_ir"):
        sec = statistics.median(s["sec"] for s in samples[what])
        peak = statistics.median(s["maxrss_kb"] for s in samples[what]) - base_kb
        rows.append((what, sec, peak * 1024))
    load_sec = rows[0][1]

    print(f"IR: {size:,} bytes ({size / 1e6:.1f} MB), {n_functions:,} functions; "
          f"{args.repeats} runs each, medians; baseline child maxrss {base_kb / 1024:.1f} MiB")
    print(f"{'':14} {'time s':>8} {'x json.load':>12} {'peak MiB':>9} {'peak/file':>10}")
    for what, sec, peak in rows:
        print(f"{what:14} {sec:8.3f} {sec / load_sec:12.2f} {peak / 2**20:9.1f} {peak / size:10.2f}")
    ratio_t = rows[1][1] / load_sec
    ratio_m = rows[1][2] / size
    ok_t, ok_m = ratio_t <= TIME_TARGET, ratio_m <= MEMORY_TARGET
    print(f"target: time <= {TIME_TARGET}x json.load -> {ratio_t:.2f}x {'OK' if ok_t else 'MISSED'}; "
          f"peak <= {MEMORY_TARGET}x file size -> {ratio_m:.2f}x {'OK' if ok_m else 'MISSED'}")
    return 0 if ok_t and ok_m else 1


if __name__ == "__main__":
    sys.exit(main())
