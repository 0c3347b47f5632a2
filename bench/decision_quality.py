"""How often does the timed verdict cry wolf, and how often does it catch a real slowdown?

A simulated timed lane with the noise measured on real builds (issue 3): run-to-run CV
10-20 %, slow/fast host phases lasting several rounds, per-pair head/base ratio CV ~10 %,
pairs correlated at ~0.68. The model, per interleaved round (base, then head):

    base = T       * phase * jitter * e_base
    head = T * (1+s) * phase * jitter * e_head

- phase: a two-state (fast/slow) Markov chain, shared by both runs of a round; it switches
  with probability PHASE_SWITCH per round, so a phase lasts ~1/PHASE_SWITCH rounds;
- jitter: lognormal per round, shared by both runs of the round;
- e_*: lognormal per run, plus a rare outlier run (a hiccup: cache flush, noisy neighbour).
The calibration measured from the simulator is printed first so the reader can check it.

Side by side, on the same simulated noise (common random numbers):
- sequential: molt-budget's procedure (compare.stats.run_sequential, max_increase_pct=10):
  6 pairs, more while inconclusive, up to 20, a fail needs a confirming round;
- single run: one base and one head run, fail if head > base by 10 % (yellow past 5 %);
- mean of 5: five interleaved pairs, mean(head)/mean(base), same thresholds;
- experiment (not what molt-budget does): the sequential procedure with an exact Wilcoxon
  signed-rank test on the per-pair log ratios in place of Mann-Whitney, to show what
  ignoring the pairing in the significance test costs.

Targets (issue 3): false-fail <= 1 % (A/A); detection >= 95 % at +10 % using on average
<= 1.5x the theoretical minimum pairs. With a fail line at +10 %, a true +10 % sits *on* the
line, so "detected" there means flagged (yellow or fail), not fail; both are printed.

Usage: python bench/decision_quality.py [comparisons per scenario, default 300]
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from dataclasses import dataclass
from random import Random
from typing import Callable

from tabulate import tabulate

from molt_budget.compare.stats import TimedPolicy, next_action, run_sequential

SEED = 20261126
T_SECONDS = 20.0
PHASE_SLOW = 0.15        # log factor of a slow phase (≈ +16 %)
PHASE_SWITCH = 0.25      # per-round switch probability: phases last ~4 rounds
ROUND_SIGMA = 0.07       # shared per-round jitter (log sd)
RUN_SIGMA = 0.06         # per-run noise (log sd)
OUTLIER_P = 0.02         # a run hit by a hiccup …
OUTLIER_FACTOR = 1.3     # … is 30 % slower
SLOWDOWNS = [0.05, 0.10, 0.20, 0.50]
POLICY = TimedPolicy(max_increase_pct=10)
FAIL_LINE, YELLOW_LINE = POLICY.fail_line, POLICY.yellow_line


class Lane:
    """One simulated lane measured interleaved; `round()` returns (head, base) seconds."""

    def __init__(self, seed: int, slowdown: float) -> None:
        self.rng = Random(seed)
        self.slowdown = slowdown
        self.slow = self.rng.random() < 0.5

    def _run(self) -> float:
        e = self.rng.lognormvariate(0, RUN_SIGMA)
        return e * OUTLIER_FACTOR if self.rng.random() < OUTLIER_P else e

    def round(self) -> tuple[float, float]:
        if self.rng.random() < PHASE_SWITCH:
            self.slow = not self.slow
        shared = math.exp(PHASE_SLOW if self.slow else 0.0) * self.rng.lognormvariate(0, ROUND_SIGMA)
        base = T_SECONDS * shared * self._run()
        head = T_SECONDS * (1 + self.slowdown) * shared * self._run()
        return head, base


def calibration(rounds: int = 20000) -> dict[str, float]:
    lane = Lane(SEED, 0.0)
    pairs = [lane.round() for _ in range(rounds)]
    heads = [h for h, _ in pairs]
    bases = [b for _, b in pairs]
    ratios = [h / b for h, b in pairs]
    log_ratios = [math.log(r) for r in ratios]
    return {
        "run-to-run CV": statistics.stdev(bases) / statistics.mean(bases),
        "per-pair ratio CV": statistics.stdev(ratios) / statistics.mean(ratios),
        "pair correlation": statistics.correlation(heads, bases) if hasattr(statistics, "correlation") else _corr(heads, bases),
        "log-ratio sd": statistics.stdev(log_ratios),
        "log-run sd": statistics.stdev([math.log(b) for b in bases]),
    }


def _corr(xs: list[float], ys: list[float]) -> float:
    mx, my = statistics.mean(xs), statistics.mean(ys)
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    return cov / math.sqrt(sum((x - mx) ** 2 for x in xs) * sum((y - my) ** 2 for y in ys))


@dataclass
class Outcome:
    status: str
    pairs: int


def sequential(lane: Lane) -> Outcome:
    d = run_sequential(lane.round, POLICY)
    return Outcome(d.status, d.pairs)


def signed_rank_p(head: list[float], base: list[float]) -> float:
    """Exact one-sided Wilcoxon signed-rank p on per-pair log ratios (no zeros/ties: simulated)."""
    diffs = [math.log(h / b) for h, b in zip(head, base)]
    order = sorted(range(len(diffs)), key=lambda i: abs(diffs[i]))
    w_plus = sum(rank + 1 for rank, i in enumerate(order) if diffs[i] > 0)
    n = len(diffs)
    counts = [1] + [0] * (n * (n + 1) // 2)         # subsets of {1..n} by their sum
    for r in range(1, n + 1):
        for total in range(len(counts) - 1, r - 1, -1):
            counts[total] += counts[total - r]
    return sum(counts[w_plus:]) / 2 ** n


def sequential_paired(lane: Lane) -> Outcome:
    """Experiment: the same procedure with a paired test in place of Mann-Whitney."""
    head, base = [], []
    for _ in range(POLICY.pairs):
        h, b = lane.round()
        head.append(h)
        base.append(b)
    confirmed = False
    while True:
        action, d = next_action(head, base, POLICY, confirmed, alpha_adjusted_p=signed_rank_p(head, base))
        if action == "done":
            return Outcome(d.status, d.pairs)
        h, b = lane.round()
        head.append(h)
        base.append(b)
        confirmed = action == "confirm"


def _threshold(ratio: float) -> str:
    return "fail" if ratio > FAIL_LINE else "yellow" if ratio > YELLOW_LINE else "pass"


def single_run(lane: Lane) -> Outcome:
    head, base = lane.round()
    return Outcome(_threshold(head / base), 1)


def mean_of_5(lane: Lane) -> Outcome:
    pairs = [lane.round() for _ in range(5)]
    return Outcome(_threshold(statistics.mean(h for h, _ in pairs) / statistics.mean(b for _, b in pairs)), 5)


METHODS: dict[str, Callable[[Lane], Outcome]] = {
    "sequential MWU + bootstrap CI (molt-budget)": sequential,
    "experiment: same, signed-rank on pair ratios": sequential_paired,
    "single run, > +10 % fails": single_run,
    "mean of 5, > +10 % fails": mean_of_5,
}


def print_table(title: str, rows: list[list[str]], headers: list[str]) -> None:
    print(f"\n## {title}\n")
    print(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))


def minimum_pairs(sd: float, effect: float, alpha: float = 0.05, power: float = 0.95) -> float:
    """Normal-approximation sample size for a one-sided test of a log-shift `effect`."""
    z = statistics.NormalDist().inv_cdf
    return ((z(1 - alpha) + z(power)) * sd / effect) ** 2


def main(n: int = 300) -> None:
    cal = calibration()
    print("## simulated lane noise (measured from the simulator, 20000 A/A rounds)\n")
    for key, value in cal.items():
        print(f"- {key}: {value:.3f}")
    effect = math.log(1.10)
    paired_min = minimum_pairs(cal["log-ratio sd"], effect)
    unpaired_min = 2 * minimum_pairs(cal["log-run sd"], effect) / 0.955   # per side, MWU efficiency
    print(f"- theoretical minimum for 95 % power at +10 % (one-sided α=0.05): "
          f"{paired_min:.1f} pairs with a paired test, {unpaired_min:.1f} a side unpaired (MWU on raw times)")

    scenarios = [0.0] + SLOWDOWNS
    results: dict[str, dict[float, list[Outcome]]] = {m: {s: [] for s in scenarios} for m in METHODS}
    spent: dict[str, float] = {m: 0.0 for m in METHODS}
    for si, slowdown in enumerate(scenarios):
        for i in range(n):
            seed = SEED + 1_000_003 * (si + 1) + i
            for name, method in METHODS.items():
                start = time.perf_counter()
                results[name][slowdown].append(method(Lane(seed, slowdown)))   # same noise for every method
                spent[name] += time.perf_counter() - start

    def rate(outcomes: list[Outcome], *statuses: str) -> str:
        return f"{100 * sum(o.status in statuses for o in outcomes) / len(outcomes):.1f}%"

    def mean_pairs(outcomes: list[Outcome]) -> str:
        return f"{statistics.mean(o.pairs for o in outcomes):.1f}"

    rows = []
    for name in METHODS:
        by = results[name]
        rows.append([name, rate(by[0.0], "fail"), rate(by[0.0], "yellow")]
                    + [rate(by[s], "fail") for s in SLOWDOWNS] + [mean_pairs(by[0.0]), mean_pairs(by[0.10])])
    print_table(f"decision quality, {n} comparisons per scenario, fail line +10 %, yellow line +5 %", rows,
                ["method", "A/A false fail", "A/A false yellow"] + [f"fail @ +{int(s * 100)}%" for s in SLOWDOWNS]
                + ["mean pairs A/A", "mean pairs +10%"])

    rows = []
    for name in METHODS:
        by = results[name]
        rows.append([name] + [rate(by[s], "yellow", "fail") for s in scenarios]
                    + [mean_pairs(by[s]) for s in SLOWDOWNS] + [f"{spent[name]:.1f}"])
    print_table("flagged (yellow or fail) and pairs used, per true slowdown", rows,
                ["method"] + [f"flagged @ {'A/A' if s == 0 else f'+{int(s * 100)}%'}" for s in scenarios]
                + [f"pairs @ +{int(s * 100)}%" for s in SLOWDOWNS] + ["cpu s"])


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
