"""compare.stats against scipy as the oracle (scipy is a test-only dependency)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from molt_budget.compare import sampler, stats

scipy_stats = pytest.importorskip("scipy.stats")
np = pytest.importorskip("numpy")

ALTERNATIVES = ("greater", "less", "two-sided")
METHODS = ("exact", "asymptotic", "auto")
SIZES = range(2, 21)


def _scipy_p(x: list[float], y: list[float], alternative: str, method: str) -> tuple[float, float]:
    """scipy's U and p; when every value is the same the samples carry no evidence either way
    (U = n1*n2/2, p = 1) in the normal approximation, which scipy spells 1.0 up to 1.17 and nan
    (a zero variance) from 1.18; its exact method still counts orderings as if untied."""
    r = scipy_stats.mannwhitneyu(x, y, alternative=alternative, method=method)
    if len(set(x) | set(y)) == 1 and math.isnan(r.pvalue):
        return len(x) * len(y) / 2, 1.0
    return float(r.statistic), float(r.pvalue)


def test_all_tied_samples_are_no_evidence() -> None:
    for alternative in ALTERNATIVES:
        result = stats.mann_whitney_u([0.0, 0.0], [0.0, 0.0], alternative, "asymptotic")
        assert result.u == 2.0 and result.p_value == 1.0


def _assert_matches_scipy(x: list[float], y: list[float]) -> None:
    for alternative in ALTERNATIVES:
        for method in METHODS:
            u, p = _scipy_p(x, y, alternative, method)
            ours = stats.mann_whitney_u(x, y, alternative, method)
            assert ours.u == pytest.approx(u, abs=1e-12)
            assert ours.p_value == pytest.approx(p, abs=1e-9, rel=1e-9), (alternative, method, x, y)


# --------------------------------------------------------------------------- Mann-Whitney U


@pytest.mark.parametrize("n1", SIZES)
def test_mann_whitney_matches_scipy_without_ties(n1: int) -> None:
    rng = random.Random(n1)
    for n2 in SIZES:
        shift = rng.choice([0.0, 0.2, 0.6])
        x = [rng.gauss(shift, 1) for _ in range(n1)]
        y = [rng.gauss(0, 1) for _ in range(n2)]
        _assert_matches_scipy(x, y)


@pytest.mark.parametrize("n1", SIZES)
def test_mann_whitney_matches_scipy_with_ties(n1: int) -> None:
    rng = random.Random(100 + n1)
    for n2 in SIZES:
        x = [float(rng.randint(0, 4)) for _ in range(n1)]
        y = [float(rng.randint(0, 5)) for _ in range(n2)]
        _assert_matches_scipy(x, y)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 8), min_size=2, max_size=20), st.lists(st.integers(0, 8), min_size=2, max_size=20))
def test_mann_whitney_matches_scipy_on_arbitrary_integer_samples(x: list[int], y: list[int]) -> None:
    _assert_matches_scipy([float(v) for v in x], [float(v) for v in y])


def test_auto_follows_scipys_rule() -> None:
    # exact when at least one side has <= 8 values and there are no ties
    assert stats.mann_whitney_u(list(range(9)), [v + 0.5 for v in range(20)]).method == "asymptotic"
    assert stats.mann_whitney_u(list(range(8)), [v + 0.5 for v in range(20)]).method == "exact"
    assert stats.mann_whitney_u([1.0, 1.0, 2.0], [3.0, 4.0]).method == "asymptotic"


def test_exact_distribution_counts_every_ordering() -> None:
    for n1, n2 in [(2, 2), (3, 7), (8, 8), (20, 20), (1, 5)]:
        counts = stats._u_counts(n1, n2)
        assert len(counts) == n1 * n2 + 1
        assert sum(counts) == math.comb(n1 + n2, n1)
        assert counts == counts[::-1]
        assert all(c > 0 for c in counts)


@pytest.mark.parametrize("n, smallest", [(3, 0.05), (4, 0.014), (5, 0.004), (6, 0.0011), (7, 0.0003)])
def test_smallest_one_sided_p_is_one_over_comb(n: int, smallest: float) -> None:
    """peers.md §5.3: the exact test's resolution bounds how few pairs can ever be significant."""
    head = [10.0 + i for i in range(n)]
    base = [float(i) for i in range(n)]
    p = stats.mann_whitney_u(head, base, "greater", "exact").p_value
    assert p == pytest.approx(1 / math.comb(2 * n, n))
    assert p == pytest.approx(smallest, rel=0.1)


