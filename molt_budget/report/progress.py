"""Progress while lanes run: a live status line on a terminal, plain lines in CI.

On a pipe (CI logs) every event is exactly one `event.plain()` line and nothing else: no
carriage returns, no escape codes, so logs stay greppable. On a terminal the same lines
scroll by and one status line under them is rewritten in place (`\\r` + erase line) with
what runs now, for how long, and an estimate from history (the lane's median wall time),
so a 15-minute cold build does not look hung. Call `close()` (or use `with`) before
printing anything else: it erases the status line and stops the ticker.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from molt_budget import fmt
from molt_budget.runner.events import ProgressEvent
from molt_budget.structs import Struct

CLEAR = "\r\x1b[2K"
PHASE_WORD = {"prime": "prime", "warmup": "warm-up", "measure": "repeat"}


def make_progress(stream: TextIO | None = None, *, tty: bool | None = None, history: Any = None,
                  quiet: bool = False, interval_s: float = 0.5) -> Progress:
    """The engine's `options.progress`: live on a terminal, plain lines otherwise, nothing if quiet.

    `tty=None` asks the stream (and treats TERM=dumb as not a terminal); `history` is a
    results.history.History used for "~Ns left" (None: no estimates). Every variant has
    `close()`, so callers can always close in a `finally`.
    """
    if quiet:
        return Silent()
    stream = stream if stream is not None else sys.stderr
    if tty is None:
        tty = _isatty(stream) and os.environ.get("TERM") != "dumb"
    return LiveProgress(stream, history, interval_s) if tty else Progress(stream)


class Progress:
    """Plain mode: one line per event, exactly `event.plain()`."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._broken = False

    def __call__(self, event: ProgressEvent) -> None:
        self._write(event.plain() + "\n")

    def close(self) -> None:
        self._write("")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, text: str) -> None:
        """A closed stderr must not abort a measurement run: stop writing instead."""
        if self._broken:
            return
        try:
            if text:
                self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self._broken = True


class Silent(Progress):
    """`--quiet`: events are dropped."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def __call__(self, event: ProgressEvent) -> None:
        pass

    def close(self) -> None:
        pass


class _Step(Struct):
    """What is running now, as far as the events tell."""

    lane: str
    phase: str = ""                    # prime | warmup | measure | "" (between steps)
    index: int = 0
    total: int = 0
    attempt: int = 1
    estimate_of: str = ""              # the lane whose history predicts this step
    since: float = 0.0
    side: str = ""                     # base | head (paired runs)
    lane_pos: int = 0
    lanes: int = 0
    capped: bool = False               # `total` is the most pairs, not a plan
    waiting: str = ""                  # waiting for a quiet host: what for


class LiveProgress(Progress):
    """Terminal mode: event lines scroll, one status line is redrawn by a ticker thread."""

    def __init__(self, stream: TextIO, history: Any = None, interval_s: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(stream)
        self.history = history
        self.interval_s = interval_s
        self.clock = clock
        self.started = clock()
        self.step: _Step | None = None
        self._estimates: dict[str, float | None] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            if self._closed:
                return
            self._advance(event)
            line = "" if event.kind == "start" else event.plain() + "\n"   # a start only moves the status line
            self._write(CLEAR + line + self.status_line())
        if self._thread is None:
            self._thread = threading.Thread(target=self._tick, name="molt-budget-progress", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Erase the status line (the cursor ends at column 0 of an empty line) and stop ticking."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            self._write(CLEAR)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)

    # -- state -----------------------------------------------------------------------------

    def _advance(self, e: ProgressEvent) -> None:
        now = self.clock()
        if e.kind == "waiting_quiet" and e.lane:
            self.step = _Step(e.lane, "", since=now, waiting=e.message, side=e.side, lane_pos=e.lane_pos, lanes=e.lanes)
        elif e.kind == "start" and e.lane:          # if the engine announces a step before it runs
            self.step = _Step(e.lane, e.phase, e.index, e.total, e.attempt or 1, self._owner(e), now,
                              e.side, e.lane_pos, e.lanes, e.capped)
        elif e.kind == "attempt" and e.lane:
            step = _Step(e.lane, e.phase, e.index, e.total, (e.attempt or 1), self._owner(e), now,
                         e.side, e.lane_pos, e.lanes, e.capped)
            if e.retry:
                step.attempt += 1
            elif e.index < e.total:
                step.index, step.attempt = e.index + 1, 1
            else:
                step.phase = ""                   # this phase is done; the engine has not said what is next
            self.step = step
        elif e.kind in ("lane_error", "lane_skipped"):
            self.step = None

    def _owner(self, e: ProgressEvent) -> str:
        """A prime runs another lane's command: that lane's history predicts it."""
        return (e.message or e.lane or "") if e.phase == "prime" else (e.lane or "")

    def _estimate(self, lane: str) -> float | None:
        if lane not in self._estimates:
            try:
                self._estimates[lane] = self.history.lane_estimate(lane) if self.history is not None else None
            except Exception:   # a missing or locked history only costs the estimate
                self._estimates[lane] = None
        return self._estimates[lane]

    # -- drawing ---------------------------------------------------------------------------

    def status_line(self) -> str:
        now = self.clock()
        parts = []
        s = self.step
        lane_of = f" (lane {s.lane_pos}/{s.lanes})" if s is not None and s.lanes > 1 else ""
        side = f"{s.side} " if s is not None and s.side else ""
        if s is None:
            parts.append("waiting for the next lane")
        elif s.waiting:
            parts.append(f"{s.lane}{lane_of}: waiting for a quiet host ({s.waiting}) {fmt.duration(now - s.since)}")
        elif not s.phase:
            parts.append(f"{side}{s.lane}{lane_of}: next step")
        else:
            word = PHASE_WORD.get(s.phase, s.phase)
            if s.phase == "prime":
                what = f"{side}{s.lane} prime ({s.estimate_of})"
            elif s.capped:
                what = f"{side}{s.lane} pair {s.index} (max {s.total})"
            else:
                what = f"{side}{s.lane} {word} {s.index}/{s.total}"
            what += lane_of
            if s.attempt > 1:
                what += f" attempt {s.attempt}"
            running = now - s.since
            parts.append(f"{what} {fmt.duration(running)}")
            estimate = self._estimate(s.estimate_of)
            if estimate is not None:
                left = estimate * (s.total - s.index + 1) - running
                parts.append(f"~{fmt.duration(left)} left" if left > 0 else f"over the usual {fmt.duration(estimate)}")
        line = f"[molt-budget] > {', '.join(parts)} | run {fmt.duration(now - self.started)}"
        width = _columns(self.stream)
        return line if len(line) < width else line[: max(width - 4, 1)] + "..."

    def _tick(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
                if self._closed:
                    return
                self._write(CLEAR + self.status_line())


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (AttributeError, OSError, ValueError):
        return 80
