"""One escaping rule for every string molt-budget did not write itself.

Units, KPI and lane names, reasons, module and function names, paths and justifications come
from a pull request's budgets.yaml, from the build under review or from a report file anyone
can forge. Every reporter passes them through exactly one of these functions, chosen by
where the text lands:

- `plain(text)`: one line of plain text (annotations, workflow commands, step outputs, logs):
  lone surrogates (they cannot be encoded, so they would crash the writer) become U+FFFD,
  control characters (terminal escape sequences) and bidirectional overrides (text that
  reads differently than it is) are dropped, whitespace runs become one space.
- `terminal(text)`: `plain` for a terminal.
- `markdown(text)`: inert inline Markdown (PR comment, check-run summary, job summary): no
  HTML, no hidden comment (the sticky marker), no link, image or autolink, no @-mention,
  no emphasis or code span that runs into the surrounding text. `#901` stays a reference
  (it can only point into GitHub, and budget justifications cite issues that way).
- `markdown_code(text)`: a code span (names, paths): literal, survives any backticks inside.
- `html(text)`: text or an attribute value in the HTML report.

Why zero-width spaces: GitHub turns `@team`, `www.x` and `https://x` into live links
after Markdown is rendered, where no backslash escape reaches; a U+200B between the trigger
and the name breaks the match and is invisible to the reader.
"""

from __future__ import annotations

import re
from typing import Any

ZWSP = "\u200b"
MAX_CHARS = 2_000        # one untrusted string never takes more of a report than this

_SURROGATE = re.compile("[\ud800-\udfff]")
_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# `_` between letters or digits never starts emphasis (GFM), so `ir_ops` stays readable
_MD_PUNCT = re.compile(r"([\\`*\[\]~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
_AUTOLINK = re.compile(r"(?i)(://|www\.|@)")


def plain(text: Any, limit: int = MAX_CHARS) -> str:
    """One printable, encodable line of at most `limit` characters."""
    out = _SURROGATE.sub("\ufffd", str(text))
    out = " ".join(_INVISIBLE.sub(" ", out).split())
    return out if len(out) <= limit else out[: limit - 1] + "…"


def lines(text: Any, limit: int = MAX_CHARS) -> str:
    """`plain`, but line breaks kept (a workflow command or annotation message may span lines)."""
    parts = _SURROGATE.sub("\ufffd", str(text)).replace("\r\n", "\n").split("\n")
    out = "\n".join(" ".join(_INVISIBLE.sub(" ", part).split()) for part in parts)
    return out if len(out) <= limit else out[: limit - 1] + "…"


def terminal(text: Any, limit: int = MAX_CHARS) -> str:
    """Untrusted text for a terminal: no escape sequence can move the cursor or recolour."""
    return plain(text, limit)


def markdown(text: Any, limit: int = MAX_CHARS) -> str:
    """Untrusted text → inert inline Markdown, rendered by GitHub as the same characters."""
    out = _escape_html(plain(text, limit), quote=False)
    out = _MD_PUNCT.sub(r"\\\1", out)
    return _AUTOLINK.sub(lambda m: _break(m.group(1)), out)


def _escape_html(text: str, quote: bool) -> str:
    """html.escape, imported on first use: the terminal report imports this module and never
    escapes HTML, and `html` brings its 2,000-entity table (~3 ms of every check)."""
    from html import escape

    return escape(text, quote=quote)


def _break(trigger: str) -> str:
    """`@x` → `@\u200bx`, `https://` → `https:\u200b//`, `www.` → `www\u200b.`."""
    if trigger == "://":
        return ":" + ZWSP + "//"
    if trigger.lower() == "www.":
        return trigger[:3] + ZWSP + "."
    return trigger + ZWSP


def markdown_code(text: Any, limit: int = MAX_CHARS) -> str:
    """Untrusted text → a code span: literal (no HTML, link, mention), however many backticks it holds."""
    body = plain(text, limit)
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if body.startswith("`") or body.endswith("`") or not body else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def html(text: Any, limit: int = MAX_CHARS) -> str:
    """Untrusted text → HTML text or a quoted attribute value."""
    return _escape_html(plain(text, limit), quote=True)


def clean_tree(data: Any) -> Any:
    """The same document with every lone surrogate in its strings (keys too) replaced by U+FFFD.

    JSON may spell a lone surrogate (`"\\udcff"`); Python reads it, and every UTF-8 writer
    (the job summary, stdout, the HTTP body) then fails. Iterative: depth is checked elsewhere.
    """
    def fix(value: Any) -> Any:
        return _SURROGATE.sub("\ufffd", value) if isinstance(value, str) and _SURROGATE.search(value) else value

    root = [fix(data)]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        parent, key = stack.pop()
        node = parent[key]
        if isinstance(node, dict):
            fixed = {fix(k): v for k, v in node.items()}
            parent[key] = fixed
            for k, v in fixed.items():
                fixed[k] = fix(v)
                stack.append((fixed, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                node[i] = fix(v)
                stack.append((node, i))
    return root[0]