def test_greater_means_head_slower() -> None:
    slow_head = [1.3, 1.4, 1.35, 1.5, 1.45, 1.32]
    base = [1.0, 1.1, 1.05, 0.98, 1.02, 1.07]
    assert stats.mann_whitney_u(slow_head, base, "greater").p_value < 0.01
    assert stats.mann_whitney_u(slow_head, base, "less").p_value > 0.99
    assert (stats.mann_whitney_u(slow_head, base, "greater").p_value
            == stats.mann_whitney_u(base, slow_head, "less").p_value)


def test_all_equal_is_never_significant() -> None:
    same = [2.0] * 6
    assert stats.mann_whitney_u(same, same).p_value == 1.0
    assert stats.mann_whitney_u(same, same, method="asymptotic", use_continuity=False).p_value == 1.0


def test_asymptotic_without_continuity_matches_scipy() -> None:
    rng = random.Random(7)
    x = [float(rng.randint(0, 9)) for _ in range(15)]
    y = [float(rng.randint(0, 9)) for _ in range(12)]
    for alternative in ALTERNATIVES:
        want = scipy_stats.mannwhitneyu(x, y, use_continuity=False, alternative=alternative, method="asymptotic").pvalue
        got = stats.mann_whitney_u(x, y, alternative, "asymptotic", use_continuity=False).p_value
        assert got == pytest.approx(float(want), abs=1e-9)


@pytest.mark.parametrize("bad", [dict(head=[]), dict(head=[1.0, math.nan]), dict(alternative="bigger"), dict(method="perm")])
def test_mann_whitney_rejects_bad_input(bad: dict) -> None:
    args = dict(head=[1.0, 2.0], base=[1.5, 2.5], alternative="greater", method="auto") | bad
    with pytest.raises(ValueError):
        stats.mann_whitney_u(**args)


# --------------------------------------------------------------------------- bootstrap


def _noisy_pairs(rng: random.Random, n: int, slowdown: float = 1.0) -> tuple[list[float], list[float]]:
    """A shared host-phase factor per round, plus independent per-run noise."""
    head, base = [], []
    for _ in range(n):
        phase = rng.lognormvariate(0, 0.15)
        base.append(10 * phase * rng.lognormvariate(0, 0.07))
        head.append(10 * slowdown * phase * rng.lognormvariate(0, 0.07))
    return head, base


def test_bootstrap_is_reproducible() -> None:
    head, base = _noisy_pairs(random.Random(1), 10, 1.05)
    first = stats.bootstrap_median_ratio_ci(head, base)
    assert all(stats.bootstrap_median_ratio_ci(head, base) == first for _ in range(3))
    # the seed is what fixes it (few resamples, so the endpoints visibly move with the seed)
    few = stats.bootstrap_median_ratio_ci(head, base, n_resamples=50)
    assert stats.bootstrap_median_ratio_ci(head, base, n_resamples=50, seed=7) != few


def test_bootstrap_golden_values() -> None:
    """Pinned: a change here means verdicts on stored samples would change between versions."""
    head = [1.1, 1.2, 1.05, 1.3, 1.0, 1.15, 0.97, 1.22, 1.07, 1.12]
    assert stats.bootstrap_median_ratio_ci(head, [1.0] * 10) == pytest.approx((1.11, 1.05, 1.2), abs=1e-12)
    assert stats.bootstrap_median_ratio_ci(head, [1.0] * 10, n_resamples=333, confidence=0.8) == pytest.approx(
        (1.11, 1.06, 1.158), abs=1e-12)


def test_bootstrap_point_is_median_of_pair_ratios() -> None:
    head, base = _noisy_pairs(random.Random(2), 8, 1.1)
    point, low, high = stats.bootstrap_median_ratio_ci(head, base)
    assert point == pytest.approx(float(np.median(np.array(head) / np.array(base))))
    assert low <= point <= high


