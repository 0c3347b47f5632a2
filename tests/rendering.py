"""What a reviewer sees: Markdown through GitHub's renderer (cmark-gfm with GitHub's extensions)
inside GitHub's CSS (npm github-markdown-css) in headless Chromium at a PR's width, measured.

The same approach as shared/tools/render-comment, as a test helper. cmark-gfm runs with
`--unsafe` plus the tagfilter extension, which is what GitHub does: `<details>`, `<summary>`,
`<sub>` and `<br>` survive, script-like tags do not. The tools come from the Debian packages
`cmark-gfm` and `chromium`; where they are missing they are installed with apt-get, and a
machine without apt skips. CI (CI=true) never skips: a missing tool fails the test.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

WIDTH = 830
SCREEN_PX = 600
CSS_PACKAGE = "github-markdown-css"
CACHE = Path(os.environ.get("MOLT_BUDGET_RENDER_CACHE", Path.home() / ".cache" / "molt-budget-render"))

MEASURE = """<script>
window.addEventListener('load', () => {
  const root = document.querySelector('article') || document.body;
  const top0 = root.getBoundingClientRect().top;
  const tables = [...root.querySelectorAll('table')].map(t => Math.ceil(t.getBoundingClientRect().left - root.getBoundingClientRect().left) + t.scrollWidth);
  let text = '';
  const w = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  while (w.nextNode()) {
    const el = w.currentNode.parentElement;
    if (el.closest('details:not([open])') && !el.closest('summary')) continue;
    const r = el.getBoundingClientRect();
    if (r.top - top0 < SCREEN_PX && r.height > 0) text += w.currentNode.textContent + ' ';
  }
  root.querySelectorAll('details').forEach(d => { d.open = true; });
  const opened = [...root.querySelectorAll('table')].map(t => Math.ceil(t.getBoundingClientRect().left - root.getBoundingClientRect().left) + t.scrollWidth);
  const pre = document.createElement('pre'); pre.id = 'measure';
  pre.textContent = JSON.stringify({body_width: root.clientWidth, page_width: document.documentElement.scrollWidth,
    widest_table: Math.max(0, ...tables), widest_table_unfolded: Math.max(0, ...opened), tables: opened.length,
    first_screen_text: text.replace(/\\s+/g, ' ').trim()});
  document.body.appendChild(pre);
});</script>""".replace("SCREEN_PX", str(SCREEN_PX))


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing(why: str) -> None:
    if _in_ci():
        pytest.fail(f"{why} (CI must install cmark-gfm and chromium: see .ci/run)")
    pytest.skip(why)


def _apt_install(*packages: str) -> None:
    if shutil.which("apt-get") is None or (hasattr(os, "geteuid") and os.geteuid() != 0):
        _missing(f"{', '.join(packages)} not installed and apt-get is not available to install them")
    subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=600)
    done = subprocess.run(["apt-get", "install", "-y", "-q", *packages], capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if done.returncode != 0:
        _missing(f"apt-get install {' '.join(packages)} failed: {done.stderr.strip()[-300:]}")


def tools() -> tuple[str, str, Path]:
    """(cmark-gfm, chromium, GitHub's CSS file), installing what is missing."""
    wanted = [pkg for cmd, pkg in (("cmark-gfm", "cmark-gfm"), ("chromium", "chromium")) if shutil.which(cmd) is None]
    if wanted:
        _apt_install(*wanted)
    css = CACHE / "node_modules" / CSS_PACKAGE / "github-markdown-light.css"
    if not css.is_file():
        if shutil.which("npm") is None:
            _missing("npm is not available to fetch github-markdown-css")
        CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["npm", "install", "--prefix", str(CACHE), "--silent", "--no-audit", "--no-fund", CSS_PACKAGE],
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0 or not css.is_file():
            _missing(f"npm install {CSS_PACKAGE} failed: {done.stderr.strip()[-300:]}")
    return str(shutil.which("cmark-gfm")), str(shutil.which("chromium")), css


def gfm(markdown: str) -> str:
    cmark, _, _ = tools()
    return subprocess.run([cmark, "--unsafe", "-e", "table", "-e", "strikethrough", "-e", "autolink", "-e", "tagfilter",
                           "-e", "tasklist"], input=markdown, capture_output=True, text=True, check=True, timeout=60).stdout


def _measure(page: Path, width: int) -> dict:
    _, chromium, _ = tools()
    argv = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1",
            f"--window-size={width + 60},2400", "--virtual-time-budget=3000", "--dump-dom", page.as_uri()]
    dom = subprocess.run(argv, capture_output=True, text=True, timeout=180).stdout
    found = re.search(r'<pre id="measure">(.*?)</pre>', dom, re.S)
    assert found, "the page gave no measurement"
    return json.loads(html.unescape(found.group(1)))


def render_comment(markdown: str, width: int = WIDTH) -> dict:
    """A PR comment: body_width, widest_table (px; wider than body_width means scrolling sideways),
    first_screen_text (what the first 600 px show, folded sections closed)."""
    body = gfm(markdown)
    _, _, css = tools()
    page = f"""<!doctype html><html><head><meta charset="utf-8"><style>{css.read_text()}
body {{ margin:0; padding:16px; }}
.markdown-body {{ box-sizing:border-box; width:{width}px; padding:16px; font-size:14px; }}
.markdown-body table {{ display:block; width:max-content; max-width:100%; overflow:auto; }}
</style></head><body><article class="markdown-body">{body}</article>{MEASURE}</body></html>"""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "comment.html"
        path.write_text(page, encoding="utf-8")
        return _measure(path, width)


def render_page(index: Path, width: int = WIDTH) -> dict:
    """An HTML report page opened in a window `width` px wide, measured the same way."""
    text = index.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>")
    probe = index.with_name("_measure.html")
    probe.write_text(text, encoding="utf-8")
    try:
        return _measure(probe, width)
    finally:
        probe.unlink()
