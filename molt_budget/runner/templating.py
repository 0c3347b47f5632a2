"""`${name}` placeholders in lane commands, env and paths.

Only the names below are replaced, so `$HOME` or `${VAR}` meant for the shell pass through.
"""

from __future__ import annotations

import re
import sys

PLACEHOLDERS = ("python", "config_dir", "run_dir", "lane", "lane_dir", "attempt_dir", "cache_dir", "emit_ir", "diagnostics_file")
_PATTERN = re.compile(r"\$\{(" + "|".join(PLACEHOLDERS) + r")\}")


def expand(text: str, values: dict[str, str]) -> str:
    return _PATTERN.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def expand_command(command: list[str] | str, values: dict[str, str]) -> list[str] | str:
    """Values go in verbatim, in a shell string too: quote them there as any shell variable,
    `"${attempt_dir}/out"` (pre-quoting would put literal quotes inside the user's own)."""
    if isinstance(command, str):
        return expand(command, values)
    return [expand(part, values) for part in command]


def base_values() -> dict[str, str]:
    return {"python": sys.executable}
