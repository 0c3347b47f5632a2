"""The timed sampler: after each interleaved round, does a lane need another pair?

One implementation (`stats.SequentialTimed`), driven three ways: the paired runner asks
`RunSampler.more()` after every round (through `samplers_for`), the comparator replays the
same looks on the stored pairs (`replay`) so the verdict is the one the sampler stopped on,
and bench/decision_quality.py drives it on recorded noise (`run_sequential`).

The family of the run's timed KPIs is split across lanes before sampling: a lane gets
alpha x (its timed KPIs / the run's), and Holm runs inside each lane. Bonferroni across lanes
keeps the whole run's family-wise rate at alpha while each lane is decided when it runs,
without waiting for lanes that have not run yet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from molt_budget.compare import stats
from molt_budget.compare.model import DEFAULT_TIMED_MAX_INCREASE_PCT as DEFAULT_TIMED_MAX_INCREASE_PCT
from molt_budget.config.model import Config, Kpi, Lane
from molt_budget.results.model import LaneResult, RunResults
from molt_budget.results.noise import MAIN_RECORDS, NoiseEstimate, NoiseStore, estimate
from molt_budget.structs import Struct

# (lane, metric) -> per-pair log-ratio SD: the lanes' noise model (results.noise)
Noise = Mapping[tuple[str, str], float]


def timed_values(kpi: Kpi, base: RunResults, head: RunResults, rounds: int | None = None) -> tuple[list[float], list[float]]:
    """(base, head) paired by sample index (the i-th base sample ran next to the i-th head one),
    oriented so that bigger is worse: swapped for higher-is-better KPIs. `rounds`: only the
    pairs of the first `rounds` rounds (what the sampler saw after that round)."""
    b = _by_index(base.lanes.get(kpi.lane), kpi.metric)
    h = _by_index(head.lanes.get(kpi.lane), kpi.metric)
    common = sorted(i for i in set(b) & set(h) if rounds is None or i < rounds)
    pair = [b[i] for i in common], [h[i] for i in common]
    return (pair[1], pair[0]) if kpi.direction == "higher" else pair


def _by_index(lane: LaneResult | None, metric: str) -> dict[int, float]:
    if lane is None:
        return {}
    return {s.index: s.metrics[metric] for s in lane.measured() if metric in s.metrics}


def ratio_testable(b: Sequence[float], h: Sequence[float]) -> bool:
    """Ratios need positive times: a phase that is 0 on a cache hit has no relative change."""
    return len(b) >= 2 and min(b) > 0 and min(h) > 0


def timed_policy(kpi: Kpi, noise: Noise | None = None) -> stats.TimedPolicy:
    return stats.TimedPolicy(
        max_increase_pct=kpi.max_increase_pct or DEFAULT_TIMED_MAX_INCREASE_PCT,
        yellow_fraction=kpi.yellow_fraction, pairs=kpi.pairs, max_pairs=kpi.max_pairs,
        noise_sd=(noise or {}).get((kpi.lane, kpi.metric)),
    )


def timed_kpis(config: Config, lanes: Iterable[str]) -> list[Kpi]:
    wanted = set(lanes)
    return [k for k in config.kpis.values() if k.kpi_class == "timed" and k.lane in wanted]


def lane_test(config: Config, lane: str, lanes: Iterable[str], noise: Noise | None = None) -> stats.SequentialTimed | None:
    """A fresh sequential test for one lane's timed KPIs, at the lane's share of the run's alpha;
    None when the lane has none."""
    family = timed_kpis(config, lanes)
    mine = [k for k in family if k.lane == lane]
    if not mine:
        return None
    policies = {k.id: timed_policy(k, noise) for k in mine}
    alpha = min(p.alpha for p in policies.values()) * len(mine) / len(family)
    return stats.SequentialTimed(policies, alpha=alpha)


def _samples(kpis: list[Kpi], base: RunResults, head: RunResults, rounds: int | None = None) -> dict[str, tuple[list[float], list[float]]]:
    out = {}
    for kpi in kpis:
        b, h = timed_values(kpi, base, head, rounds)
        if ratio_testable(b, h):
            out[kpi.id] = (h, b)
    return out


class RunSampler:
    """`SequentialTimed` over the runner's results: what `runner.paired` asks after each round."""

    def __init__(self, config: Config, lane: Lane, test: stats.SequentialTimed) -> None:
        self.kpis = [k for k in config.kpis_for_lane(lane.id) if k.kpi_class == "timed"]
        self.test = test
        self.most = test.most

    def more(self, base: RunResults, head: RunResults, rounds: int) -> bool:
        self.test.look(_samples(self.kpis, base, head), rounds)
        return self.test.open


def samplers_for(config: Config, lanes: Iterable[str], noise: Noise | None = None) -> Callable[[Lane], RunSampler | None]:
    """The paired runner's hook: a fresh sampler per lane run, None for a lane without timed KPIs.
    `lanes`: every lane of the run (the family Holm and the alpha split are over)."""
    run_lanes = list(lanes)

    def make(lane: Lane) -> RunSampler | None:
        test = lane_test(config, lane.id, run_lanes, noise)
        return RunSampler(config, lane, test) if test is not None else None

    return make


