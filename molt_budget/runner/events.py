"""Progress events the engine emits; reporters render them (plain lines in CI, live on a TTY)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ProgressEvent:
    kind: str                        # resume | lane_skipped | attempt | lane_error | not_quiet | wrote | noise
    lane: str | None = None
    phase: str = ""                  # prime | warmup | measure
    index: int = 0                   # 1-based repeat / warm-up number
    total: int = 0
    attempt: int | None = None
    elapsed_s: float | None = None
    rc: int | None = None
    retry: str | None = None
    message: str = ""

    def plain(self) -> str:
        """One line, no control characters: `[molt-budget] lane=dev_warm repeat=2/5 elapsed=6.12s rc=0`."""
        parts = ["[molt-budget]"]
        if self.lane:
            parts.append(f"lane={self.lane}")
        if self.kind == "attempt":
            name = {"prime": "prime", "warmup": "warmup", "measure": "repeat"}.get(self.phase, self.phase)
            parts.append(f"{name}={self.message}" if self.phase == "prime" else f"{name}={self.index}/{self.total}")
            if self.attempt and self.attempt > 1:
                parts.append(f"attempt={self.attempt}")
            parts.append(f"elapsed={self.elapsed_s:.2f}s rc={self.rc}")
            if self.retry:
                parts.append(f"retry={self.retry}")
        elif self.kind == "lane_skipped":
            parts.append("skipped=resume")
        elif self.kind == "lane_error":
            parts.append(f"error={_one_line(self.message)}")
        elif self.kind == "not_quiet":
            parts.append(f"authoritative=false reason={_one_line(self.message)}")
        else:
            parts.append(_one_line(self.message))
        return "".join(ch for ch in " ".join(parts) if ch.isprintable())


def _one_line(text: str) -> str:
    return " ".join(text.split())
