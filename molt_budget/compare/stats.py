"""Statistics for change verdicts: one module, pure stdlib, checked against scipy in the tests.

- `mann_whitney_u`: rank test for timed KPIs; same numbers as `scipy.stats.mannwhitneyu`.
- `bootstrap_median_ratio_ci`: effect size of a timed change, with a reproducible CI.
- `holm`: family-wise correction across the timed comparisons of one run.
- `learned_fence`: rustc-perf's noise threshold for counted KPIs, learned from main history.
- `decide_timed` / `next_action`: the timed verdict and the sequential sampling around it.
- `decide_counted`: the counted (instructions) verdict.

Convention: samples are (head, base) in that order everywhere, and a bigger value is worse
(callers swap the sides for "higher is better" metrics). A ratio head/base above 1 is a slowdown.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

Status = Literal["pass", "yellow", "fail"]
Action = Literal["more", "confirm", "done"]

# The exact Mann-Whitney distribution is a polynomial product of degree n1*n2: at 50 a side it
# still costs ~1 ms, so decisions use it whenever there are no ties.
EXACT_MAX_N = 50


# --------------------------------------------------------------------------- Mann-Whitney U


@dataclass(frozen=True)
class MWResult:
    u: float          # U of the first sample (head), as scipy reports it
    p_value: float
    method: str       # "exact" | "asymptotic"


def _average_ranks(values: Sequence[float]) -> tuple[list[float], list[int]]:
    """1-based ranks, ties get the mean of their ranks; also the size of every tie group."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    groups: list[int] = []
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        rank = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[order[k]] = rank
        groups.append(j - i + 1)
        i = j + 1
    return ranks, groups


@lru_cache(maxsize=256)
def _u_counts(n1: int, n2: int) -> tuple[int, ...]:
    """How many of the C(n1+n2, n1) orderings give U = 0, 1, …, n1*n2 (no ties).

    These are the coefficients of the Gaussian binomial [n1+n2 choose n1]_q
    = prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i); exact integers, so no rounding creeps in.
    """
    m, n = sorted((n1, n2))
    poly = [1]
    for i in range(1, m + 1):
        shift = n + i
        grown = poly + [0] * shift
        for j, c in enumerate(poly):          # times (1 - q^shift)
            grown[j + shift] -= c
        for j in range(i, len(grown)):         # divided by (1 - q^i): a running sum with step i
            grown[j] += grown[j - i]
        poly = grown
    return tuple(poly[: m * n + 1])


def _check_sample(name: str, values: Sequence[float]) -> list[float]:
    out = [float(v) for v in values]
    if not out:
        raise ValueError(f"{name} is empty")
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} has a non-finite value")
    return out


def has_ties(values: Sequence[float]) -> bool:
    return len(set(values)) < len(values)


def mann_whitney_u(head: Sequence[float], base: Sequence[float], alternative: str = "greater",
                   method: str = "auto", use_continuity: bool = True) -> MWResult:
    """Is `head` stochastically larger (slower) than `base`? Same semantics as scipy.

    Equivalent to `scipy.stats.mannwhitneyu(head, base, alternative=…, method=…)`:
    - U is the first sample's: U1 = R1 - n1(n1+1)/2, with average ranks for ties.
    - "greater": p = P(U >= U1) (head larger); "less": the mirror; "two-sided": twice the
      smaller tail, capped at 1.
    - "exact": the null distribution of U without ties. Like scipy it ignores ties when
      asked for anyway (U is truncated to an integer), so use it only for tie-free data.
    - "asymptotic": normal approximation with the tie-corrected variance and a 0.5
      continuity correction.
    - "auto" (scipy's rule): exact when at least one sample has <= 8 values and there are
      no ties, else asymptotic.
    Decisions use `method="exact"` whenever there are no ties (see `decide_timed`).
    """
    x = _check_sample("head", head)
    y = _check_sample("base", base)
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"alternative must be greater, less or two-sided, not {alternative!r}")
    if method not in ("auto", "exact", "asymptotic"):
        raise ValueError(f"method must be auto, exact or asymptotic, not {method!r}")
    n1, n2 = len(x), len(y)
    ranks, groups = _average_ranks(x + y)
    u1 = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    u2 = n1 * n2 - u1
    if alternative == "greater":
        u, factor = u1, 1
    elif alternative == "less":
        u, factor = u2, 1
    else:
        u, factor = max(u1, u2), 2
    tied = any(g > 1 for g in groups)
    if method == "auto":
        method = "asymptotic" if (n1 > 8 and n2 > 8) or tied else "exact"
    if method == "exact":
        counts = _u_counts(n1, n2)
        k = int(u)                                  # scipy truncates a half-integer U
        p = sum(counts[k:]) / sum(counts)
    else:
        n = n1 + n2
        tie_term = sum(g ** 3 - g for g in groups)
        sd = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)))) if n > 1 else 0.0
        numerator = u - n1 * n2 / 2 - (0.5 if use_continuity else 0.0)
        if sd == 0.0:                               # every value equal: nothing to see
            p = 1.0
        else:
            p = 0.5 * math.erfc(numerator / sd / math.sqrt(2))
    return MWResult(u=u1, p_value=min(max(p * factor, 0.0), 1.0), method=method)


