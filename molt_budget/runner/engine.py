"""Run the lanes of a budgets file: prime, warm-ups, repeats, retries, snapshots, resume.

Every sample is journalled beside results.json as soon as it is measured (one fsync'd
line, results/store.py), so an interrupted or crashed run loses nothing and `--resume`
picks up where it stopped.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from molt_budget.collectors.base import Detail, RunFiles, merged_detail
from molt_budget.collectors.collect import LaneCollectors
from molt_budget.config.model import Config, Lane
from molt_budget.environment import fault
from molt_budget.errors import ConfigError, EnvironmentFault, LockTimeout, MeasurementError
from molt_budget.results.model import Attempt, KpiResult, LaneResult, RunResults, Sample
from molt_budget.results.store import Journal, load_results, save_results
from molt_budget.runner import signals, templating
from molt_budget.runner.events import ProgressEvent
from molt_budget.runner.lock import LockHeld, RootLock
from molt_budget.runner.process import (
    ProcessOutcome,
    direct_children,
    kill_marked,
    run_process,
)
from molt_budget.runner.retry import retry_reason
from molt_budget.runner.signals import Interrupted
from molt_budget.structs import Struct, field

if TYPE_CHECKING:
    from molt_budget.runner.quiescence import CpuMeter, Reading

MARKER_VAR = "MOLT_BUDGET_RUN_ID"
Progress = Callable[[ProgressEvent], None]


Judge = Callable[[Config, RunResults, "set[str]"], "list[KpiResult]"]


class RunOptions(Struct):
    output_root: Path
    lanes: list[str] | None = None          # None: every lane
    resume: Path | None = None              # a run dir (or results.json) to continue
    clean_state: bool = False
    quiescence: bool = True
    resumable: bool = True                  # False for paired runs: both sides start over
    progress: Progress = field(default=lambda line: None)
    # Budget verdicts recorded in the results file. The runner never judges: the caller passes
    # compare.budget.judge_results (None: the results carry no verdicts).
    judge: Judge | None = None
    label: str = ""                         # `base` / `head` in a paired run: shown on every progress event
    cpu_since: Reading | None = None        # the command's start: the quiet-host meter's first window


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    """Sorts in start order (milliseconds), unique (random suffix): history lists rely on both."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z-" + os.urandom(3).hex()


