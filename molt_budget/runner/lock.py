"""One run at a time per output root: an exclusive flock on `<output root>/.lock`, with a timeout.

flock, not a lock file's existence: the kernel drops the lock when the holder's descriptor
closes, so a run that is killed (SIGKILL, OOM, a cancelled CI job) never leaves a stale lock
behind, and nothing has to guess whether an old lock file's owner is alive. The descriptor
is not inherited (Python opens files close-on-exec), so a build's daemon that outlives its
run cannot hold the lock either. (filelock did this at ~20 ms of imports a check.)
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

_POLL_S = 0.05


class LockHeld(Exception):
    """Another process held the lock for the whole timeout."""


class RootLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, timeout_s: float) -> None:
        """Block up to `timeout_s` for the lock; LockHeld when it stays taken, OSError when the
        lock file cannot be opened."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockHeld(str(self.path)) from None
                    time.sleep(min(_POLL_S, max(0.0, deadline - time.monotonic())))
                else:
                    self._fd = fd
                    return
        except BaseException:       # timed out, or Ctrl-C while waiting: the descriptor goes too
            os.close(fd)
            raise

    def release(self) -> None:
        """Closing the descriptor drops the lock; a second release does nothing."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