# --------------------------------------------------------------------------- bootstrap


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default, what scipy.bootstrap uses)."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def pair_ratios(head: Sequence[float], base: Sequence[float]) -> list[float]:
    if len(head) != len(base):
        raise ValueError(f"head and base are paired: {len(head)} vs {len(base)} values")
    h = _check_sample("head", head)
    b = _check_sample("base", base)
    if any(v <= 0 for v in h + b):
        raise ValueError("ratios need positive values")
    return [hv / bv for hv, bv in zip(h, b)]


def bootstrap_median_ratio_ci(head: Sequence[float], base: Sequence[float], n_resamples: int = 2000,
                              confidence: float = 0.95, seed: int = 12345) -> tuple[float, float, float]:
    """(point, low, high) for the median of the per-pair ratios head_i/base_i.

    Why per-pair ratios: base and head of one round ran back to back, so a slow or fast host
    phase scales both; the ratio cancels it (pairs correlate at ~0.68 on real lanes), while a
    ratio of the two medians keeps that noise. Resampling draws whole pairs (indices), which
    keeps the pairing. The interval is the percentile interval with numpy's linear
    interpolation; a fixed seed makes the verdict identical on every call and Python version
    (`random.Random.random` is stable).
    """
    ratios = pair_ratios(head, base)
    if n_resamples < 1:
        raise ValueError("n_resamples must be at least 1")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    point = float(statistics.median(ratios))
    n = len(ratios)
    rng = random.Random(seed)
    draw = rng.random
    mid = n // 2
    medians = []
    for _ in range(n_resamples):
        sample = sorted([ratios[int(draw() * n)] for _ in range(n)])
        medians.append(sample[mid] if n % 2 else (sample[mid - 1] + sample[mid]) / 2)
    medians.sort()
    tail = (1 - confidence) / 2
    return point, _percentile(medians, tail), _percentile(medians, 1 - tail)


