"""`${name}` placeholders in lane commands, env and paths.

Only the names below are replaced, so `$HOME` or `${VAR}` meant for the shell pass through.
"""

from __future__ import annotations

import re
import shlex
import sys

PLACEHOLDERS = ("python", "config_dir", "run_dir", "lane", "lane_dir", "attempt_dir", "cache_dir", "emit_ir", "diagnostics_file")
_PATTERN = re.compile(r"\$\{(" + "|".join(PLACEHOLDERS) + r")\}")


def expand(text: str, values: dict[str, str]) -> str:
    return _PATTERN.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def expand_command(command: list[str] | str, values: dict[str, str]) -> list[str] | str:
    if isinstance(command, str):
        quoted = {k: shlex.quote(v) for k, v in values.items()}
        return expand(command, quoted)
    return [expand(part, values) for part in command]


def base_values() -> dict[str, str]:
    return {"python": sys.executable}
