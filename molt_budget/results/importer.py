"""Import molt's compile_progress.json snapshots, so a team's history starts with its past."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

from molt_budget.collectors.compile_progress import load_compile_progress
from molt_budget.errors import ConfigError
from molt_budget.results.model import Attempt, LaneResult, RunResults, Sample


def import_compile_progress(path: Path) -> RunResults:
    """One snapshot → one run: each case a lane with one measured sample, timestamps and retries kept.

    A snapshot without `meta.timestamp_utc` is dated by the file's modification time (UTC), and
    the run's provenance says so; two cases with the same name are refused (one would hide the other).
    """
    progress = load_compile_progress(path)
    seen: set[str] = set()
    for case in progress.results:
        if case.name in seen:
            raise ConfigError(f"{path}: case {case.name!r} appears twice in one snapshot: not importable "
                              "(each case becomes one lane of the run)")
        seen.add(case.name)
    meta = progress.meta
    stamp = str(meta.get("timestamp_utc") or "")
    provenance_extra: dict[str, str] = {}
    if not stamp:
        mtime = Path(path).stat().st_mtime
        stamp = datetime.fromtimestamp(mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        provenance_extra["timestamp_source"] = "file mtime: the snapshot has no meta.timestamp_utc"
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    # the snapshot's second plus its digest: two snapshots of the same second stay two runs,
    # and importing the same file twice replaces it instead of adding a copy
    run_id = "compile-progress-" + "".join(ch for ch in stamp[:19] if ch.isalnum()) + "-" + digest[:8]
    results = RunResults(
        run_id=run_id,
        config_path=str(path),
        config_sha256=digest,
        started_utc=stamp,
        finished_utc=stamp,
        state="complete",
        provenance={"source": "compile_progress.json", "imported_from": str(path), "meta": meta, "commit": None,
                    **provenance_extra},
        authoritative=False,
        authoritative_reasons=["imported from molt's compile_progress.json (no quiescence record)"],
    )
    for case in progress.results:
        metrics: dict[str, float] = {}
        if case.elapsed_sec is not None:
            metrics["wall_s"] = float(case.elapsed_sec)
        if case.diagnostics_total_sec is not None:
            metrics["diag.total_sec"] = float(case.diagnostics_total_sec)
        phases = case.diagnostics_phase_sec or {}
        metrics.update({f"diag.phase.{k}": float(v) for k, v in phases.items()})
        if phases:
            metrics["diag.backend_sec"] = round(sum(float(v) for k, v in phases.items() if k.startswith("backend_")), 6)
        ok = case.returncode == 0 and not case.timed_out
        error = None if ok else f"returncode {case.returncode}" + (" (timed out)" if case.timed_out else "")
        sample = Sample(
            kind="measure", index=0, ok=ok, error=error, attempts=case.attempts, retry_reason=case.retry_reason,
            attempt_log=[Attempt(attempt=case.attempts, returncode=case.returncode, wall_s=float(case.elapsed_sec or 0.0), timed_out=case.timed_out)],
            returncode=case.returncode, timed_out=case.timed_out, cache_state=case.cache_state,
            metrics=metrics if ok else {}, stdout_tail=case.stdout_tail or "", stderr_tail=case.stderr_tail or "",
        )
        results.lanes[case.name] = LaneResult(lane=case.name, status="ok" if ok else "error", error=error, samples=[sample])
    return results