# --------------------------------------------------------------------------- Holm


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values, in the input order.

    Sorted ascending, the i-th (0-based) of m becomes max over j <= i of min(1, (m - j) p_j),
    so the adjusted values keep the order of the raw ones and never exceed 1. Comparing them
    with alpha controls the family-wise error over all timed comparisons of a run.
    """
    m = len(p_values)
    for p in p_values:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p-value out of range: {p}")
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda k: p_values[k])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


# --------------------------------------------------------------------------- learned fence

FENCE_MIN_VALUES = 10
FENCE_WINDOW = 30


def _rustc_perf_median(data: Sequence[float]) -> float:
    n = len(data)
    return (data[(n - 1) // 2] + data[n // 2]) / 2 if n % 2 == 0 else data[n // 2]


def learned_fence(values: Sequence[float], window: int = FENCE_WINDOW) -> float | None:
    """rustc-perf's significance threshold, in percent, from a chronological main series.

    Over the last `window` values: absolute relative deltas |v[i+1] - v[i]| / v[i], sorted;
    threshold = Q3 + 3·IQR. Quartiles as rustc-perf computes them (site/src/comparison.rs,
    `BenchmarkVariance::quartiles`): Q1 is the median of the values below the middle and Q3 of
    those above, where the middle is one value for an odd count and *two* for an even count.
    None when fewer than 10 values: too little history to learn from (use the floor then).
    """
    series = [float(v) for v in values][-window:]
    if len(series) < FENCE_MIN_VALUES:
        return None
    if any(v <= 0 or not math.isfinite(v) for v in series):
        raise ValueError("learned_fence needs positive, finite values")
    changes = sorted(abs(b - a) / a for a, b in zip(series, series[1:]))
    n = len(changes)
    h1_end, h2_begin = (n // 2 - 2, n // 2 + 1) if n % 2 == 0 else (n // 2 - 1, n // 2 + 1)
    q1 = _rustc_perf_median(changes[: h1_end + 1])
    q3 = _rustc_perf_median(changes[h2_begin:])
    return (q3 + 3 * (q3 - q1)) * 100


# --------------------------------------------------------------------------- timed verdicts


@dataclass(frozen=True)
class TimedPolicy:
    """How much slowdown a timed KPI may take, and how hard to look for it."""
    max_increase_pct: float
    yellow_fraction: float = 0.5
    alpha: float = 0.05
    pairs: int = 6               # rounds to start with
    max_pairs: int = 20          # stop adding rounds here (a fail still gets its confirming round)
    n_resamples: int = 2000
    confidence: float = 0.95
    seed: int = 12345            # fixed: the same samples always give the same verdict

    def __post_init__(self) -> None:
        if not self.max_increase_pct > 0:
            raise ValueError("max_increase_pct must be positive")
        if not 0 < self.yellow_fraction <= 1:
            raise ValueError("yellow_fraction must be in (0, 1]")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be in (0, 1)")
        if not 2 <= self.pairs <= self.max_pairs:
            raise ValueError("need 2 <= pairs <= max_pairs")

    @property
    def fail_line(self) -> float:
        return 1 + self.max_increase_pct / 100

    @property
    def yellow_line(self) -> float:
        return 1 + self.yellow_fraction * self.max_increase_pct / 100


@dataclass(frozen=True)
class TimedDecision:
    status: Status            # provisional ("yellow") while conclusive is False
    conclusive: bool          # False: more pairs could change the verdict
    p_value: float            # the p that decided: Holm-adjusted when one was given
    ci_low: float
    ci_high: float
    ratio: float              # median of per-pair head/base ratios
    pairs: int
    reason: str


def _fmt_p(p: float) -> str:
    return "p<0.0001" if p < 0.0001 else f"p={p:.2g}"


def decide_timed(head: Sequence[float], base: Sequence[float], policy: TimedPolicy,
                 alpha_adjusted_p: float | None = None) -> TimedDecision:
    """Three-state verdict for paired timings (head[i] and base[i] ran in the same round).

    Significance: one-sided Mann-Whitney (head slower), exact when there are no ties,
    asymptotic with tie correction otherwise; `alpha_adjusted_p` (Holm across the run)
    replaces the raw p when given. Size: bootstrap CI of the median per-pair ratio.
    - fail: significant and the CI's lower bound is past the fail line;
    - inconclusive: the CI still reaches past the fail line (significant but straddling,
      or not significant and underpowered); at max_pairs this resolves to yellow, because
      the data cannot rule out a slowdown bigger than allowed;
    - yellow: significant and the CI reaches the yellow line;
    - pass: not significant, or significant with the whole CI under the yellow line.
    """
    n = len(head)
    if n != len(base):
        raise ValueError(f"head and base are paired: {n} vs {len(base)} values")
    if n < 2:
        raise ValueError("need at least 2 pairs")
    both = list(head) + list(base)
    method = "exact" if not has_ties(both) and n <= EXACT_MAX_N else "asymptotic"
    raw_p = mann_whitney_u(head, base, alternative="greater", method=method).p_value
    p = raw_p if alpha_adjusted_p is None else alpha_adjusted_p
    ratio, low, high = bootstrap_median_ratio_ci(head, base, policy.n_resamples, policy.confidence, policy.seed)
    significant = p < policy.alpha
    allowed = f"{policy.max_increase_pct:g}%"
    yellow = f"{policy.yellow_fraction * policy.max_increase_pct:g}%"
    conclusive = True
    if significant and low > policy.fail_line:
        status: Status = "fail"
        why = f"slower by more than the {allowed} allowed"
    elif high > policy.fail_line:
        status = "yellow"
        if n >= policy.max_pairs:
            why = f"cannot rule out a slowdown past the {allowed} allowed within {n} pairs"
        else:
            conclusive = False
            why = f"inconclusive: the CI reaches past the {allowed} allowed, needs more pairs"
    elif significant and high >= policy.yellow_line:
        status = "yellow"
        why = f"slower: the CI reaches the {yellow} yellow line, within the {allowed} allowed"
    elif significant:
        status = "pass"
        why = f"slower, but within the {yellow} yellow line"
    else:
        status = "pass"
        why = "no significant slowdown"
    adjusted = " (Holm-adjusted)" if alpha_adjusted_p is not None else ""
    reason = (f"head/base median ratio {ratio:.3f} ({policy.confidence * 100:g}% CI {low:.3f}–{high:.3f}), "
              f"{_fmt_p(p)}{adjusted} over {n} pairs: {why}")
    return TimedDecision(status=status, conclusive=conclusive, p_value=p, ci_low=low, ci_high=high,
                         ratio=ratio, pairs=n, reason=reason)


def next_action(head: Sequence[float], base: Sequence[float], policy: TimedPolicy, confirmed: bool = False,
                alpha_adjusted_p: float | None = None) -> tuple[Action, TimedDecision]:
    """What the interleaved sampler does next.

    - "more": inconclusive below max_pairs; run one more round (base, head) and ask again.
    - "confirm": a conclusive fail not yet confirmed; run one more round (even past
      max_pairs) and ask again with confirmed=True. The fail stands only if the decision on
      all pairs is still a fail; if it became inconclusive the sampler goes on, and a later
      fail needs its own confirming round.
    - "done": the decision is final.
    """
    decision = decide_timed(head, base, policy, alpha_adjusted_p)
    if not decision.conclusive:
        return "more", decision
    if decision.status == "fail" and not confirmed:
        return "confirm", decision
    return "done", decision


# --------------------------------------------------------------------------- counted verdicts


@dataclass(frozen=True)
class CountedDecision:
    status: Status
    threshold_pct: float      # noise threshold: max(declared floor, learned fence)
    delta_pct: float          # (head - base) / base, in percent
    reason: str


def decide_counted(head_min: float, base_min: float, floor_pct: float, fence: float | None,
                   max_increase_pct: float | None = None, yellow_fraction: float = 0.5) -> CountedDecision:
    """Verdict for a counted KPI (instructions: minimum of N runs a side).

    A change up to the noise threshold (the larger of the declared floor and the learned
    fence, both percent) is noise: pass. Past it the change is real and is judged against
    the budget: fail past max_increase_pct, yellow past yellow_fraction of it, else pass;
    without a declared max_increase_pct any real increase is yellow (worth a look, no budget
    to break). A budget smaller than the noise threshold cannot fail inside the noise.
    """
    if not base_min > 0 or not math.isfinite(head_min) or not math.isfinite(base_min):
        raise ValueError("counted values must be finite, base positive")
    if floor_pct < 0 or (fence is not None and fence < 0):
        raise ValueError("noise floor and fence must not be negative")
    threshold = max(floor_pct, fence if fence is not None else 0.0)
    source = "learned fence" if fence is not None and fence > floor_pct else "floor"
    delta = (head_min - base_min) / base_min * 100
    head_text = f"{delta:+.2f}% against the base (noise threshold {threshold:.2f}%, {source})"
    if delta <= threshold:
        why = "faster" if delta < -threshold else "within noise"
        return CountedDecision("pass", threshold, delta, f"{head_text}: {why}")
    if max_increase_pct is None:
        return CountedDecision("yellow", threshold, delta, f"{head_text}: a real increase (no max_increase_pct declared)")
    yellow_line = yellow_fraction * max_increase_pct
    if delta > max_increase_pct:
        status: Status = "fail"
        why = f"more than the {max_increase_pct:g}% allowed"
    elif delta > yellow_line:
        status = "yellow"
        why = f"past the {yellow_line:g}% yellow line ({max_increase_pct:g}% allowed)"
    else:
        status = "pass"
        why = f"a real increase, within the {yellow_line:g}% yellow line"
    return CountedDecision(status, threshold, delta, f"{head_text}: {why}")
