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
- sequential: molt-budget's procedure (compare.sampler.run_sequential, the sampler the paired
  runner uses, max_increase_pct=10):
  6 pairs, more while inconclusive, up to 20, a fail needs a confirming round;
- single run: one base and one head run, fail if head > base by 10 % (yellow past 5 %);
- mean of 5: five interleaved pairs, mean(head)/mean(base), same thresholds;
- experiment (not what molt-budget does): the sequential procedure with an exact Wilcoxon
  signed-rank test on the per-pair log ratios in place of Mann-Whitney, to show what
  ignoring the pairing in the significance test costs.

Targets (issue 3): false-fail <= 1 % (A/A); detection >= 95 % at +10 % using on average
<= 1.5x the theoretical minimum pairs. With a fail line at +10 %, a true +10 % sits *on* the
line, so "detected" there means flagged (yellow or fail), not fail; both are printed.

Real noise (`--noise real`, or `both` for the two side by side): the same comparisons on
timings recorded on this machine by bench/record_lane_timings.py (bench/data/lane_timings.json:
A/A pairs of two demo lanes, idle and under load). A comparison takes its rounds as blocks of
BLOCK consecutive recorded pairs (a block bootstrap: a host phase spanning a few rounds stays
together, as in a real run), never the same recorded pair twice (a real run never repeats a
measurement, and repeats would be ties); A/B multiplies the head side by (1 + slowdown). The
noise measured on each lane x condition is printed next to the simulator's.

Usage: python bench/decision_quality.py [comparisons per scenario] [--noise sim|real|both] [--jobs N]
(defaults: 300 comparisons simulated, 200 per lane x condition real; --noise sim)
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
from typing import Any, Protocol

from tabulate import tabulate

from molt_budget.compare.sampler import run_sequential
from molt_budget.compare.stats import TimedPolicy, next_action

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
DATA = Path(__file__).resolve().parent / "data" / "lane_timings.json"
BLOCK = 5                # recorded rounds per bootstrap block: a sequential run takes 6-21 rounds


class Rounds(Protocol):
    """Anything that yields interleaved rounds: a simulated lane or a recorded one."""

    def round(self) -> tuple[float, float]: ...


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


class RecordedLane:
    """A/A rounds replayed from a recording, in blocks of consecutive rounds; head scaled by 1+s."""

    def __init__(self, pairs: list[tuple[float, float]], seed: int, slowdown: float, block: int = BLOCK) -> None:
        self.pairs = pairs                  # (head, base), in recording order
        self.rng = Random(seed)
        self.slowdown = slowdown
        self.block = block
        self.used: set[int] = set()
        self.index = 0
        self.left = 0

    def _new_block(self) -> None:
        """A random block start whose rounds this comparison has not used yet."""
        last = len(self.pairs) - self.block
        for _ in range(1000):
            start = self.rng.randint(0, last)
            if not self.used.intersection(range(start, start + self.block)):
                break
        else:
            raise RuntimeError("recording too short for the rounds one comparison needs")
        self.index, self.left = start, self.block

    def round(self) -> tuple[float, float]:
        if self.left == 0:
            self._new_block()
        head, base = self.pairs[self.index]
        self.used.add(self.index)
        self.index += 1
        self.left -= 1
        return head * (1 + self.slowdown), base


def load_recording(path: Path = DATA) -> tuple[dict[str, Any], dict[str, list[tuple[float, float]]]]:
    """Metadata and {lane/condition: [(head, base), ...]}; the file stores [base, head] (run order)."""
    doc = json.loads(path.read_text())
    series = {key: [(float(h), float(b)) for b, h in pairs] for key, pairs in doc.pop("pairs").items()}
    return doc, series


