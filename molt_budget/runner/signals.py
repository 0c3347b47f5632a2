"""SIGINT and SIGTERM while measuring: one `Interrupted`, however many signals follow.

Why: CI cancels a job with SIGTERM and often again shortly after; a user presses Ctrl-C
twice. The first signal stops the run; the runner then kills the lane's processes, saves
the samples and says how to resume. A second signal during that must neither interrupt
the clean-up (the hint would be lost) nor kill the process with the default action
(exit -15 instead of 130). So the handler raises once and ignores every later signal
until `restore()`, which the CLI calls after the hint is printed (and which keeps them
ignored when the command is on its way out with 130).

Engines nest (a paired run opens a base and a head engine): `install`/`release` count.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from molt_budget.errors import BudgetError

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_NAMES: dict[int, str] = {signal.SIGINT: "interrupted (SIGINT)", signal.SIGTERM: "terminated (SIGTERM)"}

_depth = 0
_fired = False
_saved: dict[int, Any] = {}


class Interrupted(BudgetError):
    exit_code = 130


def _handler(signum: int, frame: object) -> None:
    global _fired
    if _fired:
        return                      # the first signal's clean-up is under way: let it finish
    _fired = True
    raise Interrupted(_NAMES.get(signum, f"signal {signum}"))


def install() -> None:
    """Route SIGINT/SIGTERM to one Interrupted (main thread only; elsewhere a no-op)."""
    global _depth, _fired
    if threading.current_thread() is not threading.main_thread():
        return
    if _depth == 0:
        _fired = False
        for sig in SIGNALS:
            _saved[sig] = signal.signal(sig, _handler)
    _depth += 1


def release() -> None:
    """The run is over. After an interruption later signals stay ignored until `restore()`."""
    global _depth
    if threading.current_thread() is not threading.main_thread() or _depth == 0:
        return
    _depth -= 1
    if _depth == 0 and not _fired:
        restore()


def restore() -> None:
    """Put back the handlers `install` replaced (once nothing is running).

    After an interruption the command is about to exit 130: a signal now (while the
    interpreter shuts down) must not turn that into -15 or -2, so both stay ignored.
    """
    global _fired
    if _depth or not _saved or threading.current_thread() is not threading.main_thread():
        return
    for sig, previous in list(_saved.items()):
        signal.signal(sig, signal.SIG_IGN if _fired else previous)
    _saved.clear()
    _fired = False


def interrupted() -> bool:
    """Whether a signal arrived since `install`."""
    return _fired