def replay(config: Config, lanes: Iterable[str], base: RunResults, head: RunResults,
           noise: Noise | None = None) -> dict[str, stats.TimedDecision]:
    """The decision the sampler reached on each timed KPI, from the stored pairs: the same looks,
    round by round, so a verdict never differs from the one the run stopped on."""
    run_lanes = list(lanes)
    out: dict[str, stats.TimedDecision] = {}
    for lane in run_lanes:
        test = lane_test(config, lane, run_lanes, noise)
        if test is None:
            continue
        kpis = [k for k in config.kpis_for_lane(lane) if k.kpi_class == "timed"]
        both = [{s.index for s in side.lanes[lane].measured()} if side.lanes.get(lane) is not None else set()
                for side in (base, head)]
        for rounds in range(1, max(both[0] & both[1], default=-1) + 2):
            test.look(_samples(kpis, base, head, rounds), rounds)
            if not test.open:
                break
        out.update(test.decisions())
    return out


def run_sequential(measure_round: Callable[[], Mapping[str, tuple[float, float]]],
                   policies: Mapping[str, stats.TimedPolicy],
                   alpha: float | None = None) -> tuple[int, dict[str, stats.TimedDecision]]:
    """Drive the sequential test the way the paired runner does, on rounds from `measure_round()`
    ({kpi: (head, base)} for one interleaved round). Returns (rounds, decision per KPI)."""
    test = stats.SequentialTimed(dict(policies), alpha=alpha)
    series: dict[str, tuple[list[float], list[float]]] = {kpi: ([], []) for kpi in policies}
    rounds = 0
    while test.open:
        for kpi, (h, b) in measure_round().items():
            series[kpi][0].append(h)
            series[kpi][1].append(b)
        rounds += 1
        test.look({k: v for k, v in series.items() if v[0]}, rounds)
    return rounds, test.decisions()


# --------------------------------------------------------------------------- the lanes' noise model


class NoiseWarning(Struct, frozen=True):
    """A timed KPI whose lane's recorded noise cannot resolve its budget within max_pairs."""

    kpi: str
    lane: str
    sd: float
    needed: int
    max_pairs: int
    message: str


def load_noise(config: Config, lanes: Iterable[str]) -> dict[tuple[str, str], float]:
    """The noise model of the run's timed KPIs from the history database (nothing if there is
    none): its lane_noise records and the A/A pairs in main's latest records (results.noise)."""
    from molt_budget.results.history import History

    path = config.resolve(config.settings.history)
    if not path.is_file():
        return {}
    history = History(path, config.settings.main_branch)
    try:
        mains = [r for r in (history.get(row.run_id) for row in history.runs(MAIN_RECORDS, main_only=True)) if r]
    finally:
        history.close()
    return NoiseStore(path).model(((k.lane, k.metric) for k in timed_kpis(config, lanes)), mains)


def lane_kpi_count(config: Config, lane: str) -> int:
    """The timed KPIs of a lane: the family its noise plan is for (a lane waits for its slowest KPI)."""
    return len(timed_kpis(config, [lane]))


def noise_warnings(config: Config, lanes: Iterable[str], noise: Noise) -> list[NoiseWarning]:
    """What `validate` and `check` say up front: each timed KPI whose lane is too noisy for its
    budget, with all the lane's timed KPIs to decide (stats.plan_pairs)."""
    out = []
    for kpi in timed_kpis(config, lanes):
        sd = noise.get((kpi.lane, kpi.metric))
        if sd is None:
            continue
        policy, family = timed_policy(kpi, noise), lane_kpi_count(config, kpi.lane)
        limit = stats.noise_limit(sd, policy, family)
        if limit is not None:
            out.append(NoiseWarning(kpi=kpi.id, lane=kpi.lane, sd=sd, needed=stats.plan_pairs(sd, policy, family),
                                    max_pairs=policy.max_pairs, message=f"{kpi.lane}: {kpi.id}: {limit}"))
    return out


def measured_noise(config: Config, lanes: Iterable[str], base: RunResults, head: RunResults, source: str,
                   metrics: Mapping[str, Sequence[str]] | None = None) -> list[NoiseEstimate]:
    """Each lane metric's noise in an interleaved run: the spread of its per-pair log ratios around
    their mean (`metrics`: lane -> metrics to measure; default the lanes' timed KPIs' metrics)."""
    wanted: dict[tuple[str, str], Kpi | None] = {}
    for lane in lanes:
        names = metrics.get(lane, []) if metrics is not None else [k.metric for k in timed_kpis(config, [lane])]
        for metric in names:
            wanted[(lane, metric)] = None
    out = []
    for lane, metric in wanted:
        probe = Kpi(id=f"{lane}.{metric}", lane=lane, metric=metric, kpi_class="timed")
        b, h = timed_values(probe, base, head)
        if not ratio_testable(b, h):
            continue
        found = estimate(lane, metric, stats.log_ratios(h, b), source, commit=head.provenance.get("commit"),
                         host=_host(head))
        if found is not None:
            out.append(found)
    return out


def record_noise(config: Config, estimates: Sequence[NoiseEstimate]) -> None:
    if estimates:
        NoiseStore(config.resolve(config.settings.history)).record(estimates)


def _host(results: RunResults) -> str | None:
    host = results.provenance.get("host")
    if isinstance(host, dict):
        return str(host.get("hostname") or host.get("cpu_model") or "") or None
    return None
