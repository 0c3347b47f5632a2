"""How often does the timed verdict cry wolf, give up, or catch a real slowdown, and at what cost?

Drives the production sampler (compare.sampler.run_sequential: the same `SequentialTimed`
the paired runner asks after every round and the comparator replays) on noise with time
correlation, and prints side by side, per noise source:

- the noise: per-pair log-ratio SD, lag-1 autocorrelation, kurtosis, and what the lane's
  noise model plans (stats.plan_pairs) and warns (stats.noise_limit: what `validate` says);
- single KPI, budget max_increase_pct 5: fail / yellow "slower" / yellow "gave up"
  (inconclusive or unconfirmed) / pass rates and mean pairs per true effect, with the
  theoretical minimum pairs beside them: the fixed-sample size that tells the effect from the
  budget line at alpha = beta = 0.05 with the noise SD known, ((z.95 + z.95)·sd / |ln(1+e) − ln 1.05|)²;
- 40 KPIs in one lane (each with its own noise stream): the family-wise false-fail rate and
  gave-up rates with no change, and the fail rate of one +20 % KPI among 39 unchanged ones.

Each source runs at the default max_pairs 20, and again at the max_pairs the noise model plans
for the cell's lane (1 or 40 timed KPIs: stats.plan_pairs counts them, a lane waits for its
slowest KPI) when that is more (what `validate` tells the user to do), unless the plan is past
PLAN_CAP pairs or the recording's length: there the answer is "gate on instructions", not more
pairs. The 40-KPI table also counts "slower" yellows among the unchanged KPIs: a false alarm
even if not a give-up.

Noise sources:
- simulated: a lane with slow/fast host phases lasting ~4 rounds (two-state Markov chain),
  shared per-round jitter, per-run noise and rare 30 % outlier runs;
- recorded: A/A pairs of the demo lanes on this machine (bench/record_lane_timings.py;
  bench/data/lane_timings.json idle and under a synthetic load, lane_timings_shared*.json
  recorded while six other jobs shared the 2 cores). A comparison replays blocks of BLOCK
  consecutive recorded pairs (a block bootstrap keeps host phases together) and never the
  same recorded pair twice while the recording lasts; A/B scales the head by 1 + effect.

Each KPI's noise model (`TimedPolicy.noise_sd`) is the source's measured log-ratio SD, what
`molt-budget calibrate` records for a lane.

Usage: python bench/decision_quality.py [comparisons] [--kpis40 N] [--jobs N] [--sources a,b]
(defaults: 300 single-KPI comparisons per cell, 100 40-KPI comparisons per cell; ~5 CPU
minutes, most of it in the 40-KPI cells of the loaded and simulated lanes; --sources
release_nocache/idle,dev_warm_hit/idle for a quick look)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from random import Random
from typing import Any

from tabulate import tabulate

from molt_budget.compare.sampler import run_sequential
from molt_budget.compare.stats import TimedPolicy, noise_limit, plan_pairs

SEED = 20261201
BUDGET_PCT = 5.0
EFFECTS = [0.0, 0.05, 0.10, 0.20]
KPIS = 40
BLOCK = 5
DATA = Path(__file__).resolve().parent / "data"
RECORDINGS = ["lane_timings.json", "lane_timings_shared.json"]
GAVE_UP = ("inconclusive", "unconfirmed")
PLAN_CAP = 120

# the simulated lane
T_SECONDS = 20.0
PHASE_SLOW = 0.15        # log factor of a slow phase (≈ +16 %)
PHASE_SWITCH = 0.25      # per-round switch probability: phases last ~4 rounds
ROUND_SIGMA = 0.07       # shared per-round jitter (log sd)
RUN_SIGMA = 0.06         # per-run noise (log sd)
OUTLIER_P = 0.02         # a run hit by a hiccup …
OUTLIER_FACTOR = 1.3     # … is 30 % slower


class SimulatedLane:
    """One simulated lane measured interleaved; `round()` returns (head, base) seconds."""

    def __init__(self, seed: int, effect: float) -> None:
        self.rng = Random(seed)
        self.effect = effect
        self.slow = self.rng.random() < 0.5

    def _run(self) -> float:
        e = self.rng.lognormvariate(0, RUN_SIGMA)
        return e * OUTLIER_FACTOR if self.rng.random() < OUTLIER_P else e

    def round(self) -> tuple[float, float]:
        if self.rng.random() < PHASE_SWITCH:
            self.slow = not self.slow
        shared = math.exp(PHASE_SLOW if self.slow else 0.0) * self.rng.lognormvariate(0, ROUND_SIGMA)
        return T_SECONDS * (1 + self.effect) * shared * self._run(), T_SECONDS * shared * self._run()


class RecordedLane:
    """A/A rounds replayed from a recording in blocks of consecutive rounds; head scaled by 1 + effect.
    Blocks start at multiples of BLOCK; a comparison uses each block once until all are used."""

    def __init__(self, pairs: list[tuple[float, float]], seed: int, effect: float) -> None:
        self.pairs = pairs
        self.rng = Random(seed)
        self.effect = effect
        self.blocks: list[int] = []
        self.index = self.left = 0

    def round(self) -> tuple[float, float]:
        if self.left == 0:
            if not self.blocks:
                self.blocks = list(range(0, len(self.pairs) - BLOCK + 1, BLOCK))
                self.rng.shuffle(self.blocks)
            self.index, self.left = self.blocks.pop(), BLOCK
        head, base = self.pairs[self.index]
        self.index += 1
        self.left -= 1
        return head * (1 + self.effect), base


def load_recordings() -> tuple[dict[str, list[tuple[float, float]]], dict[str, str]]:
    """{source: [(head, base), ...]} and {source: how it was recorded}; files store [base, head]."""
    series: dict[str, list[tuple[float, float]]] = {}
    notes: dict[str, str] = {}
    for name in RECORDINGS:
        path = DATA / name
        if not path.exists():
            continue
        doc = json.loads(path.read_text())
        for key, pairs in doc["pairs"].items():
            condition = key.split("/")[1]
            series[key] = [(float(h), float(b)) for b, h in pairs]
            notes[key] = f"{name}, {doc['date'][:10]}, {len(pairs)} pairs"
            notes[condition] = doc["conditions"].get(condition, condition)
    return series, notes


def noise_stats(pairs: list[tuple[float, float]]) -> dict[str, float]:
    x = [math.log(h / b) for h, b in pairs]
    mean, sd = statistics.fmean(x), statistics.stdev(x)
    lag1 = sum((a - mean) * (b - mean) for a, b in zip(x, x[1:])) / sum((a - mean) ** 2 for a in x)
    kurtosis = statistics.fmean([(v - mean) ** 4 for v in x]) / statistics.pvariance(x) ** 2
    return {"sd": sd, "lag1": lag1, "kurtosis": kurtosis, "mean": mean}


def minimum_pairs(sd: float, effect: float, budget_pct: float = BUDGET_PCT) -> float:
    """Fixed-sample pairs to tell a true `effect` from the budget line, alpha = beta = 0.05, SD known."""
    distance = abs(math.log(1 + effect) - math.log(1 + budget_pct / 100))
    z = statistics.NormalDist().inv_cdf(0.95)
    return ((2 * z) * sd / distance) ** 2 if distance > 0 else math.inf


@dataclass
class Cell:
    kinds: list[str]          # the judged KPI's kind per comparison
    pairs: list[int]          # rounds the lane ran per comparison
    other_fails: list[int]    # 40-KPI cells: failing unchanged KPIs per comparison
    other_gave_up: list[int]
    other_slower: list[int]   # 40-KPI cells: unchanged KPIs called "slower" (yellow) per comparison


Make = Callable[[int, float], Any]


def run_cell(source: str, make: Make, sd: float, max_pairs: int, effect: float, kpis: int, n: int) -> Cell:
    """n comparisons: KPI 0 slowed by `effect`, the other kpis-1 unchanged, each its own stream."""
    policy = TimedPolicy(max_increase_pct=BUDGET_PCT, noise_sd=sd, max_pairs=max_pairs)
    policies = {f"k{i}": policy for i in range(kpis)}
    cell = Cell([], [], [], [], [])
    base_seed = SEED + 7919 * EFFECTS.index(effect) + 104729 * kpis + 15485863 * max_pairs + sum(map(ord, source))
    for c in range(n):
        lanes = {k: make(base_seed * 1000 + c * kpis + i, effect if i == 0 else 0.0) for i, k in enumerate(policies)}
        rounds, decisions = run_sequential(partial(_one_round, lanes), policies)
        cell.kinds.append(decisions["k0"].kind)
        cell.pairs.append(rounds)
        others = [d for k, d in decisions.items() if k != "k0"]
        cell.other_fails.append(sum(d.kind == "fail" for d in others))
        cell.other_gave_up.append(sum(d.kind in GAVE_UP for d in others))
        cell.other_slower.append(sum(d.kind == "slower" for d in others))
    return cell


def _one_round(lanes: dict[str, Any]) -> dict[str, tuple[float, float]]:
    return {k: lane.round() for k, lane in lanes.items()}


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description="False-fail, give-up and detection rates of the timed verdict.")
    parser.add_argument("n", nargs="?", type=int, default=300, help="single-KPI comparisons per cell")
    parser.add_argument("--kpis40", type=int, default=100, help="40-KPI comparisons per cell (0: skip)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--sources", help="comma-separated subset (default: all)")
    args = parser.parse_args()

    recorded, notes = load_recordings()
    simulated = SimulatedLane(SEED, 0.0)
    sim_sd = noise_stats([simulated.round() for _ in range(20000)])
    sources: dict[str, tuple[Make, dict[str, float], str]] = {
        "simulated": (SimulatedLane, sim_sd, "Markov host phases, shared jitter, per-run noise, 2 % outliers")}
    lengths: dict[str, int] = {"simulated": PLAN_CAP}
    for key, pairs in recorded.items():
        sources[key] = (_Recorded(pairs), noise_stats(pairs), notes[key])
        lengths[key] = len(pairs)
    if args.sources:
        keep = set(args.sources.split(","))
        sources = {k: v for k, v in sources.items() if k in keep}

    default = TimedPolicy(max_increase_pct=BUDGET_PCT)
    print(f"# decision quality of the timed verdict, budget max_increase_pct {BUDGET_PCT:g}, "
          f"alpha = beta = {default.alpha:g}, first look at {default.pairs} pairs, {default.confirm_pairs} fresh pairs to confirm\n")
    rows = []
    plans: dict[tuple[str, int], list[int]] = {}     # (source, KPIs in the lane) -> max_pairs to run
    for key, (_, st, note) in sources.items():
        planned = []
        for kpis in (1, KPIS):
            plan = plan_pairs(st["sd"], default, kpis)
            runnable = plan <= min(PLAN_CAP, lengths[key])
            plans[(key, kpis)] = sorted({default.max_pairs, max(default.max_pairs, plan)}) if runnable else [default.max_pairs]
            planned.append(str(plan))
        warning = noise_limit(st["sd"], default) or "-"
        rows.append([key, f"{st['sd']:.3f}", f"{st['lag1']:+.2f}", f"{st['kurtosis']:.1f}", " / ".join(planned), warning, note])
    print(tabulate(rows, headers=["noise", "log-ratio SD", "lag-1 ac", "kurtosis", f"planned pairs (1 / {KPIS} KPIs)",
                                  "validate says (1 KPI)", "recorded"], tablefmt="github", disable_numparse=True))
    print()
    for condition in ("idle", "load", "shared"):
        if condition in notes:
            print(f"- {condition}: {notes[condition]}")

    tasks = []
    for key in sources:
        for max_pairs in plans[(key, 1)]:
            for effect in EFFECTS:
                tasks.append((key, max_pairs, effect, 1, args.n))
        for max_pairs in plans[(key, KPIS)] if args.kpis40 else []:
            for effect in (0.0, 0.20):
                tasks.append((key, max_pairs, effect, KPIS, args.kpis40))
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {t: pool.submit(run_cell, t[0], sources[t[0]][0], sources[t[0]][1]["sd"], *t[1:]) for t in tasks}
        cells = {t: f.result() for t, f in futures.items()}
    elapsed = time.perf_counter() - started

    single, family = [], []
    for key in sources:
        sd = sources[key][1]["sd"]
        for max_pairs in plans[(key, 1)]:
            for effect in EFFECTS:
                cell = cells[(key, max_pairs, effect, 1, args.n)]
                total = len(cell.kinds)
                mean = statistics.fmean(cell.pairs)
                least = minimum_pairs(sd, effect)
                single.append([key, str(max_pairs), f"+{effect * 100:g}%" if effect else "A/A",
                               pct(cell.kinds.count("fail"), total), pct(cell.kinds.count("slower"), total),
                               pct(sum(k in GAVE_UP for k in cell.kinds), total), pct(cell.kinds.count("pass"), total),
                               f"{mean:.1f}", f"{least:.1f}" if math.isfinite(least) else "-",
                               f"{mean / least:.2f}" if math.isfinite(least) else "-"])
        for max_pairs in plans[(key, KPIS)] if args.kpis40 else []:
            aa, one = cells[(key, max_pairs, 0.0, KPIS, args.kpis40)], cells[(key, max_pairs, 0.20, KPIS, args.kpis40)]
            total = len(aa.kinds)
            fails = [f + (k == "fail") for f, k in zip(aa.other_fails, aa.kinds)]
            gave = [g + (k in GAVE_UP) for g, k in zip(aa.other_gave_up, aa.kinds)]
            slower = [s + (k == "slower") for s, k in zip(aa.other_slower, aa.kinds)]
            family.append([key, str(max_pairs), pct(sum(f > 0 for f in fails), total),
                           pct(sum(g > 0 for g in gave), total), f"{100 * sum(gave) / (total * KPIS):.2f}%",
                           pct(sum(s > 0 for s in slower), total), f"{statistics.fmean(aa.pairs):.1f}",
                           pct(one.kinds.count("fail"), len(one.kinds)), pct(sum(f > 0 for f in one.other_fails), len(one.kinds)),
                           f"{statistics.fmean(one.pairs):.1f}"])
    print(f"\n## one timed KPI, {args.n} comparisons per row ({_resolution(args.n)})\n")
    print(tabulate(single, headers=["noise", "max_pairs", "true change", "fail", "yellow slower", "yellow gave up", "pass",
                                    "mean pairs", "theoretical min", "ratio"], tablefmt="github", disable_numparse=True))
    if args.kpis40:
        print(f"\n## {KPIS} timed KPIs in one lane, {args.kpis40} comparisons per row ({_resolution(args.kpis40)})\n")
        print(tabulate(family, headers=["noise", "max_pairs", "A/A: any fail (family-wise)", "A/A: any gave up",
                                        "A/A: KPIs gave up", "A/A: any yellow slower", "A/A mean pairs", "one +20%: it fails",
                                        "one +20%: another fails", "one +20%: mean pairs"],
                       tablefmt="github", disable_numparse=True))
    print(f"\n{len(tasks)} cells in {elapsed:.0f} s over {args.jobs} processes (wall time under whatever else ran)")


def _resolution(n: int) -> str:
    """What n comparisons can tell: a rate seen as 0 is below 3/n, and one seen at 5 % is known to
    about ±2 standard errors, both at 95 % confidence."""
    return f"0 seen: below {100 * 3 / n:.1f}% at 95% confidence; 5% seen: ±{200 * math.sqrt(0.05 * 0.95 / n):.1f} points"


class _Recorded:
    """A picklable (seed, effect) -> RecordedLane factory for the process pool."""

    def __init__(self, pairs: list[tuple[float, float]]) -> None:
        self.pairs = pairs

    def __call__(self, seed: int, effect: float) -> RecordedLane:
        return RecordedLane(self.pairs, seed, effect)


if __name__ == "__main__":
    main()
