"""The timed sampler: after each interleaved round, does a lane need another pair?

One implementation, driven by two loops: the paired runner (`runner.paired`, through
`samplers_for(config)`) and bench/decision_quality.py (through `run_sequential`). Both
ask `LaneSampler.more()` after every round, so the benchmark measures the rules that ship.
The statistics themselves live in `compare.stats`; this module only keeps the state of one
lane's sequential run (how many rounds, which KPI waits for its confirming round).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from molt_budget.compare import stats
from molt_budget.compare.comparator import ratio_testable, timed_policy, timed_values
from molt_budget.config.model import Config, Lane
from molt_budget.results.model import RunResults

# KPI id -> (head, base) timings, paired by index, bigger is worse
Samples = Mapping[str, tuple[Sequence[float], Sequence[float]]]


class LaneSampler:
    """The sequential decision for the timed KPIs of one lane run.

    `first` rounds run before the first look; then `more(samples, rounds)` after every round.
    Rules (those of `stats.next_action`): sample on while any KPI is inconclusive and the lane
    is below `most` rounds; a fail gets one confirming round (even past `most`), after which a
    fail stands and anything else samples on as before.
    """

    def __init__(self, policies: Mapping[str, stats.TimedPolicy]) -> None:
        if not policies:
            raise ValueError("a lane sampler needs at least one timed KPI")
        self.policies = dict(policies)
        self.first = max(p.pairs for p in self.policies.values())
        self.most = max(p.max_pairs for p in self.policies.values())
        self.confirmed = False

    def more(self, samples: Samples, rounds: int) -> bool:
        """True: run another round. `samples` holds the KPIs that can be tested (>= 2 positive pairs)."""
        if rounds < self.first:
            return True
        actions = [stats.next_action(head, base, self.policies[kpi], self.confirmed)[0]
                   for kpi, (head, base) in samples.items()]
        action = "more" if "more" in actions else "confirm" if "confirm" in actions else "done"
        stop = action == "done" or (action == "more" and rounds >= self.most) or (action == "confirm" and self.confirmed)
        self.confirmed = action == "confirm"
        return not stop


class RunSampler:
    """`LaneSampler` over the runner's results: what `runner.paired` calls after each round."""

    def __init__(self, config: Config, lane: Lane) -> None:
        self.kpis = [k for k in config.kpis_for_lane(lane.id) if k.kpi_class == "timed"]
        self.lane = LaneSampler({k.id: timed_policy(k) for k in self.kpis})
        self.first, self.most = self.lane.first, self.lane.most

    def more(self, base: RunResults, head: RunResults, rounds: int) -> bool:
        samples = {}
        for kpi in self.kpis:
            b, h = timed_values(kpi, base, head)
            if ratio_testable(b, h):
                samples[kpi.id] = (h, b)
        return self.lane.more(samples, rounds)


def samplers_for(config: Config) -> Callable[[Lane], RunSampler | None]:
    """The paired runner's hook: a fresh sampler per lane run, None for a lane without timed KPIs."""
    def make(lane: Lane) -> RunSampler | None:
        if not any(k.kpi_class == "timed" for k in config.kpis_for_lane(lane.id)):
            return None
        return RunSampler(config, lane)

    return make


def run_sequential(measure_round: Callable[[], Mapping[str, tuple[float, float]]],
                   policies: Mapping[str, stats.TimedPolicy]) -> tuple[int, dict[str, stats.TimedDecision]]:
    """Drive a `LaneSampler` the way the paired runner does, on rounds from `measure_round()`
    ({kpi: (head, base)} for one interleaved round). Returns (rounds, final decision per KPI)."""
    sampler = LaneSampler(policies)
    series: dict[str, tuple[list[float], list[float]]] = {kpi: ([], []) for kpi in policies}
    rounds = 0
    while True:
        for kpi, (h, b) in measure_round().items():
            series[kpi][0].append(h)
            series[kpi][1].append(b)
        rounds += 1
        if not sampler.more(series, rounds):
            break
    return rounds, {kpi: stats.decide_timed(h, b, policies[kpi]) for kpi, (h, b) in series.items()}