def noise_stats(pairs: list[tuple[float, float]]) -> dict[str, float]:
    """The noise figures the decision depends on, from (head, base) A/A rounds."""
    heads = [h for h, _ in pairs]
    bases = [b for _, b in pairs]
    ratios = [h / b for h, b in pairs]
    log_ratios = [math.log(r) for r in ratios]
    log_runs = [math.log(b) for b in bases]
    return {
        "run-to-run CV": statistics.stdev(bases) / statistics.mean(bases),
        "per-pair ratio CV": statistics.stdev(ratios) / statistics.mean(ratios),
        "pair correlation": _corr(heads, bases),
        "log-ratio sd": statistics.stdev(log_ratios),
        "log-run sd": statistics.stdev(log_runs),
        # head runs second in every round: a median ratio off 1 would be an order effect, not noise
        "median head/base": statistics.median(ratios),
        # host phases: how alike consecutive rounds are (0: independent rounds)
        "lag-1 autocorr, log run": _lag1(log_runs),
        "lag-1 autocorr, log ratio": _lag1(log_ratios),
    }


def calibration(rounds: int = 20000) -> dict[str, float]:
    lane = Lane(SEED, 0.0)
    return noise_stats([lane.round() for _ in range(rounds)])


def _lag1(xs: list[float]) -> float:
    return _corr(xs[:-1], xs[1:])


def _corr(xs: list[float], ys: list[float]) -> float:
    mx, my = statistics.mean(xs), statistics.mean(ys)
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    return cov / math.sqrt(sum((x - mx) ** 2 for x in xs) * sum((y - my) ** 2 for y in ys))


@dataclass
class Outcome:
    status: str
    pairs: int


def sequential(lane: Rounds) -> Outcome:
    rounds, decisions = run_sequential(lambda: {"kpi": lane.round()}, {"kpi": POLICY})
    return Outcome(decisions["kpi"].status, rounds)