class Engine:
    def __init__(self, config: Config, options: RunOptions) -> None:
        self.config = config
        self.options = options
        self.root = options.output_root
        self.selected = self._select(options.lanes)
        self._ran_lane = False
        self._host_busy = False
        self._cpu_meter: CpuMeter | None = None
        self._collectors: dict[tuple[str, str], LaneCollectors] = {}
        self._made_dirs: set[Path] = set()
        self._detail_parts: dict[str, list[Callable[[], Detail]]] = {}   # a lane's first measured sample's
        # the environment every lane's runs start from, read once: os.environ decodes every
        # variable on each copy, and the gate sets none of its own while it runs
        self._base_env = {k: v for k, v in os.environ.items() if k != MARKER_VAR}
        self._roots: tuple[str, ...] | None = None
        if options.quiescence and any(self._is_timed(lane) for lane in self.selected):
            from molt_budget.runner.quiescence import CpuMeter

            # one meter for the run, started now: the first lane's check reads the window
            # since here, every later one the window since the previous check (a lane)
            self._cpu_meter = CpuMeter(options.cpu_since)

    def _select(self, names: list[str] | None) -> list[Lane]:
        if not names:
            # A lane with no KPIs that only primes others runs as their prime, not twice.
            primes = {l.prime for l in self.config.lanes.values()}
            return [l for l in self.config.lanes.values() if self.config.kpis_for_lane(l.id) or l.id not in primes]
        unknown = [n for n in names if n not in self.config.lanes]
        if unknown:
            raise ConfigError(f"unknown lane(s) {', '.join(unknown)} (lanes in {self.config.path.name}: {', '.join(self.config.lanes)})")
        return [self.config.lanes[n] for n in names]

    # -- the run ---------------------------------------------------------------------

    def run(self) -> RunResults:
        """Every selected lane, one after the other; the comparison driver uses the steps below."""
        self.open()
        try:
            for lane in self.selected:
                if self.is_done(lane):
                    continue
                if self.prepare_lane(lane):
                    for i in range(lane.repeats):
                        if not self.measure_once(lane, i).ok:
                            break
                self.finish_lane(lane)
        except (KeyboardInterrupt, Interrupted):
            self.abort()
        except BaseException:
            try:
                self.close(state="interrupted")    # a bug or an OS error: keep what was measured, free the lock
            except EnvironmentFault:
                pass                               # the disk that failed fails again: the first error says it
            raise
        return self.close()

    # -- steps: open → (prepare_lane → measure_once… → finish_lane)… → close ----------

    def open(self) -> RunResults:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise fault(exc, self.root, "create the output root") from None
        self._lock = RootLock(self.root / ".lock")
        try:
            self._lock.acquire(self.config.settings.lock_timeout_s)
        except LockHeld:
            raise LockTimeout(
                f"{self.root}: another molt-budget run holds this output root "
                f"(waited {self.config.settings.lock_timeout_s:g}s for {self.root / '.lock'}); "
                f"wait for it or pass --output-root DIR"
            ) from None
        except OSError as exc:
            raise fault(exc, self.root / ".lock", "create the lock file of the output root") from None
        try:
            if self.options.clean_state:
                self.clean_state()
            self.results, self.run_dir = self._start_or_resume()
        except BaseException:
            self._lock.release()
            raise
        self.results_path = self.run_dir / "results.json"
        self._journal = Journal(self.results_path, on_error=self._journal_fault)
        if self.options.resume is not None:
            # whole again (replaying the journal over it twice gives the same state)
            save_results(self.results_path, self.results)
            self._journal.clear()
        self.marker = (MARKER_VAR, self.results.run_id)
        self._lane_children = direct_children()
        signals.install()
        return self.results

    def is_done(self, lane: Lane) -> bool:
        """A lane finished by an earlier, resumed run is kept as it is."""
        current = self.results.lanes.get(lane.id)
        # "ok" with no measured sample is a damaged or forged results file: measure it again
        if current is not None and current.status == "ok" and current.measured():
            self._emit(ProgressEvent("lane_skipped", lane=lane.id))
            return True
        return False

    def prepare_lane(self, lane: Lane) -> bool:
        """Quiescence check, prime chain and warm-ups; False (lane marked error) if any failed."""
        self.results.lanes[lane.id] = LaneResult(lane=lane.id)
        self._journal.lane_started(lane.id)
        if self._is_timed(lane) and self.options.quiescence:
            self._check_quiescence(lane, self.results)
        self._ran_lane = True
        try:
            for prime in self._prime_chain(lane):
                self._append(lane, self._run_sample(prime, lane, "prime", 0), f"prime lane {prime.id} failed")
            for i in range(lane.warmups):
                self._append(lane, self._run_sample(lane, lane, "warmup", i), f"warm-up {i + 1}/{lane.warmups}")
        except MeasurementError as exc:
            self._lane_error(lane, str(exc))
            return False
        return True

    def measure_once(self, lane: Lane, index: int, total: int | None = None) -> Sample:
        """One measured sample (with retries), snapshotted at once; a failed one fails the lane."""
        sample = self._run_sample(lane, lane, "measure", index, total=total)
        try:
            self._append(lane, sample, f"repeat {index + 1}/{total or lane.repeats}")
        except MeasurementError as exc:
            self._lane_error(lane, str(exc))
        return sample

    def finish_lane(self, lane: Lane) -> None:
        lane_result = self.results.lanes[lane.id]
        self._read_detail(lane, lane_result)
        if lane_result.status == "pending":
            if lane_result.measured():
                lane_result.status = "ok"
            else:
                lane_result.status, lane_result.error = "error", "no sample was measured"
        kill_marked(self.marker, adopted_since=self._lane_children)
        self._lane_children = direct_children()
        self._journal.lane_state(lane_result, with_detail=True)

    def _read_detail(self, lane: Lane, lane_result: LaneResult) -> None:
        """The diff's detail, read once a lane from its first measured sample; a payload whose
        tables are malformed fails the lane as a malformed value would have failed the sample."""
        parts = self._detail_parts.pop(lane.id, None)
        if not parts or lane_result.status == "error":
            return
        try:
            lane_result.detail = merged_detail(parts)
        except _READ_FAILURES as exc:
            lane_result.status, lane_result.error = "error", _read_failure(lane, exc)
            self._emit(ProgressEvent("lane_error", lane=lane.id, message=lane_result.error))

    def abort(self) -> None:
        """Interrupted: kill the run's processes, keep every sample measured so far, say how to resume.

        Later signals are ignored meanwhile (runner/signals.py): the hint and exit 130 survive them."""
        kill_marked(self.marker, adopted_since=self._lane_children)
        self._end("interrupted")
        hint = f"continue with --resume {self.run_dir}" if self.options.resumable else "run the check again"
        raise Interrupted(f"interrupted; measured samples are kept in {self.results_path} ({hint})") from None

    def close(self, state: str = "complete") -> RunResults:
        if self.options.judge is not None:
            self.results.kpis = self.options.judge(self.config, self.results, {lane.id for lane in self.selected})
        self._end(state)
        return self.results

    def _end(self, state: str) -> None:
        """The run's last write: whole and atomic, then the journal it replaces goes, then the lock."""
        self.results.state = state
        self.results.finished_utc = utc_now()
        try:
            self._snapshot(self.results)
            self._journal.clear()
        finally:
            self._release()

    def _journal_fault(self, exc: OSError, path: Path) -> Exception:
        return fault(exc, path, "keep the measured sample",
                     f"the samples before it are kept in {self.results_path}: continue with --resume {self.run_dir}")

    def _release(self) -> None:
        signals.release()
        self._lock.release()

    def _append(self, lane: Lane, sample: Sample, what: str) -> None:
        self.results.lanes[lane.id].samples.append(sample)
        self._journal.sample(lane.id, sample)
        if not sample.ok:
            raise MeasurementError(f"{what}: {sample.error}")

    def _lane_error(self, lane: Lane, message: str) -> None:
        lane_result = self.results.lanes[lane.id]
        lane_result.status = "error"
        lane_result.error = message
        self._emit(ProgressEvent("lane_error", lane=lane.id, message=message))
        self._journal.lane_state(lane_result, with_detail=True)

    def _start_or_resume(self) -> tuple[RunResults, Path]:
        resume = self.options.resume
        if resume is not None:
            path = resume if resume.name == "results.json" else resume / "results.json"
            if not path.exists():
                raise ConfigError(f"{path}: nothing to resume (no results.json there)")
            results = load_results(path)
            digest = hashlib.sha256(self.config.path.read_bytes()).hexdigest()
            if results.config_sha256 != digest:
                raise ConfigError(f"{path}: {self.config.path.name} changed since this run started; "
                                  f"its samples would not match the budgets: start a new run")
            from molt_budget.runner.provenance import collect_provenance

            now = collect_provenance(self.config.root, {})
            then = results.provenance
            if (now.get("commit"), now.get("dirty")) != (then.get("commit"), then.get("dirty")):
                raise ConfigError(f"{path}: measured at commit {str(then.get('commit'))[:12]} (dirty={then.get('dirty')}), "
                                  f"now {str(now.get('commit'))[:12]} (dirty={now.get('dirty')}): start a new run")
            results.state = "running"
            self._emit(ProgressEvent("resume", message=f"resume run={results.run_id}"))
            return results, path.parent
        run_id = new_run_id()
        run_dir = self.root / "runs" / run_id
        try:
            run_dir.mkdir(parents=True)
        except OSError as exc:
            raise fault(exc, run_dir, "create the run folder") from None
        from molt_budget.runner.provenance import collect_provenance

        results = RunResults(
            run_id=run_id,
            config_path=str(self.config.path),
            config_sha256=hashlib.sha256(self.config.path.read_bytes()).hexdigest(),
            started_utc=utc_now(),
            provenance=collect_provenance(self.config.root, self.config.settings.provenance_tools),
        )
        try:
            save_results(run_dir / "results.json", results)
        except OSError as exc:
            raise fault(exc, run_dir / "results.json", "save the results") from None
        return results, run_dir

    def clean_state(self) -> None:
        """Wipe caches (cold again), never results or logs."""
        shutil.rmtree(self.root / "cache", ignore_errors=True)

    # -- one lane -------------------------------------------------------------------

    def _snapshot(self, results: RunResults) -> None:
        """Every sample is saved at once; a failed write keeps the last good snapshot (atomic
        replace), so the error says how to continue from it."""
        try:
            save_results(self.results_path, results, self._journal.encoded, self._journal.tables)
        except OSError as exc:
            hint = f"samples measured so far are kept: continue with --resume {self.run_dir}" if self.options.resumable \
                else "run the check again"
            raise fault(exc, self.results_path, "save the results", hint) from None

    def _is_timed(self, lane: Lane) -> bool:
        return any(k.kpi_class == "timed" for k in self.config.kpis_for_lane(lane.id))

    def _prime_chain(self, lane: Lane) -> list[Lane]:
        chain: list[Lane] = []
        current = lane
        while current.prime is not None:
            current = self.config.lanes[current.prime]
            chain.insert(0, current)
        return chain

    def _emit(self, event: ProgressEvent) -> None:
        """Every event says which side it is (paired runs) and where this lane is in the run."""
        event.side = self.options.label
        ids = [l.id for l in self.selected]
        if event.lane in ids:
            event.lane_pos, event.lanes = ids.index(event.lane) + 1, len(ids)
        self.options.progress(event)

    def _check_quiescence(self, lane: Lane, results: RunResults) -> None:
        from molt_budget.runner.quiescence import wait_for_quiescence

        q = self.config.settings.quiescence
        wait = 0.0 if self._host_busy else q.max_wait_s
        if wait > 0:
            self._emit(ProgressEvent("waiting_quiet", lane=lane.id, total=int(wait), message=f"up to {wait:g}s"))
        # load1 lags a minute behind our own builds: trust it only before the first lane;
        # once the host was found busy, do not wait again for every following lane.
        report = wait_for_quiescence(
            max_wait_s=wait, poll_s=q.poll_s,
            competitor_names=tuple(q.competitors), max_load_per_cpu=q.max_load_per_cpu,
            check_load=not self._ran_lane, meter=self._cpu_meter,
        )
        if not report.quiet:
            self._host_busy = True
            reason = f"lane {lane.id}: host not quiet after {report.waited_s:.0f}s: {'; '.join(report.reasons)}"
            results.authoritative = False
            results.authoritative_reasons.append(reason)
            self._journal.authority(results)
            self._emit(ProgressEvent("not_quiet", lane=lane.id, message=reason))

    # -- one sample, with retries -----------------------------------------------------

    def _run_sample(self, spec: Lane, owner: Lane, kind: str, index: int, total: int | None = None) -> Sample:
        """Run `spec`'s command in `owner`'s cache (they differ only for a prime)."""
        cache_dir = self.root / "cache" / owner.cache
        if owner.cache_state == "cold" and kind != "prime":
            shutil.rmtree(cache_dir, ignore_errors=True)
            self._made_dirs.discard(cache_dir)
        self._make_dir(cache_dir)
        sample = Sample(kind=kind, index=index, ok=False, attempts=0)
        collectors = self._lane_collectors(spec, owner)
        capped = kind == "measure" and total is not None      # the sampler's cap: pairs stop once decided
        total = total or {"prime": 1, "warmup": owner.warmups, "measure": owner.repeats}[kind]
        for attempt in range(1, spec.retries + 2):
            sample.attempts = attempt
            attempt_dir = self._fresh_attempt_dir(owner, f"{kind}-{index + 1}-attempt-{attempt}")
            values = self._placeholders(spec, owner, attempt_dir, cache_dir)
            env = self._env(spec, values)
            files = self._files(spec, values, attempt_dir)
            try:
                command = collectors.prepare(kind, templating.expand_command(spec.command, values), env, files)
            except MeasurementError as exc:
                sample.error = f"lane {owner.id}: {exc}"
                return sample
            outcome = run_process(
                command, env=env, cwd=files.cwd, timeout_s=spec.timeout_s,
                marker=self.marker, stdout_path=files.stdout_path, stderr_path=files.stderr_path,
            )
            reason = retry_reason(outcome, files.stderr_path, spec.lock_timeout_pattern)
            retrying = reason is not None and attempt <= spec.retries
            sample.attempt_log.append(Attempt(
                attempt=attempt, returncode=outcome.returncode, wall_s=round(outcome.wall_s, 6), timed_out=outcome.timed_out,
                retry_reason=reason if retrying else None,
                stdout_log=str(files.stdout_path), stderr_log=str(files.stderr_path),
            ))
            if reason is not None:
                sample.retry_reason = reason
            self._emit(ProgressEvent(
                "attempt", lane=owner.id, phase=kind, index=index + 1, total=total, attempt=attempt,
                elapsed_s=outcome.wall_s, rc=outcome.returncode, retry=reason if retrying else None,
                message=spec.id if kind == "prime" else "", capped=capped,
            ))
            if not retrying:
                break
            time.sleep(spec.retry_backoff_s * attempt)
        self._finish_sample(sample, spec, owner, outcome, files, collectors, kind)
        return sample

    def _make_dir(self, path: Path) -> None:
        """A folder of the run, made once a run (with its parents): a mkdir costs a build's
        filesystem 0.3-1 ms of kernel time on ext4, most of what a sample's bookkeeping spends there."""
        if path not in self._made_dirs:
            path.mkdir(parents=True, exist_ok=True)
            self._made_dirs.add(path)

    def _fresh_attempt_dir(self, owner: Lane, name: str) -> Path:
        """An empty folder for one attempt, one level under the lane's (one mkdir an attempt);
        one left by an interrupted run that is resumed is emptied first."""
        lane_dir = self.run_dir / "lanes" / owner.id
        self._make_dir(lane_dir)
        attempt_dir = lane_dir / name
        try:
            attempt_dir.mkdir()
        except FileExistsError:
            shutil.rmtree(attempt_dir)
            attempt_dir.mkdir()
        except FileNotFoundError:               # the lane's folder went away meanwhile: made again
            self._made_dirs.discard(lane_dir)
            attempt_dir.mkdir(parents=True)
        return attempt_dir

    def _lane_collectors(self, spec: Lane, owner: Lane) -> LaneCollectors:
        """The collectors of `spec`'s runs for `owner`'s KPIs (they differ only for a prime)."""
        key = (spec.id, owner.id)
        if key not in self._collectors:
            self._collectors[key] = LaneCollectors(spec, self.config.kpis_for_lane(owner.id))
        return self._collectors[key]

    def _files(self, spec: Lane, values: dict[str, str], attempt_dir: Path) -> RunFiles:
        cwd = self.config.resolve(templating.expand(spec.cwd, values))
        ir_path = Path(templating.expand(spec.emit_ir, values)) if spec.emit_ir else None
        if ir_path is not None and not ir_path.is_absolute():
            ir_path = cwd / ir_path
        return RunFiles(
            attempt_dir=attempt_dir, cwd=cwd, stdout_path=attempt_dir / "stdout.log", stderr_path=attempt_dir / "stderr.log",
            diagnostics_path=Path(values["diagnostics_file"]), ir_path=ir_path, normalize_roots=self._normalize_roots(),
        )

    def _finish_sample(self, sample: Sample, spec: Lane, owner: Lane, outcome: ProcessOutcome, files: RunFiles,
                       collectors: LaneCollectors, kind: str) -> None:
        sample.returncode = outcome.returncode
        sample.timed_out = outcome.timed_out
        sample.stdout_tail, sample.stderr_tail = outcome.stdout_tail, outcome.stderr_tail
        sample.cache_state = collectors.read_back(files).get("cache_state", "n/a")
        attempts = f" after {sample.attempts} attempt(s)" if sample.attempts > 1 else ""
        if outcome.start_error:
            sample.error = f"lane {spec.id}: cannot start command: {outcome.start_error}"
            return
        if outcome.timed_out:
            sample.error = f"lane {spec.id}: timed out after {spec.timeout_s:g}s{attempts}"
            return
        if outcome.returncode not in spec.expect_exit:
            last = _last_line(outcome.stderr_tail) or _last_line(outcome.stdout_tail)
            sample.error = (f"lane {spec.id}: exit code {outcome.returncode} (expected {', '.join(map(str, spec.expect_exit))}){attempts}"
                            + (f": {last}" if last else "") + f" [log: {files.stderr_path}]")
            return
        if kind == "measure" and owner.expect_cache and sample.cache_state != owner.expect_cache:
            sample.error = (f"lane {owner.id}: expected a cache {owner.expect_cache}, the build reported "
                            f"'{sample.cache_state}': not a {('warm' if owner.expect_cache == 'hit' else 'cold')} result")
            return
        if kind != "measure":
            sample.ok = True
            return
        first = owner.id not in self._detail_parts      # the lane's first measured sample carries its detail
        try:
            sample.metrics, detail_parts = collectors.collect(outcome, files, detail=first)
        except _READ_FAILURES as exc:
            sample.error = _read_failure(owner, exc)
            return
        bad = next(((m, v) for m, v in sample.metrics.items() if not _in_range(v)), None)
        if bad is not None:
            sample.metrics = {}
            sample.error = f"lane {owner.id}: metric {bad[0]} is {bad[1]!r}, not a finite number in range"
            return
        if first:
            self._detail_parts[owner.id] = detail_parts
        sample.ok = True

    def _placeholders(self, spec: Lane, owner: Lane, attempt_dir: Path, cache_dir: Path) -> dict[str, str]:
        values = templating.base_values()
        values.update(
            config_dir=str(self.config.root), run_dir=str(self.run_dir), lane=owner.id,
            lane_dir=str(self.run_dir / "lanes" / owner.id), attempt_dir=str(attempt_dir), cache_dir=str(cache_dir),
            diagnostics_file=str(attempt_dir / "diagnostics.json"),
        )
        values["emit_ir"] = templating.expand(spec.emit_ir, values) if spec.emit_ir else str(attempt_dir / "ir.json")
        return values

    def _env(self, spec: Lane, values: dict[str, str]) -> dict[str, str]:
        env = dict(self._base_env)
        for key, value in spec.env.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = templating.expand(value, values)
        return env

    def _normalize_roots(self) -> tuple[str, ...]:
        """The paths a build's output is normalised against, longest first (resolved once a run)."""
        if self._roots is None:
            roots = [str(self.config.resolve(p)) for p in self.config.settings.normalize_paths]
            roots += [str(self.config.root), str(self.root.resolve())]
            self._roots = tuple(sorted(set(roots), key=len, reverse=True))
        return self._roots


# what reading a build's output may raise: a collector's own error, or a value no collector foresaw
_READ_FAILURES = (MeasurementError, ArithmeticError, ValueError, RecursionError, MemoryError)


def _read_failure(lane: Lane, exc: BaseException) -> str:
    """One line for the lane; its sample (or its detail) fails, the other lanes still run."""
    if isinstance(exc, MeasurementError):
        return f"lane {lane.id}: {exc}"
    return f"lane {lane.id}: could not read the build's output: {type(exc).__name__}: {exc}"[:500]


def _in_range(value: object) -> bool:
    from molt_budget.bounded import InputError, check_number

    try:
        check_number(value, "value")
    except InputError:
        return False
    return True


def _last_line(text: str) -> str:
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    return lines[-1][:300] if lines else ""
