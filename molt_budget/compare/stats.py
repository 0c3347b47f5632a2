"""Statistics for change verdicts: one module, pure stdlib, checked against scipy in the tests.

- `log_ratios` / `sequential_t_evidence`: the paired sequential t-test on per-pair log ratios
  (equals scipy's noncentral-t density ratio), valid at every look.
- `SequentialTimed`: the timed verdict of one lane's KPIs, look by look: the two sequential
  tests at the budget line, Holm inside, a confirming round of fresh pairs per KPI;
  `decide_timed` is the same for one KPI. `plan_pairs` / `noise_limit`: what a lane's noise
  allows a budget to resolve.
- `holm`: family-wise correction (used inside the sampler, at every look).
- `learned_fence`: rustc-perf's noise threshold for counted KPIs, learned from main history.
- `decide_counted`: the counted (instructions) verdict.

Why a t on log ratios, not Wilcoxon's signed-rank test (both are paired): the recorded A/A
log ratios (bench/data/) are symmetric around 0 with moderate tails (kurtosis 4.8 and 12 on
idle lanes, 3.1-4.5 under load), the regime where the t keeps its level; the t has an exact
anytime-valid sequential form (Wald's SPRT on the scale invariant) and an interval exact at
any n, while an exact signed-rank p can never go below 2^-n: at 6 pairs (1/64) it cannot pass
Holm's 0.05/40 for any slowdown, so a 40-KPI lane would always pay for 10+ pairs. Heavy tails
cost the t power, not level: one outlier pair inflates the SD more than the mean.

Why most of beta waits for the last look, and the plan counts the lane's KPIs. On the
noisier recorded lane (dev_warm_hit/idle, SD 0.060, kurtosis 12) 0.4-0.6 % of unchanged KPIs
ended undecided at max_pairs, so 17-19 % of 40-KPI A/A runs had a "gave up" yellow. Two causes,
both on the pass side: (1) "within the budget" spent 80 % of beta on the sequential test, whose
evidence for "no change" grows slowly once one outlier pair (every undecided run held the
recording's 5-SD pair) inflates the SD, and only 20 % on the fixed-sample t at max_pairs, the
look that decides exactly those runs; (2) max_pairs was planned for one KPI at 97.5 % power,
but a lane waits for its slowest KPI: 40 KPIs at 97.5 % each leave some KPI undecided in most
runs. Now "within" keeps half of beta for the final look (`pass_final_share`; the sequential
looks still pass a quiet KPI early), and `plan_pairs` plans for every KPI of the lane to be
decided in all but 2.5 % of A/A runs (power 1 − 0.025/kpis per KPI: the plan grows with
ln kpis), so `validate` names a 40-KPI lane whose noise needs more pairs than one KPI would.
Passing is not a family-wise error (it is a missed slowdown, at most beta per KPI), so this
moves nothing on the fail side: alpha, Holm inside the sampler and the confirming round are
as they were. A sequential sign test for "within" (robust to the outliers) was tried and
dropped: on the lighter-tailed lanes halving the t's level cost more undecided KPIs than the
outliers did. The "slower" yellow (a pass significantly slower than the base, reaching the
yellow line) is judged at the lane's alpha over its KPIs for the same family reason.

Convention: samples are (head, base) in that order everywhere, and a bigger value is worse
(callers swap the sides for "higher is better" metrics). A ratio head/base above 1 is a slowdown.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Mapping, Sequence
from typing import Literal

from molt_budget import fmt
from molt_budget.bounded import log_ratio
from molt_budget.structs import Struct

Status = Literal["pass", "yellow", "fail"]


# --------------------------------------------------------------------------- paired sequential t

# Per-pair log-ratio SD assumed for a lane that was never calibrated (`molt-budget calibrate`):
# interleaved demo builds on an idle 2-core host measured 0.04-0.06 (bench/data/).
DEFAULT_NOISE_SD = 0.05
# Below this many pairs the Laplace approximation of the invariant likelihood is off by more
# than 0.2 % (checked against scipy's noncentral t in the tests): integrate numerically there.
_LAPLACE_FROM = 6


def log_ratios(head: Sequence[float], base: Sequence[float]) -> list[float]:
    """ln(head_i / base_i) per interleaved pair: the quantity every timed decision is about.

    Why per-pair ratios: base and head of one round ran back to back, so a slow or fast host
    phase scales both and the ratio cancels it; why logs: a slowdown multiplies times, and
    the log makes it a shift whose noise is close to symmetric (recorded A/A pairs: median
    and mean log ratio within 0.003 of 0, bench/data/).
    """
    if len(head) != len(base):
        raise ValueError(f"head and base are paired: {len(head)} vs {len(base)} values")
    h = _check_sample("head", head)
    b = _check_sample("base", base)
    if any(v <= 0 for v in h + b):
        raise ValueError("ratios need positive values")
    return [log_ratio(hv, bv) for hv, bv in zip(h, b)]


_LOG_MAX = math.log(sys.float_info.max)


def _ratio_of(value: float) -> float:
    """exp of a log ratio, inf past the floats (a ratio beyond 1e308: absurd input, not a crash)."""
    return math.exp(value) if value < _LOG_MAX else math.inf


def _check_sample(name: str, values: Sequence[float]) -> list[float]:
    out = [float(v) for v in values]
    if not out:
        raise ValueError(f"{name} is empty")
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} has a non-finite value")
    return out


def _log_shifted_moment_less_square(k: int, z: float) -> float:
    """ln of ∫₀^∞ v^k e^(-v²/2 + zv) dv / ∫₀^∞ v^k e^(-v²/2) dv, minus z²/2.

    Laplace's method with its second-order correction from 6 pairs on (k >= 5), Simpson's
    rule around the peak below that; the denominator is exact: 2^((k-1)/2) Γ((k+1)/2).
    Less z²/2 because the caller cancels it against the same term of its own analytically:
    a quiet lane's design effect (budget / noise SD) makes both ~1e10 and more, where their
    difference in floating point is noise. The peak v* solves v² - zv - k = 0; its distance
    past z is kept without cancellation on either side of 0.
    """
    root = math.hypot(z, 2 * math.sqrt(k))         # √(z² + 4k), without squaring z
    if z >= 0:
        past = 2 * k / (root + z)                 # v* - z
        peak = z + past
    else:
        peak = 2 * k / (root - z)
        past = peak - z
    norm = math.lgamma((k + 1) / 2) + (k - 1) / 2 * math.log(2)
    top = k * math.log(peak) - past * past / 2     # the exponent at the peak, less z²/2
    curvature = k / (peak * peak) + 1
    if k + 1 >= _LAPLACE_FROM:
        f3, f4 = 2 * k / peak / peak / peak, -6 * k / peak / peak / peak / peak
        correction = 1 + f4 / (8 * curvature ** 2) + 5 * f3 * f3 / (24 * curvature ** 3)
        return top + 0.5 * math.log(2 * math.pi / curvature) + math.log(correction) - norm
    width = 1 / math.sqrt(curvature)
    lo, hi, steps = max(peak - 8 * width, 0.0), peak + 8 * width, 64
    h = (hi - lo) / steps
    total = 0.0
    for i in range(steps + 1):
        v = lo + i * h
        if v > 0:
            weight = 1 if i in (0, steps) else 4 if i % 2 else 2
            gap = v - z
            total += weight * math.exp(k * math.log(v) - gap * gap / 2 - top)   # = the exponent less z²/2, less top
    return math.log(total * h / 3) + top - norm


def sequential_t_evidence(values: Sequence[float], effect: float) -> float:
    """ln of the likelihood ratio "the mean of `values` is `effect` SDs above 0" against "it is 0",
    with the SD unknown: the sequential t-test (Rushton; Wald's SPRT on the scale-invariant
    part of the data).

    It is the density ratio of the maximal scale invariant, so (by Wijsman's theorem) it equals
    ln nct.pdf(t; n-1, effect·√n) − ln t.pdf(t; n-1) of the one-sample t statistic, and under
    "mean 0" its exponential is a martingale whatever the SD: by Ville's inequality it reaches
    1/α at *any* look with probability at most α. That is what makes looking after every pair
    free. It only grows with the t statistic, so data whose mean is below 0 reach 1/α even
    less often (the test is valid for "mean <= 0"). 0 (no evidence) for fewer than 2 values.
    """
    n = len(values)
    if n < 2 or not effect > 0:
        return 0.0
    sum_sq = math.fsum(v * v for v in values)
    if sum_sq == 0:
        return 0.0
    total = math.fsum(values)
    r = total / math.sqrt(sum_sq)
    # -n·effect²/2 + ln M(z) with z = effect·r, as -(effect²/2)(n - r²) + (ln M(z) - z²/2):
    # n - r² = n·Σ(v - mean)²/Σv², from the centred squares (no difference of near-equal terms)
    mean = total / n
    shortfall = n * math.fsum((v - mean) ** 2 for v in values) / sum_sq
    return -effect * effect / 2 * shortfall + _log_shifted_moment_less_square(n - 1, effect * r)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1 + num * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1 - front * _betacf(b, a, 1 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with `df` degrees of freedom (scipy.stats.t.sf)."""
    tail = 0.5 * _betainc(df / 2, 0.5, df / (df + t * t))
    return tail if t > 0 else 1 - tail


def t_test_p(values: Sequence[float]) -> float:
    """One-sided p of the one-sample t-test "mean above 0" (scipy.stats.ttest_1samp, alternative="greater")."""
    n = len(values)
    if n < 2:
        return 1.0
    sd = statistics.stdev(values)
    mean = statistics.fmean(values)
    if sd == 0:
        return 0.0 if mean > 0 else 1.0
    return t_sf(mean / (sd / math.sqrt(n)), n - 1)


MAX_EFFECT = 1e8         # design effects past this many noise SDs are taken as this (TimedPolicy.effect)
_MAX_DOUBLINGS = 48      # 30 spreads · 2^47: past any design effect a positive noise SD gives


def _bound(x: Sequence[float], effect: float, level: float, upper: bool) -> float:
    """The log-ratio bound past which the data say "beyond" at `level`: the smallest θ with
    evidence(x − θ) below ln(1/level) (lower bound), or mirrored (upper). ±inf: not yet."""
    sign = -1.0 if upper else 1.0
    need = math.log(1 / level)
    centre = statistics.fmean(x)
    spread = max(statistics.stdev(x), 1e-12) if len(x) > 1 else 1.0

    def evidence(theta: float) -> float:
        return sequential_t_evidence([sign * (v - theta) for v in x], effect)

    # The evidence first reaches `need` about effect/2 spreads out: 30 spreads cover the default
    # effects; a quiet lane's (budget / a small noise SD) needs more, so the reach doubles until
    # it gets there (or the data can never say it, at any distance: "not yet").
    reach = 30 * spread
    for _ in range(_MAX_DOUBLINGS):
        if evidence(centre - sign * reach) >= need:
            break
        reach *= 2
    else:
        return -math.inf if not upper else math.inf
    far, near = centre - sign * reach, centre
    for _ in range(32):
        mid = (near + far) / 2
        if evidence(mid) >= need:
            far = mid
        else:
            near = mid
    return near


# --------------------------------------------------------------------------- timed verdicts

Kind = Literal["fail", "slower", "pass", "inconclusive", "unconfirmed"]
KIND_STATUS: dict[str, Status] = {"fail": "fail", "slower": "yellow", "pass": "pass",
                                  "inconclusive": "yellow", "unconfirmed": "yellow"}


class TimedPolicy(Struct, frozen=True):
    """How much slowdown a timed KPI may take, and how hard to look for it.

    `alpha`: the chance of failing a KPI that is slower by exactly its budget, family-wise
    over the run's timed KPIs (Holm inside the sampler). `beta`: the chance of passing one.
    `noise_sd`: the lane's per-pair log-ratio SD (its noise model); it tunes the sequential
    test (the slowdown it is quickest to tell from the budget), never its validity.
    """
    max_increase_pct: float
    yellow_fraction: float = 0.5
    alpha: float = 0.05
    beta: float = 0.05
    pairs: int = 6               # rounds before the first look
    max_pairs: int = 20          # stop adding rounds here (a fail still gets its confirming round)
    confirm_pairs: int = 2       # fresh pairs a provisional fail must hold up on
    noise_sd: float | None = None
    final_share: float = 0.2     # of alpha, kept for a fixed-sample t-test of "slower" at max_pairs
    pass_final_share: float = 0.5  # of beta, kept for a fixed-sample t-test of "within" at max_pairs

    def __post_init__(self) -> None:
        if not self.max_increase_pct > 0:
            raise ValueError("max_increase_pct must be positive")
        if not 0 < self.yellow_fraction <= 1:
            raise ValueError("yellow_fraction must be in (0, 1]")
        if not 0 < self.alpha < 1 or not 0 < self.beta < 1:
            raise ValueError("alpha and beta must be in (0, 1)")
        if not 2 <= self.pairs <= self.max_pairs:
            raise ValueError("need 2 <= pairs <= max_pairs")
        if self.confirm_pairs < 1:
            raise ValueError("confirm_pairs must be at least 1")
        if self.noise_sd is not None and not self.noise_sd > 0:
            raise ValueError("noise_sd must be positive")
        if not 0 <= self.final_share < 1 or not 0 <= self.pass_final_share < 1:
            raise ValueError("final_share and pass_final_share must be in [0, 1)")

    @property
    def fail_line(self) -> float:
        return 1 + self.max_increase_pct / 100

    @property
    def yellow_line(self) -> float:
        return 1 + self.yellow_fraction * self.max_increase_pct / 100

    @property
    def sd(self) -> float:
        return self.noise_sd if self.noise_sd is not None else DEFAULT_NOISE_SD

    @property
    def effect(self) -> float:
        """The design effect in noise SDs: the distance from "no change" to the budget. A change
        of none and one of twice the budget are then told from the budget equally fast.

        At most MAX_EFFECT: an SD from measured pairs is never below ~1e-16 (one float step of
        a log ratio), and the cap keeps the evidence's terms inside the floats for any positive
        noise_sd (past ~1e150 SDs they overflow). The effect tunes the test, never its validity."""
        return min(math.log(self.fail_line) / self.sd, MAX_EFFECT)


class TimedDecision(Struct, frozen=True):
    status: Status            # provisional ("yellow") while conclusive is False
    kind: Kind                # which verdict: fail | slower (yellow) | pass | inconclusive / unconfirmed (yellow: gave up)
    conclusive: bool          # False: the sampler stopped before the KPI was decided
    p_value: float            # anytime-valid p of "no slower than the budget", Holm-adjusted over the run
    ci_low: float             # head/base ratio interval, valid at every look (1 - alpha - beta)
    ci_high: float
    ratio: float              # geometric mean of the per-pair head/base ratios
    pairs: int                # pairs the decision is based on
    reason: str


# The share of A/A runs of a lane that may end with a KPI undecided at max_pairs when the lane
# has the pairs plan_pairs plans: half the 5 % the gate promises, so a noise estimate a little
# low still keeps it.
PLANNED_GAVE_UP = 0.025


def plan_pairs(sd: float, policy: TimedPolicy, kpis: int = 1) -> int:
    """Pairs a lane with per-pair log-ratio SD `sd` and `kpis` timed KPIs needs for its budget,
    planned on the final look alone (the fixed-sample t-tests at max_pairs; the sequential
    looks settle most PRs long before, so this bounds the ones that run to the end):

    - fail side: a KPI at twice the budget is told from the budget line with 97.5 % power at
      `final_share` of alpha;
    - pass side: a lane with no change at all ends with every one of its `kpis` KPIs decided
      in all but PLANNED_GAVE_UP of runs (each KPI told from the budget line with power
      1 − PLANNED_GAVE_UP / kpis at `pass_final_share` of beta). A lane waits for its slowest
      KPI, so 40 KPIs need each KPI far surer than one does: the plan grows with ln(kpis).

    bench/decision_quality.py prints it next to the pairs the sampler used.
    """
    if kpis < 1:
        raise ValueError("a plan needs at least one KPI")
    z = statistics.NormalDist().inv_cdf
    fail_level = policy.final_share * policy.alpha if policy.final_share > 0 else policy.alpha
    pass_level = policy.pass_final_share * policy.beta if policy.pass_final_share > 0 else policy.beta
    spread = max(z(1 - fail_level) + z(0.975), z(1 - pass_level) + z(1 - PLANNED_GAVE_UP / kpis))
    fixed = (spread * sd / math.log(policy.fail_line)) ** 2
    return max(policy.pairs + policy.confirm_pairs, math.ceil(fixed) + 2)     # +2: the t's fatter tails at small n


def noise_limit(sd: float, policy: TimedPolicy, kpis: int = 1) -> str | None:
    """Why a lane with this noise and `kpis` timed KPIs cannot resolve the budget within
    max_pairs, or None if it can."""
    needed = plan_pairs(sd, policy, kpis)
    if needed <= policy.max_pairs:
        return None
    among = f" ({kpis} timed KPIs in the lane)" if kpis > 1 else ""
    return (f"noise SD {fmt.number(sd * 100, sig=2)}% needs ~{needed} pairs for a "
            f"{fmt.number(policy.max_increase_pct)}% budget{among} (max_pairs {policy.max_pairs}); "
            "raise max_pairs, widen the budget or gate on instructions")


class _Track(Struct):
    """One KPI's state across the looks of a sequential run."""
    policy: TimedPolicy
    p: float = 1.0                  # running min of the p of "no slower than the budget"
    p_within: float = 1.0           # running min of the p of "at least as slow as the budget"
    p_now: float = 1.0              # the first, on all pairs as they stand now
    confirm_from: int | None = None
    decision: TimedDecision | None = None
    last: list[float] | None = None  # the log ratios seen at the last look

    def update(self, x: list[float]) -> None:
        """One look: each p is the sequential test's (anytime-valid, 1/LR) at its share of the
        level, or at max_pairs the fixed-sample t-test's at the rest: a Bonferroni pair of valid
        p-values is valid. The final look turns most of the SPRT's long tail into decisions."""
        policy, n = self.policy, len(x)
        c, effect, final = math.log(policy.fail_line), policy.effect, policy.final_share
        pass_final = policy.pass_final_share
        above, below = [v - c for v in x], [c - v for v in x]
        slower = sequential_t_evidence(above, effect)
        # "now" (a confirmation's test): the tests the interval shows at this n (`_interval`)
        self.p_now = _combined(slower, t_test_p(above) if n >= policy.max_pairs else 1.0, final)
        at_end = n == policy.max_pairs
        self.p = min(self.p, _combined(slower, t_test_p(above) if at_end else 1.0, final))
        self.p_within = min(self.p_within, _combined(sequential_t_evidence(below, effect),
                                                     t_test_p(below) if at_end else 1.0, pass_final))
        self.last = x


def _combined(evidence: float, fixed_p: float, final: float) -> float:
    # evidence below 0 (data on the other side) is a p of 1 whatever its size: exp(-evidence)
    # overflows past 709, which a quiet lane's design effect (budget / noise SD) reaches
    sequential = min(1.0, math.exp(-max(evidence, 0.0)) / (1 - final))
    return min(sequential, fixed_p / final) if final > 0 else sequential


class SequentialTimed:
    """The sequential decision for the timed KPIs of one lane: after every round, `look()`;
    sample on while `open`. Every rule of the timed verdict is here, so the paired runner,
    the comparator (which replays the looks on the stored pairs) and the benchmark agree.

    - Each KPI is two sequential t-tests on its per-pair log ratios, both at the budget line
      c = ln(1 + max_increase_pct/100): "slower than c" and "within c". Their evidence is
      valid at every look (`sequential_t_evidence`), so taking a pair and looking again
      costs no error rate, and its running maximum gives an anytime-valid p.
    - Holm inside: the "slower" p-values of all the family's KPIs are Holm-corrected at every
      look, at `alpha` (this lane's share of the run's level); only KPIs still undecided after
      correction keep the lane sampling.
    - A KPI past the corrected line is a provisional fail: it gets `confirm_pairs` fresh pairs
      (even past max_pairs) and stands only if those pairs alone are slower than the yellow
      line and all pairs together still pass Holm; otherwise it samples on, and a later
      provisional fail gets fresh pairs of its own. Each KPI confirms on its own.
    - "within c" at `beta` decides pass (or a "slower" yellow: significantly slower than the
      base at the lane's alpha over its KPIs, and reaching the yellow line, still within the
      budget); half of beta is kept for the fixed-sample look at max_pairs (module docstring).
    - At max_pairs an undecided KPI is an "inconclusive" yellow that names its noise and, when
      the lane's noise needs more pairs for its KPIs than it has, the pairs it needs.
    """

    def __init__(self, policies: dict[str, TimedPolicy], alpha: float | None = None) -> None:
        if not policies:
            raise ValueError("a sequential run needs at least one timed KPI")
        self.tracks = {kpi: _Track(policy) for kpi, policy in policies.items()}
        self.alpha = alpha if alpha is not None else min(p.alpha for p in policies.values())
        self.most = max(p.max_pairs for p in policies.values())

    @property
    def open(self) -> bool:
        return any(t.decision is None for t in self.tracks.values())

    def look(self, samples: Mapping[str, tuple[Sequence[float], Sequence[float]]], rounds: int) -> None:
        """After a round: `samples` holds each testable KPI's (head, base) so far; `rounds` the
        rounds run (a KPI still without testable pairs at its first look is given up on)."""
        looked: dict[str, list[float]] = {}
        for kpi, track in self.tracks.items():
            if track.decision is not None:
                continue
            if kpi not in samples:
                # no testable pairs at the first look (a zero time, a missing metric): more pairs
                # cannot make a ratio of a zero testable, so this KPI never holds the lane up
                if rounds >= track.policy.pairs:
                    track.decision = _untestable(track.policy, rounds)
                continue
            x = log_ratios(*samples[kpi])
            if len(x) < track.policy.pairs:
                continue
            track.update(x)
            looked[kpi] = x
        order = list(self.tracks)
        adjusted = dict(zip(order, holm([self.tracks[k].p for k in order])))
        for kpi, x in looked.items():
            self._step(kpi, self.tracks[kpi], x, adjusted, order)

    def _step(self, kpi: str, track: _Track, x: list[float], adjusted: dict[str, float], order: list[str]) -> None:
        policy, n = track.policy, len(x)
        if track.confirm_from is not None:
            if n - track.confirm_from < policy.confirm_pairs:
                return
            fresh = x[track.confirm_from:]
            if statistics.fmean(fresh) > math.log(policy.yellow_line) and self._still_rejected(kpi, order):
                track.decision = _decide(policy, x, "fail", adjusted[kpi], len(fresh))
                return
            track.confirm_from = None
            if n >= policy.max_pairs:
                track.decision = _decide(policy, x, "unconfirmed", adjusted[kpi], len(fresh))
                return
        if adjusted[kpi] <= self.alpha:
            if n <= policy.max_pairs:
                track.confirm_from = n
            else:
                track.decision = _decide(policy, x, "unconfirmed", adjusted[kpi], 0)
        elif track.p_within <= policy.beta:
            track.decision = _decide(policy, x, "pass", adjusted[kpi], 0,
                                     slower_level=min(policy.alpha, self.alpha) / len(self.tracks))
        elif n >= policy.max_pairs:
            track.decision = _decide(policy, x, "inconclusive", adjusted[kpi], 0, kpis=len(self.tracks))

    def _still_rejected(self, kpi: str, order: list[str]) -> bool:
        """Holm on all pairs as they stand now: the KPI's current evidence, not its best look."""
        now = [self.tracks[k].p_now if k == kpi else self.tracks[k].p for k in order]
        return holm(now)[order.index(kpi)] <= self.alpha

    def decisions(self) -> dict[str, TimedDecision]:
        """Every KPI's decision; one still open (the lane stopped early: a failed run, an
        interrupt) is inconclusive on the pairs it has."""
        out: dict[str, TimedDecision] = {}
        order = list(self.tracks)
        adjusted = dict(zip(order, holm([self.tracks[k].p for k in order])))
        for kpi, track in self.tracks.items():
            if track.decision is not None:
                out[kpi] = track.decision
            elif track.last is not None:
                out[kpi] = _decide(track.policy, track.last, "inconclusive", adjusted[kpi], 0, stopped=True,
                                   kpis=len(self.tracks))
        return out


def _t_quantile(q: float, df: float) -> float:
    """The t with P(T > t) = q, by bisection on `t_sf`."""
    lo, hi = -1e3, 1e3
    for _ in range(80):
        mid = (lo + hi) / 2
        if t_sf(mid, df) > q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _interval(policy: TimedPolicy, x: list[float], alpha: float | None = None) -> tuple[float, float]:
    """The log-ratio interval of the values the decision rules cannot reject: the sequential
    test's bounds at its share of alpha / beta, tightened from max_pairs on by the fixed-sample
    t interval at the rest. So a fail always shows a lower bound past the fail line and a pass
    an upper bound under it. `alpha`: the lower bound's level (default the policy's)."""
    final, pass_final = policy.final_share, policy.pass_final_share
    alpha = policy.alpha if alpha is None else alpha
    low = _bound(x, policy.effect, (1 - final) * alpha, upper=False)
    high = _bound(x, policy.effect, (1 - pass_final) * policy.beta, upper=True)
    if len(x) >= policy.max_pairs:
        mean, se = statistics.fmean(x), statistics.stdev(x) / math.sqrt(len(x))
        if final > 0:
            low = max(low, mean - _t_quantile(final * alpha, len(x) - 1) * se)
        if pass_final > 0:
            high = min(high, mean + _t_quantile(pass_final * policy.beta, len(x) - 1) * se)
    return low, high


def _decide(policy: TimedPolicy, x: list[float], kind: Kind, p: float, fresh: int, stopped: bool = False,
            kpis: int = 1, slower_level: float | None = None) -> TimedDecision:
    """The decision of one KPI. `kpis`: the timed KPIs of its lane (the noise plan's family);
    `slower_level`: the level at which "slower than the base" turns a pass into a yellow, the
    lane's alpha over its KPIs (Bonferroni: over 40 unchanged KPIs, a per-KPI 5 % would call
    one of them "slower" in a good share of runs)."""
    n = len(x)
    low, high = (_ratio_of(v) for v in _interval(policy, x))
    ratio = _ratio_of(statistics.fmean(x))
    allowed = f"{fmt.number(policy.max_increase_pct)}%"
    yellow = f"{fmt.number(policy.yellow_fraction * policy.max_increase_pct)}%"
    if kind == "pass" and low > 1 and high >= policy.yellow_line:
        level = policy.alpha if slower_level is None else slower_level
        if level >= policy.alpha or _interval(policy, x, level)[0] > 0:
            kind = "slower"
    if kind == "fail":
        why = f"slower by more than the {allowed} allowed, held up on {fmt.plural(fresh, 'fresh pair')}"
    elif kind == "slower":
        why = f"slower: within the {allowed} allowed, but the CI reaches the {yellow} yellow line"
    elif kind == "pass":
        why = "slower, but within the yellow line" if low > 1 else f"within the {allowed} allowed"
    elif kind == "unconfirmed":
        why = (f"a slowdown past the {allowed} allowed did not hold up on fresh pairs within {n} pairs: "
               "the lane's noise changes within a run; raise max_pairs or gate on instructions")
    else:
        sd = statistics.stdev(x) if n > 1 else policy.sd
        limit = noise_limit(sd, policy, kpis)
        what = "sampling stopped early" if stopped else "gave up"
        if limit:
            advice = limit
        elif ratio >= policy.yellow_line:
            advice = f"the change is close to the {allowed} allowed; raise max_pairs for a sharper answer"
        else:
            advice = (f"noise SD {fmt.number(sd * 100, sig=2)}% usually settles a {allowed} budget within "
                      f"{fmt.plural(policy.max_pairs, 'pair')}: an unlucky run; run it again or raise max_pairs")
        why = f"{what}: cannot tell a slowdown past the {allowed} allowed from noise within {fmt.plural(n, 'pair')}; {advice}"
    reason = (f"head/base ratio {fmt.number(ratio)} ({fmt.number((1 - policy.alpha - policy.beta) * 100)}% CI "
              f"{fmt.number(low)}–{fmt.number(high)}), {fmt.p_value(p)} for more than {allowed}, "
              f"over {fmt.plural(n, 'pair')}: {why}")
    return TimedDecision(status=KIND_STATUS[kind], kind=kind, conclusive=not stopped, p_value=p,
                         ci_low=low, ci_high=high, ratio=ratio, pairs=n, reason=reason)


def _untestable(policy: TimedPolicy, rounds: int) -> TimedDecision:
    return TimedDecision(status="yellow", kind="inconclusive", conclusive=True, p_value=1.0, ci_low=0.0,
                         ci_high=math.inf, ratio=math.nan, pairs=0,
                         reason=f"no testable pairs in {fmt.plural(rounds, 'round')} (zero or missing values)")


def decide_timed(head: Sequence[float], base: Sequence[float], policy: TimedPolicy) -> TimedDecision:
    """One KPI on its own, looked at after every pair from `policy.pairs` on: the decision a
    lane with this KPI alone would reach on these pairs (its sampler would have stopped there)."""
    run = SequentialTimed({"kpi": policy})
    for n in range(1, len(head) + 1):
        run.look({"kpi": (head[:n], base[:n])}, n)
        if not run.open:
            break
    return run.decisions()["kpi"]


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


# --------------------------------------------------------------------------- counted verdicts


class CountedDecision(Struct, frozen=True):
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
