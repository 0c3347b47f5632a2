"""What counts as main: the one rule deciding whether a run may stand for main.

A *main record* is a run of a commit on main's first-parent history (settings.remote_main,
else settings.main_branch, else origin/HEAD), measured on a clean tree, with every lane of
the budgets file complete, on a quiet host (authoritative). Only main records are
baselines, trend points, ratchet and noise bases, or the tracker's "Latest"; every other
run is still recorded, with the reasons it is not main so `history list` can say why.
"""

from __future__ import annotations

from pathlib import Path

from molt_budget import gitutil
from molt_budget.config.model import Config
from molt_budget.results.model import RunResults
from molt_budget.results.record import MainCheck


def main_candidates(config: Config) -> list[str]:
    """The refs tried for main, in order (origin/HEAD is added by gitutil as the last resort)."""
    settings = config.settings
    return [r for r in (settings.remote_main, settings.main_branch) if r]


def classify(config: Config, results: RunResults, repo: Path | None = None) -> MainCheck:
    """Is this run a main record? Every reason it is not, mildest last."""
    reasons = _run_reasons(config, results)
    prov = results.provenance
    commit = prov.get("commit")
    repo = repo if repo is not None else gitutil.toplevel(config.root)
    ref = None
    if repo is None:
        reasons.append("not a git checkout")
    elif commit:
        ref = gitutil.main_ref(repo, main_candidates(config))
        if ref is None:
            reasons.append(gitutil.MAIN_HINT)
        elif not gitutil.on_first_parent(repo, ref, commit):
            where = f" (branch {prov['branch']})" if prov.get("branch") else ""
            reasons.append(f"commit {commit[:12]}{where} is not on {ref}'s first-parent history")
    return MainCheck(not reasons, reasons, ref)


def _run_reasons(config: Config, results: RunResults) -> list[str]:
    """The reasons that need no git: state, tree, lanes, host."""
    reasons: list[str] = []
    prov = results.provenance
    if results.state != "complete":
        reasons.append(f"run {results.state}")
    if not prov.get("commit"):
        reasons.append("no git commit recorded")
    if prov.get("dirty") is True:
        reasons.append("uncommitted changes in the tree")
    elif prov.get("dirty") is None and prov.get("commit"):
        reasons.append("tree state unknown")
    missing = [lane for lane in config.lanes if lane not in results.lanes]
    if missing:
        reasons.append(f"lanes not run: {', '.join(missing)}")
    failed = [name for name, lane in results.lanes.items() if lane.status != "ok"]
    if failed:
        reasons.append(f"lanes not complete: {', '.join(failed)}")
    if not results.authoritative:
        why = "; ".join(results.authoritative_reasons) or "not authoritative"
        reasons.append(f"host not quiet: {why}")
    return reasons
