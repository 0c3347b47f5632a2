"""Measure base and head in one run on one machine: interleaved A B A B … for timed lanes.

Interleaving puts both sides through the same slow and fast phases of a noisy host, so
the per-pair ratio is far steadier than either side alone; the order inside a pair
alternates (A B, B A, …) so neither side always runs second.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from molt_budget.config.model import Config, Lane
from molt_budget.results.model import RunResults
from molt_budget.runner.engine import Engine, Interrupted, RunOptions
from molt_budget.structs import Struct


class Sampler(Protocol):
    """When a lane's timed KPIs have enough pairs (compare.sampler implements it; the runner
    only asks, so it never judges)."""

    most: int           # the planned cap, for progress ("repeat 7/20")

    def more(self, base: RunResults, head: RunResults, rounds: int) -> bool: ...


# a fresh sampler per lane run; None: the lane has no timed KPIs (it runs `repeats` rounds)
SamplerFor = Callable[[Lane], "Sampler | None"]


class PairedRun(Struct):
    head: RunResults
    base: RunResults
    head_results_path: str
    base_results_path: str


def run_paired(head_config: Config, base_config: Config, head_options: RunOptions, base_options: RunOptions,
               lanes: list[str], sampler_for: SamplerFor) -> PairedRun:
    head, base = Engine(head_config, head_options), Engine(base_config, base_options)
    head.open()
    try:
        base.open()
    except BaseException:
        head.close()
        raise
    try:
        for lane_id in lanes:
            _run_lane(head, base, lane_id, sampler_for)
    except (KeyboardInterrupt, Interrupted):
        try:
            base.abort()
        except Interrupted:
            pass
        head.abort()
    except BaseException:
        base.close(state="interrupted")
        head.close(state="interrupted")
        raise
    # close in reverse order of opening: each restores the SIGTERM handler it replaced
    base_results = base.close()
    head_results = head.close()
    return PairedRun(head_results, base_results, str(head.results_path), str(base.results_path))


def _run_lane(head: Engine, base: Engine, lane_id: str, sampler_for: SamplerFor) -> None:
    h_lane, b_lane = head.config.lanes[lane_id], base.config.lanes[lane_id]
    sampler = sampler_for(h_lane)
    base_ok = base.prepare_lane(b_lane)
    head_ok = head.prepare_lane(h_lane)
    i = 0
    if base_ok and head_ok and sampler is not None:
        while True:
            base_ok, head_ok = _round(base, b_lane, head, h_lane, i, sampler.most)
            i += 1
            if not (base_ok and head_ok) or not sampler.more(base.results, head.results, i):
                break
    elif base_ok and head_ok:
        while i < h_lane.repeats:
            base_ok, head_ok = _round(base, b_lane, head, h_lane, i, None)
            i += 1
            if not (base_ok and head_ok):
                break
    if head_ok and not base_ok:
        # The base is broken (a PR that fixes main, say): the head is still judged on its budgets.
        while i < h_lane.repeats and head.measure_once(h_lane, i).ok:
            i += 1
    base.finish_lane(b_lane)
    head.finish_lane(h_lane)


def _round(base: Engine, b_lane: Lane, head: Engine, h_lane: Lane, i: int, total: int | None) -> tuple[bool, bool]:
    """One pair, in alternating order (A B, B A, …) so that whatever favours the second run
    of a pair (warm page cache, CPU frequency ramp) does not favour one side. Both sides run
    even when the other failed: a broken base must not hide the head."""
    ok = {}
    order = [("base", base, b_lane), ("head", head, h_lane)] if i % 2 == 0 else [("head", head, h_lane), ("base", base, b_lane)]
    for side, engine, lane in order:
        ok[side] = engine.results.lanes[lane.id].status != "error" and engine.measure_once(lane, i, total=total).ok
    return ok["base"], ok["head"]