@pytest.mark.parametrize("seed", range(6))
def test_bootstrap_matches_scipy_percentile_paired(seed: int) -> None:
    rng = random.Random(seed)
    head, base = _noisy_pairs(rng, rng.choice([5, 8, 13, 20]), rng.choice([1.0, 1.1]))
    res = scipy_stats.bootstrap((np.array(head), np.array(base)), lambda h, b: np.median(h / b), paired=True,
                                vectorized=False, method="percentile", n_resamples=20000, random_state=seed)
    _, low, high = stats.bootstrap_median_ratio_ci(head, base, n_resamples=20000, seed=seed)
    width = high - low
    assert low == pytest.approx(res.confidence_interval.low, abs=0.1 * width + 1e-12)
    assert high == pytest.approx(res.confidence_interval.high, abs=0.1 * width + 1e-12)


def test_bootstrap_covers_the_true_median_ratio() -> None:
    """Coverage sanity: the 95% interval holds the true ratio (1.08) in roughly 95% of datasets."""
    rng = random.Random(3)
    trials = 150
    covered = 0
    for _ in range(trials):
        head, base = _noisy_pairs(rng, 15, 1.08)
        _, low, high = stats.bootstrap_median_ratio_ci(head, base, n_resamples=1000)
        covered += low <= 1.08 <= high
    assert 0.86 <= covered / trials <= 0.995


def test_pairing_cancels_shared_host_phases() -> None:
    """Why per-pair ratios: a ratio of medians keeps the phase noise that pairing removes."""
    rng = random.Random(4)
    head, base = _noisy_pairs(rng, 12)
    _, low, high = stats.bootstrap_median_ratio_ci(head, base)
    boot = []
    for _ in range(2000):
        idx = [rng.randrange(12) for _ in range(12)]
        boot.append(np.median([head[i] for i in idx]) / np.median([base[i] for i in idx]))
    unpaired_width = np.percentile(boot, 97.5) - np.percentile(boot, 2.5)
    assert high - low < unpaired_width


def test_bootstrap_degenerate_inputs() -> None:
    assert stats.bootstrap_median_ratio_ci([5.0] * 6, [5.0] * 6) == (1.0, 1.0, 1.0)
    assert stats.bootstrap_median_ratio_ci([3.0] * 4, [2.0] * 4) == (1.5, 1.5, 1.5)
    point, low, high = stats.bootstrap_median_ratio_ci([1.1, 1.3], [1.0, 1.0])
    assert point == pytest.approx(1.2)
    assert 1.1 <= low <= point <= high <= 1.3
    assert stats.bootstrap_median_ratio_ci([2.0], [1.0]) == (2.0, 2.0, 2.0)


@pytest.mark.parametrize("head, base", [([1.0, 2.0], [1.0]), ([1.0, 2.0], [0.0, 1.0]), ([], []), ([1.0, math.inf], [1.0, 1.0])])
def test_bootstrap_rejects_bad_input(head: list[float], base: list[float]) -> None:
    with pytest.raises(ValueError):
        stats.bootstrap_median_ratio_ci(head, base)


# --------------------------------------------------------------------------- Holm


