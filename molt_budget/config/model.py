"""The budgets file as plain typed records (molt_budget.structs), after defaults are applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from molt_budget.structs import Struct, field


class Lane(Struct):
    id: str
    command: list[str] | str
    env: dict[str, str | None]         # None unsets the variable
    cwd: str
    timeout_s: float
    repeats: int
    warmups: int
    retries: int
    retry_backoff_s: float
    expect_exit: list[int]
    lock_timeout_pattern: str
    diagnostics: bool = False
    emit_ir: str | None = None          # path template; None = no IR collected
    cache: str = ""                     # named cache dir shared by lanes with the same name
    cache_state: str | None = None      # cold | warm | no-cache
    prime: str | None = None
    expect_cache: str | None = None     # hit | miss
    pre_push: bool = False
    description: str = ""
    tags: list[str] = field(default_factory=list)
    line: int = 0                       # where the lane is declared, for error messages


class Kpi(Struct):
    id: str
    lane: str
    metric: str
    kpi_class: str                      # exact | timed
    direction: str = "lower"            # lower | higher is better
    unit: str = ""
    target: float | None = None
    limit: float | None = None
    aggregate: str = "median"
    title: str = ""
    owner: str = ""
    basis: str = ""
    justification: str = ""
    # change budgets against the baseline (compare stage)
    max_increase_pct: float | None = None
    max_increase_abs: float | None = None
    yellow_fraction: float = 0.5
    seeded_from: dict[str, Any] | None = None     # {"value", "commit", "date", "headroom_pct"}
    max_drift_pct: float | None = None
    expires: str | None = None          # YYYY-MM-DD: a temporary waiver
    pairs: int = 6                      # timed: interleaved base/head pairs to start with
    max_pairs: int = 20
    noise_floor_pct: float | None = None  # counted: smallest relative change treated as real
    updated: str = ""
    line: int = 0


class Quiescence(Struct):
    max_wait_s: float = 10.0
    poll_s: float = 1.0
    max_load_per_cpu: float = 0.5
    competitors: list[str] = field(default_factory=lambda: ["cargo", "rustc", "molt"])


class Settings(Struct):
    output_root: str = ".molt-budget"
    history: str = ".molt-budget/history.sqlite"
    main_branch: str = "main"
    lock_timeout_s: float = 10.0
    normalize_paths: list[str] = field(default_factory=list)
    provenance_tools: dict[str, list[str] | str] = field(default_factory=dict)
    quiescence: Quiescence = field(default_factory=Quiescence)
    compare_on: list[str] = field(default_factory=lambda: ["host.cpu_model", "python", "tools"])
    max_headroom_pct: float = 50.0
    remote_main: str = "origin/main"
    data_branch: str = "molt-budget-data"     # the shared history: one record file per main run
    data_remote: str = "origin"
    keep_run_dirs: int = 10             # run folders (results, logs, IR) kept under output_root/runs; 0 = all


Lines = dict[tuple[str, ...], int]      # key path in the budgets file -> its 1-based line


class Config(Struct):
    path: Path
    lanes: dict[str, Lane]
    kpis: dict[str, Kpi]
    settings: Settings
    lines: Lines = field(default_factory=dict)
    # the file's text as parsed: the budget gate reads its comments (tombstones, settings
    # notes) from it instead of reading and parsing the file again; not part of what the
    # config is (equality) nor of its repr
    text: str = ""

    def _what_it_is(self) -> tuple[tuple[str, Any], ...]:
        return tuple((name, getattr(self, name)) for name in self.__struct_fields__ if name != "text")

    def __eq__(self, other: object) -> bool:
        if type(other) is not Config:
            return NotImplemented
        return self._what_it_is() == other._what_it_is()

    def __repr__(self) -> str:
        return f"Config({', '.join(f'{name}={value!r}' for name, value in self._what_it_is())})"

    @property
    def root(self) -> Path:
        """Relative paths in the file resolve against the file's folder."""
        return self.path.parent

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.root / p).resolve()

    def line_of(self, *keys: str) -> int:
        """The closest known line for a key path (falls back to its parents)."""
        while keys:
            if keys in self.lines:
                return self.lines[keys]
            keys = keys[:-1]
        return 1

    def where(self, *keys: str) -> str:
        return f"{self.path.name}:{self.line_of(*keys)}"

    def kpis_for_lane(self, lane_id: str) -> list[Kpi]:
        return [k for k in self.kpis.values() if k.lane == lane_id]