def signed_rank_p(head: list[float], base: list[float]) -> float:
    """Exact one-sided Wilcoxon signed-rank p on per-pair log ratios (ties in |diff| ranked arbitrarily:
    none in simulated data, rare at the recording's microsecond resolution)."""
    diffs = [math.log(h / b) for h, b in zip(head, base)]
    order = sorted(range(len(diffs)), key=lambda i: abs(diffs[i]))
    w_plus = sum(rank + 1 for rank, i in enumerate(order) if diffs[i] > 0)
    n = len(diffs)
    counts = [1] + [0] * (n * (n + 1) // 2)         # subsets of {1..n} by their sum
    for r in range(1, n + 1):
        for total in range(len(counts) - 1, r - 1, -1):
            counts[total] += counts[total - r]
    return sum(counts[w_plus:]) / 2 ** n


def sequential_paired(lane: Rounds) -> Outcome:
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


def single_run(lane: Rounds) -> Outcome:
    head, base = lane.round()
    return Outcome(_threshold(head / base), 1)


def mean_of_5(lane: Rounds) -> Outcome:
    pairs = [lane.round() for _ in range(5)]
    return Outcome(_threshold(statistics.mean(h for h, _ in pairs) / statistics.mean(b for _, b in pairs)), 5)


METHODS: dict[str, Callable[[Rounds], Outcome]] = {
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


Results = dict[str, dict[float, list[Outcome]]]     # method -> slowdown -> outcomes
Spent = dict[str, float]                             # method -> cpu seconds
MakeLane = Callable[[int, float], Rounds]            # (seed, slowdown) -> a fresh lane
SCENARIOS = [0.0] + SLOWDOWNS


def run_scenario(make_lane: MakeLane, n: int, slowdown: float) -> tuple[dict[str, list[Outcome]], Spent]:
    """n comparisons of one scenario; every method sees the same noise (same seed).

    The seed depends only on the scenario and the comparison's index, so splitting the work
    over processes gives the same numbers as running it in one.
    """
    si = SCENARIOS.index(slowdown)
    outcomes: dict[str, list[Outcome]] = {m: [] for m in METHODS}
    spent: Spent = {m: 0.0 for m in METHODS}
    for i in range(n):
        seed = SEED + 1_000_003 * (si + 1) + i
        for name, method in METHODS.items():
            start = time.perf_counter()
            outcomes[name].append(method(make_lane(seed, slowdown)))
            spent[name] += time.perf_counter() - start
    return outcomes, spent


def evaluate(sources: dict[str, tuple[MakeLane, int]], jobs: int) -> dict[str, tuple[Results, Spent]]:
    """Every source x scenario as its own task over `jobs` processes: the sequential methods
    cost ~20 ms a comparison, and the slow cells (+5 %, +10 %, loaded lanes) need spreading."""
    # slowest cells first (near the fail line the sequential test runs to 20 pairs): less idle tail
    order = sorted(SCENARIOS, key=lambda s: abs(s - 0.10))
    tasks = [(key, slowdown) for slowdown in order for key in sources]
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {task: pool.submit(run_scenario, sources[task[0]][0], sources[task[0]][1], task[1]) for task in tasks}
        done = {task: future.result() for task, future in futures.items()}
    out: dict[str, tuple[Results, Spent]] = {}
    for key in sources:
        results: Results = {m: {} for m in METHODS}
        spent: Spent = {m: 0.0 for m in METHODS}
        for slowdown in SCENARIOS:
            outcomes, cpu = done[(key, slowdown)]
            for m in METHODS:
                results[m][slowdown] = outcomes[m]
                spent[m] += cpu[m]
        out[key] = (results, spent)
    return out


def _rate(outcomes: list[Outcome], *statuses: str) -> str:
    return f"{100 * sum(o.status in statuses for o in outcomes) / len(outcomes):.1f}%"


def _mean_pairs(outcomes: list[Outcome]) -> str:
    return f"{statistics.mean(o.pairs for o in outcomes):.1f}"


def quality_rows(results: Results, label: list[str]) -> list[list[str]]:
    return [label + [name, _rate(by[0.0], "fail"), _rate(by[0.0], "yellow")]
            + [_rate(by[s], "fail") for s in SLOWDOWNS] + [_mean_pairs(by[0.0]), _mean_pairs(by[0.10])]
            for name, by in results.items()]


def flagged_rows(results: Results, spent: Spent, label: list[str]) -> list[list[str]]:
    return [label + [name] + [_rate(by[s], "yellow", "fail") for s in SCENARIOS]
            + [_mean_pairs(by[s]) for s in SLOWDOWNS] + [f"{spent[name]:.1f}"]
            for name, by in results.items()]


QUALITY_HEADERS = (["method", "A/A false fail", "A/A false yellow"] + [f"fail @ +{int(s * 100)}%" for s in SLOWDOWNS]
                   + ["mean pairs A/A", "mean pairs +10%"])
FLAGGED_HEADERS = (["method"] + [f"flagged @ {'A/A' if s == 0 else f'+{int(s * 100)}%'}" for s in SCENARIOS]
                   + [f"pairs @ +{int(s * 100)}%" for s in SLOWDOWNS] + ["cpu s"])


def min_pairs(stats: dict[str, float]) -> tuple[float, float]:
    """Theoretical minimum for 95 % power at +10 %: pairs with a paired test, and a side for MWU on raw times."""
    effect = math.log(1.10)
    return (minimum_pairs(stats["log-ratio sd"], effect),
            2 * minimum_pairs(stats["log-run sd"], effect) / 0.955)   # per side, MWU efficiency


def print_simulated(n: int, results: Results, spent: Spent) -> None:
    cal = calibration()
    print("## simulated lane noise (measured from the simulator, 20000 A/A rounds)\n")
    for key, value in cal.items():
        print(f"- {key}: {value:.3f}")
    paired_min, unpaired_min = min_pairs(cal)
    print(f"- theoretical minimum for 95 % power at +10 % (one-sided α=0.05): "
          f"{paired_min:.1f} pairs with a paired test, {unpaired_min:.1f} a side unpaired (MWU on raw times)")
    print_table(f"decision quality, {n} comparisons per scenario, fail line +10 %, yellow line +5 %",
                quality_rows(results, []), QUALITY_HEADERS)
    print_table("flagged (yellow or fail) and pairs used, per true slowdown", flagged_rows(results, spent, []),
                FLAGGED_HEADERS)


def print_real_noise(meta: dict[str, Any], series: dict[str, list[tuple[float, float]]], path: Path) -> None:
    print(f"\n## real lane noise: {path.name}, recorded {meta['date']} on {meta['cpu_model']} "
          f"({meta['cpu_count']} CPUs), Python {meta['python']}\n")
    for lane, command in meta["commands"].items():
        print(f"- {lane}: `{command}`")
    for condition, text in meta["conditions"].items():
        print(f"- {condition}: {text}; host during it: {meta.get('host', {}).get(condition)}")
    print(f"- A/A comparisons replay blocks of {BLOCK} consecutive recorded rounds (block bootstrap), "
          f"A/B scales the head side by 1 + slowdown")
    sim = Lane(SEED, 0.0)
    rows = []
    for key, pairs in [("simulator (20000 rounds)", [sim.round() for _ in range(20000)])] + list(series.items()):
        st = noise_stats(pairs)
        paired_min, unpaired_min = min_pairs(st)
        rows.append([key, str(len(pairs)), f"{statistics.median(b for _, b in pairs):.3f}"]
                    + [f"{st[k]:.3f}" for k in ("run-to-run CV", "per-pair ratio CV", "pair correlation",
                                                 "median head/base", "lag-1 autocorr, log run",
                                                 "lag-1 autocorr, log ratio")]
                    + [f"{paired_min:.1f}", f"{unpaired_min:.1f}"])
    print_table("measured noise per lane x condition (A/A), next to the simulator's", rows,
                ["noise", "pairs", "median s", "run CV", "pair-ratio CV", "pair corr", "median head/base",
                 "lag-1 ac run", "lag-1 ac ratio", "min pairs paired", "min a side MWU"])


def print_real(n: int, done: dict[str, tuple[Results, Spent]]) -> None:
    quality: list[list[str]] = []
    flagged: list[list[str]] = []
    for key, (results, spent) in done.items():
        quality += quality_rows(results, [key])
        flagged += flagged_rows(results, spent, [key])
    print_table(f"decision quality on real noise, {n} comparisons per scenario and lane x condition, "
                f"fail line +10 %, yellow line +5 %", quality, ["noise"] + QUALITY_HEADERS)
    print_table("real noise: flagged (yellow or fail) and pairs used, per true slowdown", flagged,
                ["noise"] + FLAGGED_HEADERS)


SIM = "simulated"


def main() -> None:
    parser = argparse.ArgumentParser(description="False-alarm rate and power of the timed verdict.")
    parser.add_argument("n", nargs="?", type=int, help="comparisons per scenario (default 300 simulated, 200 real)")
    parser.add_argument("--noise", choices=["sim", "real", "both"], default="sim")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--data", type=Path, default=DATA, help="recording from bench/record_lane_timings.py")
    args = parser.parse_args()
    n_sim, n_real = args.n or 300, args.n or 200
    sources: dict[str, tuple[MakeLane, int]] = {}
    if args.noise in ("sim", "both"):
        sources[SIM] = (Lane, n_sim)
    if args.noise in ("real", "both"):
        meta, series = load_recording(args.data)
        sources.update({key: (partial(RecordedLane, pairs), n_real) for key, pairs in series.items()})
    done = evaluate(sources, args.jobs)               # one pool for everything: balances the slow cells
    if SIM in done:
        print_simulated(n_sim, *done.pop(SIM))
    if args.noise in ("real", "both"):
        print_real_noise(meta, series, args.data)
        print_real(n_real, done)


if __name__ == "__main__":
    main()