def _holm_reference(p: list[float]) -> list[float]:
    """Textbook form: adjusted p_(i) = max_{j<=i} min(1, (m-j+1) p_(j)), 1-based."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    for i in range(m):
        out[order[i]] = max(min(1.0, (m - j) * p[order[j]]) for j in range(i + 1))
    return out


def test_holm_worked_example() -> None:
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([]) == []
    assert stats.holm([0.2]) == [0.2]
    assert stats.holm([0.6, 0.7]) == [1.0, 1.0]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1), max_size=30))
def test_holm_properties(p: list[float]) -> None:
    adjusted = stats.holm(p)
    assert adjusted == pytest.approx(_holm_reference(p))
    assert all(raw <= adj <= 1.0 for raw, adj in zip(p, adjusted))
    for i in range(len(p)):
        for j in range(len(p)):
            if p[i] < p[j]:
                assert adjusted[i] <= adjusted[j]


def test_holm_matches_statsmodels_if_installed() -> None:
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    rng = random.Random(5)
    for _ in range(20):
        p = [rng.random() ** 3 for _ in range(rng.randint(1, 15))]
        assert stats.holm(p) == pytest.approx(list(multitest.multipletests(p, method="holm")[1]))


def test_holm_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        stats.holm([0.1, 1.5])


# --------------------------------------------------------------------------- learned fence


def _series(deltas: list[float], start: float = 1000.0) -> list[float]:
    """Values whose consecutive relative changes are exactly `deltas` (alternating up and down)."""
    out = [start]
    for i, d in enumerate(deltas):
        out.append(out[-1] * (1 + d if i % 2 == 0 else 1 - d))
    return out


def test_fence_needs_ten_values() -> None:
    assert stats.learned_fence([]) is None
    assert stats.learned_fence([100.0] * 9) is None
    assert stats.learned_fence([100.0] * 10) == 0.0


def test_fence_quartiles_like_rustc_perf_even_count() -> None:
    # 10 deltas: Q1 = median of the lowest 4, Q3 = median of the highest 4 (the two middle left out)
    deltas = [0.01 * k for k in range(1, 11)]
    q1, q3 = (0.02 + 0.03) / 2, (0.08 + 0.09) / 2
    assert stats.learned_fence(_series(deltas)) == pytest.approx((q3 + 3 * (q3 - q1)) * 100)


def test_fence_quartiles_like_rustc_perf_odd_count() -> None:
    # 9 deltas: Q1 = median of the lowest 4, Q3 = median of the highest 4 (the median left out)
    deltas = [0.001, 0.009, 0.002, 0.008, 0.003, 0.007, 0.004, 0.006, 0.005]
    q1, q3 = (0.002 + 0.003) / 2, (0.007 + 0.008) / 2
    assert stats.learned_fence(_series(deltas)) == pytest.approx((q3 + 3 * (q3 - q1)) * 100)


def test_fence_reproduces_rustls_bench_runner_example() -> None:
    # rustls' bench runner ports rustc-perf's fence; its unit test expects round(100 * t) == 9
    values = [100.0, 97.0, 98.0, 101.0, 100.0, 99.0, 97.0, 102.0, 99.0, 98.0]
    assert round(stats.learned_fence(values)) == 9


def test_fence_uses_the_last_thirty_values() -> None:
    quiet = _series([0.001] * 40)
    noisy_then_quiet = _series([0.05] * 20 + [0.001] * 29, start=quiet[0])
    assert stats.learned_fence(noisy_then_quiet) == pytest.approx(stats.learned_fence(quiet))
    assert stats.learned_fence(noisy_then_quiet, window=60) > 1.0


def test_fence_is_scale_free() -> None:
    rng = random.Random(6)
    values = [1e9 * rng.uniform(0.99, 1.01) for _ in range(25)]
    assert stats.learned_fence(values) == pytest.approx(stats.learned_fence([v / 1e6 for v in values]))


def test_fence_rejects_non_positive_values() -> None:
    with pytest.raises(ValueError):
        stats.learned_fence([100.0] * 10 + [0.0])


# --------------------------------------------------------------------------- timed decisions

POLICY = stats.TimedPolicy(max_increase_pct=10)


def _pairs(ratios: list[float], base: float = 10.0) -> tuple[list[float], list[float]]:
    """Heads at the given ratios over base timings that drift slightly (no ties)."""
    bases = [base * (1 + 0.001 * i) for i in range(len(ratios))]
    return [b * r for b, r in zip(bases, ratios)], bases


def test_policy_lines_and_validation() -> None:
    assert POLICY.fail_line == pytest.approx(1.10)
    assert POLICY.yellow_line == pytest.approx(1.05)
    for bad in [dict(max_increase_pct=0), dict(yellow_fraction=0), dict(alpha=1.0), dict(pairs=1), dict(pairs=30)]:
        with pytest.raises(ValueError):
            stats.TimedPolicy(**(dict(max_increase_pct=10) | bad))


def test_clear_slowdown_fails() -> None:
    head, base = _pairs([1.50, 1.48, 1.52, 1.49, 1.51, 1.50, 1.47, 1.53])
    d = stats.decide_timed(head, base, POLICY)
    assert (d.status, d.conclusive, d.pairs) == ("fail", True, 8)
    assert d.p_value < 0.001 and d.ci_low > 1.1
    assert d.reason.startswith("head/base median ratio 1.")
    assert "over 8 pairs: slower by more than the 10% allowed" in d.reason


def test_no_change_passes() -> None:
    head, base = _pairs([1.01, 0.99, 1.00, 1.02, 0.98, 1.01, 0.99, 1.00])
    d = stats.decide_timed(head, base, POLICY)
    assert (d.status, d.conclusive) == ("pass", True)
    assert "no significant slowdown" in d.reason


def test_significant_slowdown_near_yellow_line_is_yellow() -> None:
    # every head slower than every base (significant), per-pair ratios 1.05-1.08: past yellow, short of fail
    head, base = _pairs([1.05, 1.08, 1.06, 1.07, 1.05, 1.08, 1.06, 1.07, 1.06, 1.07])
    d = stats.decide_timed(head, base, POLICY)
    assert d.p_value < 0.05 and 1.05 <= d.ci_high <= 1.1
    assert (d.status, d.conclusive) == ("yellow", True), d.reason
    assert "reaches the 5% yellow line" in d.reason


def test_significant_but_tiny_slowdown_passes() -> None:
    head, base = _pairs([1.01, 1.02, 1.015, 1.012, 1.018, 1.011, 1.016, 1.014, 1.013, 1.017])
    d = stats.decide_timed(head, base, POLICY)
    assert d.p_value < 0.05 and d.ci_high < 1.05
    assert (d.status, d.conclusive) == ("pass", True)
    assert "within the 5% yellow line" in d.reason


def test_straddling_the_fail_line_asks_for_more_then_resolves_yellow() -> None:
    head, base = _pairs([1.02, 1.18, 1.05, 1.15, 1.08, 1.12])
    d = stats.decide_timed(head, base, POLICY)
    assert d.p_value < 0.05 and d.ci_low <= 1.1 < d.ci_high
    assert (d.status, d.conclusive) == ("yellow", False)
    assert "needs more pairs" in d.reason
    at_limit = stats.decide_timed(head, base, stats.TimedPolicy(max_increase_pct=10, pairs=6, max_pairs=6))
    assert (at_limit.status, at_limit.conclusive) == ("yellow", True)
    assert "cannot rule out" in at_limit.reason


def test_underpowered_no_significance_asks_for_more() -> None:
    head, base = _pairs([1.3, 0.8, 1.25, 0.85, 1.2, 0.9])
    d = stats.decide_timed(head, base, POLICY)
    assert d.p_value >= 0.05 and d.ci_high > 1.1
    assert (d.status, d.conclusive) == ("yellow", False)


def test_holm_adjusted_p_replaces_the_raw_one() -> None:
    head, base = _pairs([1.50, 1.48, 1.52, 1.49, 1.51, 1.50, 1.47, 1.53])
    raw = stats.decide_timed(head, base, POLICY)
    adjusted = stats.decide_timed(head, base, POLICY, alpha_adjusted_p=0.2)
    assert raw.status == "fail"
    assert adjusted.p_value == 0.2 and adjusted.status != "fail"
    assert "(Holm-adjusted)" in adjusted.reason
    assert (adjusted.ci_low, adjusted.ci_high, adjusted.ratio) == (raw.ci_low, raw.ci_high, raw.ratio)


def test_timed_ties_use_the_asymptotic_test() -> None:
    head = [12.0, 13.0, 12.0, 13.0, 12.0, 13.0]      # whole seconds: ties everywhere
    base = [10.0, 10.0, 11.0, 10.0, 10.0, 11.0]
    d = stats.decide_timed(head, base, POLICY)
    want = scipy_stats.mannwhitneyu(head, base, alternative="greater", method="asymptotic").pvalue
    assert d.p_value == pytest.approx(float(want), abs=1e-12)


def test_timed_is_reproducible_and_validates() -> None:
    head, base = _noisy_pairs(random.Random(10), 9, 1.1)
    assert stats.decide_timed(head, base, POLICY) == stats.decide_timed(head, base, POLICY)
    with pytest.raises(ValueError):
        stats.decide_timed(head, base[:-1], POLICY)
    with pytest.raises(ValueError):
        stats.decide_timed(head[:1], base[:1], POLICY)


def test_next_action() -> None:
    fail_head, fail_base = _pairs([1.50, 1.48, 1.52, 1.49, 1.51, 1.50, 1.47, 1.53])
    assert stats.next_action(fail_head, fail_base, POLICY)[0] == "confirm"
    assert stats.next_action(fail_head, fail_base, POLICY, confirmed=True)[0] == "done"
    pass_head, pass_base = _pairs([1.01, 0.99, 1.00, 1.02, 0.98, 1.01, 0.99, 1.00])
    assert stats.next_action(pass_head, pass_base, POLICY)[0] == "done"
    head, base = _pairs([1.3, 0.8, 1.25, 0.85, 1.2, 0.9])
    assert stats.next_action(head, base, POLICY)[0] == "more"


def _rounds(rng: random.Random, slowdown: float):
    def measure() -> tuple[float, float]:
        phase = rng.lognormvariate(0, 0.1)
        return 10 * slowdown * phase * rng.lognormvariate(0, 0.07), 10 * phase * rng.lognormvariate(0, 0.07)
    return measure


def _sequential(rounds, policy: stats.TimedPolicy) -> stats.TimedDecision:
    _, decisions = sampler.run_sequential(lambda: {"k": rounds()}, {"k": policy})
    return decisions["k"]


def test_run_sequential_confirms_a_fail_and_stops_early_on_a_pass() -> None:
    d = _sequential(_rounds(random.Random(11), 1.5), POLICY)
    assert d.status == "fail" and d.pairs == POLICY.pairs + 1   # the confirming round
    d = _sequential(_rounds(random.Random(12), 1.0), POLICY)
    assert d.status == "pass" and POLICY.pairs <= d.pairs <= POLICY.max_pairs


def test_run_sequential_confirms_past_max_pairs() -> None:
    policy = stats.TimedPolicy(max_increase_pct=10, pairs=6, max_pairs=6)
    d = _sequential(_rounds(random.Random(13), 1.5), policy)
    assert d.status == "fail" and d.pairs == 7


# --------------------------------------------------------------------------- counted decisions


def test_counted_within_noise_passes() -> None:
    d = stats.decide_counted(1_003_000, 1_000_000, floor_pct=0.5, fence=None, max_increase_pct=2)
    assert (d.status, d.threshold_pct) == ("pass", 0.5)
    assert d.delta_pct == pytest.approx(0.3)
    assert "within noise" in d.reason


def test_counted_learned_fence_raises_the_threshold() -> None:
    d = stats.decide_counted(1_008_000, 1_000_000, floor_pct=0.5, fence=1.2, max_increase_pct=2)
    assert (d.status, d.threshold_pct) == ("pass", 1.2)
    assert "learned fence" in d.reason
    d = stats.decide_counted(1_008_000, 1_000_000, floor_pct=0.5, fence=0.1, max_increase_pct=2)
    assert d.threshold_pct == 0.5 and "floor" in d.reason


@pytest.mark.parametrize("head, status", [(1_030_000, "fail"), (1_015_000, "yellow"), (1_008_000, "pass"), (970_000, "pass")])
def test_counted_against_the_budget(head: float, status: str) -> None:
    d = stats.decide_counted(head, 1_000_000, floor_pct=0.5, fence=None, max_increase_pct=2, yellow_fraction=0.5)
    assert d.status == status, d.reason


def test_counted_without_budget_flags_real_increases_yellow() -> None:
    assert stats.decide_counted(1_010_000, 1_000_000, 0.5, None).status == "yellow"
    assert stats.decide_counted(1_004_000, 1_000_000, 0.5, None).status == "pass"
    assert stats.decide_counted(1_000_000, 1_000_000, 0.0, None).status == "pass"


def test_counted_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        stats.decide_counted(1.0, 0.0, 0.5, None)
    with pytest.raises(ValueError):
        stats.decide_counted(1.0, 1.0, -0.5, None)
