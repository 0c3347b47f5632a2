"""Progress events the engine emits; reporters render them (plain lines in CI, live on a TTY)."""

from __future__ import annotations

from molt_budget.structs import Struct


class ProgressEvent(Struct):
    kind: str                        # resume | lane_skipped | attempt | lane_error | waiting_quiet | not_quiet | wrote | noise
    lane: str | None = None
    phase: str = ""                  # prime | warmup | measure
    index: int = 0                   # 1-based repeat / warm-up number
    total: int = 0
    attempt: int | None = None
    elapsed_s: float | None = None
    rc: int | None = None
    retry: str | None = None
    message: str = ""
    side: str = ""                   # base | head in a paired run, "" otherwise
    lane_pos: int = 0                # this lane's place among the lanes to run (1-based), 0 unknown
    lanes: int = 0
    capped: bool = False             # `total` is a cap (timed pairs stop when decided), not a plan

    def plain(self) -> str:
        """One line, no control characters: `[molt-budget] lane=dev_warm repeat=2/5 elapsed=6.12s rc=0`."""
        parts = ["[molt-budget]"]
        if self.side:
            parts.append(f"side={self.side}")
        if self.lane:
            parts.append(f"lane={self.lane}")
        if self.kind == "attempt":
            name = {"prime": "prime", "warmup": "warmup", "measure": "repeat"}.get(self.phase, self.phase)
            if self.phase == "prime":
                parts.append(f"{name}={self.message}")
            elif self.capped:
                parts.append(f"pair={self.index} max={self.total}")
            else:
                parts.append(f"{name}={self.index}/{self.total}")
            if self.attempt and self.attempt > 1:
                parts.append(f"attempt={self.attempt}")
            parts.append(f"elapsed={self.elapsed_s:.2f}s rc={self.rc}")
            if self.retry:
                parts.append(f"retry={self.retry}")
        elif self.kind == "lane_skipped":
            parts.append("skipped=resume")
        elif self.kind == "lane_error":
            parts.append(f"error={_one_line(self.message)}")
        elif self.kind == "waiting_quiet":
            parts.append(f"waiting for a quiet host: {_one_line(self.message)}")
        elif self.kind == "not_quiet":
            parts.append(f"authoritative=false reason={_one_line(self.message)}")
        else:
            parts.append(_one_line(self.message))
        return "".join(ch for ch in " ".join(parts) if ch.isprintable())


def _one_line(text: str) -> str:
    return " ".join(text.split())
