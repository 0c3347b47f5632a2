"""Publish a comparison report where reviewers look: sticky PR comment, check run, job summary.

Why this shape:
- One small REST client on `requests`: every call has a timeout, 5xx / 429 / secondary rate
  limits are retried a bounded number of times honouring `retry-after` and
  `x-ratelimit-reset` (sleep injectable so tests are fast), and pagination follows
  `Link: rel="next"` only while it stays on the configured API base (GitHub Enterprise
  bases like `https://ghe.example/api/v3` work; a link to another host is never followed).
- The token comes only from `GITHUB_TOKEN`, lives in a `Token` whose repr is redacted, and is
  scrubbed from every message, so it never reaches logs, errors or tracebacks.
- A fork PR's read-only token answers 403: the job summary and `::error`/`::warning`
  workflow commands still carry the verdict, one line says why, and the gate's exit code
  keeps reflecting the verdict, never the reporting failure.
"""

from __future__ import annotations

import email.utils
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urljoin, urlsplit

import requests

from molt_budget import fmt
from molt_budget.compare.model import HeadInfo, KpiRow, Report, Status, Verdict
from molt_budget.errors import ConfigError
from molt_budget.report.escape import clean_tree, plain
from molt_budget.report.escape import lines as multiline
from molt_budget.report.markdown import (
    HEADLINE,
    change_subject,
    counts_text,
    offending_changes,
    render_markdown,
)
from molt_budget.structs import Struct, field

COMMENT_MAX = 65_536        # GitHub's limit on an issue comment body
CHECK_TEXT_MAX = 65_535     # check-run output.summary / output.text
SUMMARY_MAX = 250_000       # $GITHUB_STEP_SUMMARY takes 1 MiB per step: leave room for UTF-8
ANNOTATION_BATCH = 50       # output.annotations maxItems per request
ANNOTATION_MESSAGE_MAX = 4_000
DEFAULT_TIMEOUT = (5.0, 30.0)
MAX_PAGES = 50              # 5,000 items at per_page=100: more is an endless rel="next", not a real listing
RESENT_STATUSES = (500, 502, 504)   # after these GitHub may still have done the write
PR_EVENTS = ("pull_request", "pull_request_target")
DEFAULT_BOT_LOGIN = "github-actions[bot]"   # who writes the comment with the workflow's GITHUB_TOKEN


# -- the token -----------------------------------------------------------------------


class Token:
    """A secret that never prints itself: repr/str/format are redacted, pickling refused."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Only for the Authorization header."""
        return self._value

    def scrub(self, text: str) -> str:
        return text.replace(self._value, "***") if self._value else text

    def __repr__(self) -> str:
        return "Token('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self) -> Any:
        raise TypeError("a Token cannot be pickled")


class _TokenAuth(requests.auth.AuthBase):
    """Sets the header per request so the secret is not kept in session state."""

    def __init__(self, token: Token) -> None:
        self._token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._token.reveal()}"
        return r

    def __repr__(self) -> str:
        return "_TokenAuth(***)"


# -- errors --------------------------------------------------------------------------


class GitHubError(Exception):
    """One line naming the endpoint and what GitHub said; `status` None = no HTTP answer."""

    def __init__(self, message: str, *, status: int | None = None, endpoint: str = "", rate_limited: bool = False,
                 maybe_done: bool = False) -> None:
        super().__init__(" ".join(message.split()))
        self.status = status
        self.endpoint = endpoint
        self.rate_limited = rate_limited
        self.maybe_done = maybe_done     # a POST that GitHub may have carried out: look it up before sending again

    @property
    def forbidden(self) -> bool:
        """A 403 that is a permission refusal (a fork PR's read-only token), not a rate limit."""
        return self.status == 403 and not self.rate_limited


# -- context from the environment ------------------------------------------------------


class GitHubContext(Struct):
    """Where to post: read from the `GITHUB_*` variables and the event payload."""

    api_url: str
    server_url: str
    repository: str | None
    event_name: str
    head_sha: str | None
    pr_number: int | None
    token: Token | None
    run_url: str | None
    report_url: str | None            # where the full report (artifact) lives
    step_summary: Path | None
    output: Path | None
    pr_lookup: tuple[str, str] | None = None   # (owner:branch, head sha) of a fork PR to find via the API
    pr_head_sha: str | None = None    # workflow_run: the PR's head per the payload (it may have moved on)
    pr_head_label: str | None = None  # workflow_run: owner:branch of the run's head, to ask for the PR's head now
    checkout_sha: str | None = None   # GITHUB_SHA: what the workflow checked out (a PR's merge commit)
    event: dict[str, Any] = field(default_factory=dict)    # the whole payload: kept out of repr
    token_malformed: bool = False     # GITHUB_TOKEN was set but holds a space or control character

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__struct_fields__ if name != "event")
        return f"GitHubContext({shown})"


def _read_event(path: str | None) -> dict[str, Any]:
    """The event payload, bounded: a FIFO or device in its place (`/dev/zero`) is refused at once
    instead of read for ever; unreadable or not an object, it is no payload (the env still says
    the repository and commit)."""
    from molt_budget.bounded import MAX_SMALL_BYTES, decode_utf8, parse_json, read_regular

    if not path:
        return {}
    try:
        data = parse_json(decode_utf8(read_regular(path, MAX_SMALL_BYTES)))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _obj(value: Any) -> dict[str, Any]:
    """A payload's object, or {} for anything else: the payload is input and may be forged."""
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_SHA = re.compile(r"[0-9a-fA-F]{7,64}")
_TOKEN = re.compile(r"[\x21-\x7e]+")      # printable ASCII without spaces: all a header value may carry


def _repository(value: Any) -> str | None:
    """owner/name, or None: it goes into every API path."""
    return value if isinstance(value, str) and _REPOSITORY.fullmatch(value) else None


def _sha(value: Any) -> str | None:
    return value if isinstance(value, str) and _SHA.fullmatch(value) else None


def context_from_env(env: Mapping[str, str]) -> GitHubContext:
    """pull_request(_target), merge_group, push and workflow_run each say the head differently.
    Every field of the payload is checked for its type where it is read (a forged payload gives
    no PR, not a crash), and the repository and commits for their form (they go into API paths)."""
    event_name = env.get("GITHUB_EVENT_NAME", "")
    event = _read_event(env.get("GITHUB_EVENT_PATH"))
    repo = _repository(env.get("GITHUB_REPOSITORY") or _obj(event.get("repository")).get("full_name"))
    server = (env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/")
    head_sha = _sha(env.get("GITHUB_SHA"))
    pr: int | None = None
    lookup: tuple[str, str] | None = None
    pr_head: str | None = None
    label: str | None = None
    run_id = env.get("GITHUB_RUN_ID", "")
    run_url = f"{server}/{repo}/actions/runs/{run_id}" if repo and run_id.isdigit() else None
    report_url = run_url
    if not event_name:
        event_name = ("pull_request" if "pull_request" in event and "number" in event else
                      "merge_group" if "merge_group" in event else
                      "workflow_run" if "workflow_run" in event else "push" if "after" in event else "")
    if event_name in PR_EVENTS and isinstance(event.get("pull_request"), dict):
        pr = _int(event["pull_request"].get("number"))
        head_sha = _sha(_obj(event["pull_request"].get("head")).get("sha")) or head_sha
    elif event_name == "merge_group" and isinstance(event.get("merge_group"), dict):
        head_sha = _sha(event["merge_group"].get("head_sha")) or head_sha
    elif event_name == "push" and _sha(event.get("after")):
        head_sha = event["after"]
    elif event_name == "workflow_run" and isinstance(event.get("workflow_run"), dict):
        run = event["workflow_run"]
        head_sha = _sha(run.get("head_sha")) or head_sha
        report_url = _text(run.get("html_url")) or report_url
        listed = run.get("pull_requests")
        prs = [p for p in (listed if isinstance(listed, list) else []) if isinstance(p, dict)]
        same = [p for p in prs if _sha(_obj(p.get("head")).get("sha")) == head_sha]
        owner = _text(_obj(_obj(run.get("head_repository")).get("owner")).get("login"))
        branch = _text(run.get("head_branch"))
        label = f"{owner}:{branch}" if owner and branch else None
        if same or prs:
            chosen = (same or prs)[0]
            pr = _int(chosen.get("number"))
            pr_head = _sha(_obj(chosen.get("head")).get("sha"))
        elif run.get("event") in PR_EVENTS and head_sha and label:
            lookup = (label, head_sha)   # a fork PR: GitHub leaves pull_requests empty
    token = (env.get("GITHUB_TOKEN") or "").strip()
    sendable = _TOKEN.fullmatch(token) is not None
    return GitHubContext(
        api_url=(env.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/"),
        server_url=server, repository=repo, event_name=event_name, head_sha=head_sha, pr_number=pr,
        token=Token(token) if sendable else None, run_url=run_url, report_url=report_url,
        step_summary=Path(env["GITHUB_STEP_SUMMARY"]) if env.get("GITHUB_STEP_SUMMARY") else None,
        output=Path(env["GITHUB_OUTPUT"]) if env.get("GITHUB_OUTPUT") else None,
        pr_lookup=lookup, pr_head_sha=pr_head, pr_head_label=label, event=event,
        checkout_sha=_sha(env.get("GITHUB_SHA")),
        token_malformed=bool(token) and not sendable,
    )


def _int(value: Any) -> int | None:
    """A PR number or an API id: a positive integer (or its digits), else None. int() took 1.5,
    True and 1e300 from a forged payload, and a 4,301-digit string raised."""
    if type(value) is int:
        return value if 0 < value < 2 ** 53 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 15:
        return int(value) or None
    return None


# -- the REST client -------------------------------------------------------------------


class RetryPolicy(Struct):
    attempts: int = 4             # total tries per request
    backoff_s: float = 1.0        # 1, 2, 4 ... for 5xx and network errors
    max_sleep_s: float = 60.0     # never wait longer than this for one retry
    secondary_default_s: float = 60.0   # GitHub: wait at least a minute when no header says


class GitHubClient:
    """requests + timeouts + bounded retries + pagination confined to the API base."""

    def __init__(
        self,
        api_url: str,
        token: Token | None,
        *,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        session: requests.Session | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.clock = clock
        self.session = session or requests.Session()

    def __repr__(self) -> str:
        return f"GitHubClient({self.api_url!r}, token={'***' if self._token else None})"

    def _scrub(self, text: str) -> str:
        return self._token.scrub(text) if self._token else text

    def _url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            if not self.on_base(path_or_url):
                raise GitHubError(f"refusing to follow {self._endpoint(path_or_url)}: it is not under {self.api_url}")
            return path_or_url
        return self.api_url + "/" + path_or_url.lstrip("/")

    def on_base(self, url: str) -> bool:
        """Same scheme, host, port and path prefix as the configured API base."""
        base, other = urlsplit(self.api_url + "/"), urlsplit(url)
        return (other.scheme, other.netloc.lower()) == (base.scheme, base.netloc.lower()) and \
            (other.path + "/").startswith(base.path)

    def _endpoint(self, url: str) -> str:
        parts = urlsplit(url)
        base_path = urlsplit(self.api_url).path.rstrip("/")
        path = parts.path[len(base_path):] if self.on_base(url) and base_path else parts.path
        host = "" if self.on_base(url) else f"{parts.scheme}://{parts.netloc}"
        return host + (path or "/")

    def request(self, method: str, path_or_url: str, *, json_body: Any = None,
                params: Mapping[str, Any] | None = None) -> requests.Response:
        url = self._url(path_or_url)
        endpoint = f"{method} {self._endpoint(url)}"
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "molt-budget",
        }
        auth = _TokenAuth(self._token) if self._token else None
        once = method == "POST"         # creating twice makes two comments or check runs: never resent blindly
        last = ""
        for attempt in range(1, self.retry.attempts + 1):
            try:
                response = self.session.request(method, url, json=json_body, params=params, headers=headers,
                                                auth=auth, timeout=self.timeout, allow_redirects=False)
            except requests.RequestException as exc:
                last = f"{type(exc).__name__}"
                if once and not isinstance(exc, requests.ConnectTimeout):
                    raise GitHubError(f"{endpoint}: no answer ({last}); GitHub may have done it anyway",
                                      endpoint=endpoint, maybe_done=True) from None
                if attempt == self.retry.attempts:
                    break
                self.sleep(min(self.retry.backoff_s * 2 ** (attempt - 1), self.retry.max_sleep_s))
                continue
            wait = self._retry_wait(response, attempt)
            if wait is None:
                if 300 <= response.status_code < 400:
                    where = response.headers.get("location", "")
                    raise GitHubError(f"{endpoint}: GitHub answered {response.status_code} (moved to "
                                      f"{self._endpoint(where) if where else 'an unknown place'}; a renamed repository?): "
                                      "redirects are not followed", status=response.status_code, endpoint=endpoint)
                if response.status_code >= 400:
                    raise self._error(response, endpoint)
                return response
            last = f"HTTP {response.status_code}"
            if once and response.status_code in RESENT_STATUSES:
                raise GitHubError(f"{endpoint}: GitHub answered {response.status_code}; it may have done it anyway",
                                  status=response.status_code, endpoint=endpoint, maybe_done=True)
            if attempt == self.retry.attempts:
                break
            if wait > self.retry.max_sleep_s:
                raise GitHubError(
                    f"{endpoint}: rate limited (HTTP {response.status_code}); GitHub asks to wait {fmt.plain(round(wait))}s, "
                    f"more than the {fmt.plain(round(self.retry.max_sleep_s))}s molt-budget waits", status=response.status_code, endpoint=endpoint,
                    rate_limited=True)
            self.sleep(wait)
        raise GitHubError(f"{endpoint}: gave up after {self.retry.attempts} attempts ({last})", endpoint=endpoint,
                          rate_limited=last in ("HTTP 403", "HTTP 429"))

    def _retry_wait(self, response: requests.Response, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None when the answer is final."""
        status = response.status_code
        h = response.headers
        if status in (500, 502, 503, 504):
            return _retry_after(h.get("retry-after"), self.clock) or self.retry.backoff_s * 2 ** (attempt - 1)
        limited = status == 429 or (status == 403 and (
            "retry-after" in h or h.get("x-ratelimit-remaining") == "0" or "rate limit" in response.text[:2000].lower()))
        if not limited:
            return None
        after = _retry_after(h.get("retry-after"), self.clock)
        if after is not None:
            return after
        if h.get("x-ratelimit-remaining") == "0" and h.get("x-ratelimit-reset", "").isdigit():
            return max(1.0, int(h["x-ratelimit-reset"]) - self.clock() + 1)
        return self.retry.secondary_default_s

    def _error(self, response: requests.Response, endpoint: str) -> GitHubError:
        try:
            body = response.json()
        except ValueError:
            body = {}
        message = str(body.get("message") or response.reason or "") if isinstance(body, dict) else ""
        details = []
        for err in (body.get("errors") or [] if isinstance(body, dict) else [])[:3]:
            details.append(err.get("message") or f"{err.get('resource', '')} {err.get('field', '')} {err.get('code', '')}".strip()
                           if isinstance(err, dict) else str(err))
        detail = f" ({'; '.join(details)})" if details else ""
        word = {403: "forbidden", 404: "not found", 422: "rejected as invalid"}.get(response.status_code, "failed")
        text = f"GitHub {word}: {endpoint} answered {response.status_code} {message[:300]}{detail[:300]}"
        return GitHubError(self._scrub(text), status=response.status_code, endpoint=endpoint)

    def json(self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        response = self.request(method, path, json_body=body, params=params)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise GitHubError(f"{method} {path}: GitHub answered {response.status_code} with a body that is not JSON") from None

    def create(self, path: str, body: Any, find: Callable[[], Any]) -> Any:
        """POST that never creates twice: when an attempt may have been carried out (no answer,
        or a 5xx), `find()` looks for what it would have created before the next attempt."""
        for attempt in range(1, self.retry.attempts + 1):
            try:
                return self.json("POST", path, body)
            except GitHubError as exc:
                if not exc.maybe_done or attempt == self.retry.attempts:
                    raise
            found = find()
            if found is not None:
                return found
            self.sleep(min(self.retry.backoff_s * 2 ** (attempt - 1), self.retry.max_sleep_s))
        raise AssertionError("unreachable")

    def paginate(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """Items of every page; follows rel="next" only while it stays on the API base."""
        url: str | None = path
        query: Mapping[str, Any] | None = params
        pages = 0
        while url is not None:
            if pages == MAX_PAGES:
                raise GitHubError(f"GET {self._endpoint(self._url(path))}: still a next page after {MAX_PAGES} pages "
                                  "(an endless rel=\"next\"?); stopped", endpoint=f"GET {path}")
            response = self.request("GET", url, params=query)
            pages += 1
            items = response.json()
            if not isinstance(items, list):
                raise GitHubError(f"GET {path}: expected a list, GitHub answered {type(items).__name__}")
            yield from items
            nxt = response.links.get("next", {}).get("url")
            query = None                       # the next link carries its own query
            if not nxt:
                return
            nxt = urljoin(response.url, nxt)
            if not self.on_base(nxt):
                print(f"molt-budget: not following a pagination link off {self.api_url} "
                      f"(to {urlsplit(nxt).scheme}://{urlsplit(nxt).netloc}); stopped after {pages} page(s)", file=sys.stderr)
                return
            url = nxt


def _retry_after(value: str | None, clock: Callable[[], float]) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - clock())


# -- what is posted --------------------------------------------------------------------


def marker_for(report: Report) -> str:
    """The hidden marker that makes the comment sticky: one per PR and budgets file."""
    config = report.shown_config
    safe = "".join(ch for ch in config if ch.isprintable() and ch not in "<>").replace("--", "-")
    return f"<!-- molt-budget:{safe} -->"


CONCLUSIONS = {Status.PASS: "success", Status.YELLOW: "neutral", Status.ERROR: "failure", Status.FAIL: "failure"}




def recomputed(report: Report) -> Report:
    """The report with its verdict rebuilt from its own KPI rows and budget changes.

    Why: the report reaches the poster as a file that the measuring job (running the PR's
    code) wrote; a `verdict` that says pass over a failing row must not post a green check.
    The one rule (`Verdict.judge`) decides; the claimed verdict is only a floor: a report may
    make itself look worse than its rows, never better. Lone surrogates in its strings become
    U+FFFD (no writer could encode them). A row the model rejects is a ConfigError (refused).
    """
    model = Report.from_dict(clean_tree(report.to_dict()))
    model.rejudge(floor=model.verdict.status)
    return model


def stand_in_report(config_path: str, why: str) -> Report:
    """An error report with nothing judged: the check fails and says why."""
    return Report(verdict=Verdict.judge([], floor=Status.ERROR), head=HeadInfo(commit=None), config_path=config_path,
                  authoritative=False, authoritative_reasons=[why])


def foreign_head(report: Report, ctx: GitHubContext) -> str | None:
    """Why the report is not this run's to post (its head commit is another one), or None.

    A replayed or forged report (a passing one from an older commit) must not turn this
    commit's required check green. The commit the workflow checked out counts too (a
    pull_request run may measure the merge commit), except in a workflow_run poster, whose
    checkout is the default branch.
    """
    if not ctx.head_sha or not report.kpis:
        return None          # nothing to compare with, or a stand-in that judges nothing (it fails anyway)
    commit = report.head.commit
    allowed = {ctx.head_sha} | ({ctx.checkout_sha} if ctx.checkout_sha and ctx.event_name != "workflow_run" else set())
    if commit in allowed:
        return None
    shown = plain(commit, 40) if commit else "no commit"
    return f"refused the report: it measured {shown}, this run is for {ctx.head_sha[:12]}"


def conclusion_for(report: Report) -> str:
    """success (pass) / neutral (yellow, or nothing judged) / failure (fail or error)."""
    conclusion = CONCLUSIONS[report.status.verdict]
    return "neutral" if conclusion == "success" and not report.kpis else conclusion


def title_for(report: Report) -> str:
    """`FAIL (2 fail, 1 yellow, 1 budget fail)`: a failure caused only by a budget edit shows here too."""
    status = report.status.value
    if not report.kpis:
        return "Error: no KPI was measured" if status in ("fail", "error") else "Skipped: no KPI was measured"
    shown = counts_text(report, ", ", skipped=False)
    return HEADLINE.get(status, status.upper()) + (f" ({shown})" if shown else "")


def offending(report: Report) -> list[KpiRow]:
    """KPIs that get an annotation: fail/error → failure, yellow/nondeterministic → warning."""
    return report.offending()


def _level(kpi: KpiRow) -> str:
    return "failure" if kpi.status in (Status.FAIL, Status.ERROR) else "warning"


def _annotation_title(kpi: KpiRow) -> str:
    return f"{kpi.id} ({kpi.lane}): {kpi.status}"


def _findings(report: Report) -> list[tuple[str, int | None, str, str]]:
    """(level, line in the budgets file, title, message) of each offending KPI, then each failing
    or yellow budget change (at its line in the budgets file)."""
    out = []
    for k in offending(report):
        out.append((_level(k), _line(k.line), _annotation_title(k), k.reason or k.status.value))
    for c in offending_changes(report):
        level = "failure" if c.status is Status.FAIL else "warning"
        title = f"budget change {change_subject(c)}: {c.status}"
        message = f"{_shown(c.old)} -> {_shown(c.new)}: {c.reason or c.status.value}"
        if c.justification:
            message += f" (justification: {c.justification})"
        out.append((level, _line(c.line), title, message))
    return out


def _line(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _shown(value: Any) -> str:
    return "none" if value is None else value if isinstance(value, str) else json.dumps(value, default=str)


def check_annotations(report: Report) -> list[dict[str, Any]]:
    path = report.shown_config
    return [{
        "path": plain(path, 1000), "start_line": line or 1, "end_line": line or 1, "annotation_level": level,
        "title": plain(title, 255), "message": multiline(message, ANNOTATION_MESSAGE_MAX),
    } for level, line, title, message in _findings(report)]


# -- workflow commands, step summary, outputs -----------------------------------------


def escape_data(text: str) -> str:
    """GitHub's escaping of a workflow command's message."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """GitHub's escaping of a workflow command's property values."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_commands(report: Report) -> list[str]:
    """`::error file=…,line=…,title=…::msg` (fail/error) and `::warning` (yellow) lines, budget changes included."""
    path = report.shown_config
    lines = []
    for level, line, title, message in _findings(report):
        command = "error" if level == "failure" else "warning"
        props = {"file": plain(path, 1000), "title": plain(title, 255)}
        if line is not None:
            props["line"] = str(line)
        shown = ",".join(f"{key}={escape_property(props[key])}" for key in ("file", "line", "title") if key in props)
        lines.append(f"::{command} {shown}::{escape_data(multiline(message, ANNOTATION_MESSAGE_MAX))}")
    return lines


def write_outputs(path: Path, values: Mapping[str, str]) -> None:
    """`$GITHUB_OUTPUT`: `name=value`, or the heredoc form with a fresh delimiter for multiline values."""
    from molt_budget.results.store import open_for_append

    with open_for_append(path) as fh:
        for name, value in values.items():
            if "\n" in value or "\r" in value:
                delimiter = f"ghadelimiter_{uuid.uuid4()}"
                while delimiter in value:
                    delimiter = f"ghadelimiter_{uuid.uuid4()}"
                fh.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
            else:
                fh.write(f"{name}={value}\n")


def output_values(report: Report, outcome: PublishOutcome) -> dict[str, str]:
    counts = report.verdict.counts
    values = {
        "verdict": report.status.value,
        "conclusion": outcome.conclusion,
        "counts": json.dumps(counts, sort_keys=True),
        **{f"{s}-count": str(counts.get(s, 0)) for s in ("pass", "yellow", "fail", "error")},
        "reasons": "\n".join([plain(f"{k.status} {k.id} ({k.lane}): {k.reason}") for k in offending(report)]
                             + [plain(f"budget {c.status} {change_subject(c)}: {c.reason}") for c in offending_changes(report)]),
        "fell-back": "true" if outcome.fell_back else "false",
    }
    if outcome.comment_url:
        values["comment-url"] = outcome.comment_url
    if outcome.check_run_url:
        values["check-run-url"] = outcome.check_run_url
    return values


# -- the API operations ----------------------------------------------------------------


def _is_ours(comment: Mapping[str, Any], marker: str, logins: frozenset[str]) -> bool:
    """Starts with the marker AND was written by a bot (github-actions[bot], or the configured app
    when the payload names the login): anyone can paste the marker into a comment of their own."""
    if not str(comment.get("body") or "").lstrip().startswith(marker):
        return False
    user = comment.get("user") or {}
    if user.get("type") != "Bot":
        return False
    login = user.get("login")
    return login is None or login in logins


def upsert_comment(client: GitHubClient, repo: str, number: int, marker: str, body: str,
                   bot_login: str | None = None) -> tuple[str, dict[str, Any]]:
    """PATCH our bot's comment that starts with `marker`, else POST one; delete duplicates by the same bot."""
    logins = frozenset({DEFAULT_BOT_LOGIN} | ({bot_login} if bot_login else set()))

    def find() -> list[dict[str, Any]]:
        found = [c for c in client.paginate(f"/repos/{repo}/issues/{number}/comments", {"per_page": 100})
                 if _is_ours(c, marker, logins)]
        return sorted(found, key=lambda c: c.get("id", 0))

    ours = find()
    if not ours:
        created = client.create(f"/repos/{repo}/issues/{number}/comments", {"body": body},
                                lambda: next(iter(find()), None))   # a POST that may have landed is looked up first
        return "created", created
    keep = ours[0]
    updated = client.json("PATCH", f"/repos/{repo}/issues/comments/{keep['id']}", {"body": body})
    author = (keep.get("user") or {}).get("login")
    for extra in ours[1:]:
        if author and (extra.get("user") or {}).get("login") == author:
            client.request("DELETE", f"/repos/{repo}/issues/comments/{extra['id']}")
    return "updated", updated


def pr_head_now(client: GitHubClient, ctx: GitHubContext, number: int) -> str | None:
    """The PR's head commit: asked from GitHub when the head branch is known, else the payload's."""
    if ctx.pr_head_label and ctx.repository:
        try:
            for pr in client.paginate(f"/repos/{ctx.repository}/pulls",
                                      {"state": "open", "head": ctx.pr_head_label, "per_page": 100}):
                if _int(pr.get("number")) == number:
                    return (pr.get("head") or {}).get("sha") or ctx.pr_head_sha
        except GitHubError:
            pass                        # the payload's word is the next best
    return ctx.pr_head_sha


def find_fork_pr(client: GitHubClient, repo: str, head: str, sha: str) -> int | None:
    """A fork PR's workflow_run has no pull_requests: find it by head label and SHA."""
    for pr in client.paginate(f"/repos/{repo}/pulls", {"state": "open", "head": head, "per_page": 100}):
        if (pr.get("head") or {}).get("sha") == sha:
            return _int(pr.get("number"))
    return None


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class AnnotationsFailed(GitHubError):
    """The check run exists (it carries the verdict) but a later batch of annotations was refused."""

    def __init__(self, cause: GitHubError, run: dict[str, Any], batches: list[int], first: int) -> None:
        super().__init__(f"created the check run, but could not add annotations {first + 1}-{first + ANNOTATION_BATCH}: {cause}",
                         status=cause.status, endpoint=cause.endpoint, rate_limited=cause.rate_limited)
        self.run = run
        self.batches = batches


def find_check_run(client: GitHubClient, repo: str, head_sha: str, name: str, external_id: str) -> dict[str, Any] | None:
    """The check run this process created (matched by its random `external_id`), if GitHub has it."""
    pages = 0
    url: str | None = f"/repos/{repo}/commits/{head_sha}/check-runs"
    params: dict[str, Any] | None = {"check_name": name, "filter": "all", "per_page": 100}
    while url is not None and pages < MAX_PAGES:
        response = client.request("GET", url, params=params)
        pages += 1
        data = response.json()
        for run in (data.get("check_runs") or []) if isinstance(data, dict) else []:
            if isinstance(run, dict) and run.get("external_id") == external_id:
                return run
        nxt = response.links.get("next", {}).get("url")
        url, params = (urljoin(response.url, nxt) if nxt else None), None
    return None


def create_check_run(client: GitHubClient, repo: str, *, name: str, head_sha: str, conclusion: str, title: str,
                     summary: str, notes: list[dict[str, Any]], details_url: str | None = None) -> tuple[dict[str, Any], list[int]]:
    """Create a completed check run with the first 50 annotations, then PATCH the rest 50 at a time.

    A POST that got no answer (or a 5xx) may still have created the run: it is looked up by
    its `external_id` before it is sent again, so a slow GitHub never gets two check runs.
    """
    batches = [notes[i:i + ANNOTATION_BATCH] for i in range(0, len(notes), ANNOTATION_BATCH)] or [[]]
    output: dict[str, Any] = {"title": title, "summary": summary}
    external_id = f"molt-budget-{uuid.uuid4()}"
    body: dict[str, Any] = {
        "name": name, "head_sha": head_sha, "status": "completed", "conclusion": conclusion, "external_id": external_id,
        "completed_at": _now(), "output": {**output, "annotations": batches[0]} if batches[0] else output,
    }
    if details_url:
        body["details_url"] = details_url
    run = client.create(f"/repos/{repo}/check-runs", body, lambda: find_check_run(client, repo, head_sha, name, external_id))
    done = [len(batches[0])] if batches[0] else []
    for i, batch in enumerate(batches[1:], start=1):
        try:
            client.json("PATCH", f"/repos/{repo}/check-runs/{run['id']}", {"output": {**output, "annotations": batch}})
        except GitHubError as exc:
            raise AnnotationsFailed(exc, run, done, i * ANNOTATION_BATCH) from None
        done.append(len(batch))
    return run, done


# -- publish -------------------------------------------------------------------------


class PublishOutcome(Struct):
    """What `publish` did, and what it fell back to; `messages` are one line each, token-free."""

    verdict: str
    conclusion: str
    comment: str | None = None                # created | updated | None
    comment_url: str | None = None
    check_run_id: int | None = None
    check_run_url: str | None = None
    annotation_batches: list[int] = field(default_factory=list)
    summary_written: bool = False
    outputs_written: bool = False
    workflow_commands: int = 0
    fell_back: bool = False
    messages: list[str] = field(default_factory=list)
    internal_error: str | None = None         # a bug while posting: the command must fail
    refused: str | None = None                # why the report was not posted (another commit's)


def _attempt(what: str, say: Callable[[str], None], post: Callable[[], None], outcome: PublishOutcome) -> GitHubError | None:
    """Run one posting step; a 403 is returned (the caller decides the fallback), a GitHub
    failure is one line and never stops the next step, any other exception is recorded as
    the internal error it is (the command then fails, and a failing check run stands in)."""
    try:
        post()
    except GitHubError as exc:
        if exc.forbidden:
            return exc
        say(f"molt-budget: could not {what}: {_describe(exc)}")
    except Exception as exc:
        _internal(outcome, say, what, exc)
    return None


def _internal(outcome: PublishOutcome, say: Callable[[str], None], what: str, exc: BaseException) -> None:
    outcome.internal_error = outcome.internal_error or f"while trying to {what}: {_describe(exc)}"
    say(f"molt-budget: internal error while trying to {what}: {_describe(exc)}")


def publish(
    report: Report,
    *,
    check_name: str = "molt-budget",
    env: Mapping[str, str] = os.environ,
    sleep: Callable[[float], None] = time.sleep,
    stream: TextIO | None = None,
    sparklines: dict[str, list[float]] | None = None,
    client: GitHubClient | None = None,
    bot_login: str | None = None,
) -> PublishOutcome:
    """Comment + check run through the API; job summary, outputs and (on fallback) workflow commands.

    The check run is attempted whatever happened to the comment (a read-only token may still
    create check runs, and the required check must never stay pending). `bot_login`: the login
    of a GitHub App posting the comment, besides github-actions[bot]. Never raises: a reporting
    problem leaves the exit code to the verdict; an internal error (`outcome.internal_error`)
    still posts a failing check run, and the caller exits non-zero on it. What is posted
    is the report as its own rows judge it (`recomputed`), and only for this run's commit.
    """
    out = stream or sys.stdout
    ctx = context_from_env(env)
    scrub = ctx.token.scrub if ctx.token else (lambda s: s)
    outcome = PublishOutcome(verdict="error", conclusion="failure")

    def say(line: str) -> None:
        line = scrub(plain(line, 4_000))
        outcome.messages.append(line)
        try:
            print(line, file=out, flush=True)
        except (OSError, ValueError):
            pass                       # a closed log must not stop the posting

    try:
        try:
            report = recomputed(report)
            refused = foreign_head(report, ctx)
        except ConfigError as exc:
            refused = f"refused the report: {exc}"
        if refused is not None:
            say(f"molt-budget: {refused}; posting a failing check instead")
            outcome.refused = refused
            report = stand_in_report(report.config_path or "budgets.yaml", refused)
        outcome.verdict, outcome.conclusion = report.status.value, conclusion_for(report)
        _publish(report, ctx, outcome, say, scrub, out, check_name, sleep, sparklines, client, bot_login)
    except Exception as exc:
        _internal(outcome, say, "publish the report", exc)
    if outcome.internal_error and outcome.check_run_id is None and ctx.token and ctx.repository and ctx.head_sha:
        _crash_check_run(client or GitHubClient(ctx.api_url, ctx.token, sleep=sleep), ctx, check_name, outcome, say)
    return outcome


def _crash_check_run(gh: GitHubClient, ctx: GitHubContext, check_name: str, outcome: PublishOutcome,
                     say: Callable[[str], None]) -> None:
    """The last resort: a failing check run that renders nothing from the report."""
    assert ctx.repository and ctx.head_sha
    summary = (f"molt-budget hit an internal error {plain(outcome.internal_error)} and could not post its report. "
               "The job log has the details; re-run the job, or report the bug with the report.json artifact.")
    try:
        run, _ = create_check_run(gh, ctx.repository, name=check_name, head_sha=ctx.head_sha, conclusion="failure",
                                  title="molt-budget could not post its report", summary=summary, notes=[],
                                  details_url=ctx.report_url)
        outcome.check_run_id, outcome.check_run_url, outcome.conclusion = _int(run.get("id")), run.get("html_url"), "failure"
        say(f"molt-budget: posted a failing check run {check_name!r} on {ctx.head_sha[:12]} in its place")
    except Exception as exc:
        say(f"molt-budget: could not post a failing check run either: {_describe(exc)}")


def _publish(report: Report, ctx: GitHubContext, outcome: PublishOutcome, say: Callable[[str], None],
             scrub: Callable[[str], str], out: TextIO, check_name: str, sleep: Callable[[float], None],
             sparklines: dict[str, list[float]] | None, client: GitHubClient | None, bot_login: str | None) -> None:
    hint = f"the `report.json` artifact of {ctx.report_url}" if ctx.report_url else None
    api_ok = False
    if ctx.token is None:
        why = "holds a space or control character (no header can carry it)" if ctx.token_malformed else "is not set"
        say(f"molt-budget: GITHUB_TOKEN {why}: reporting through the job summary and annotations only")
    elif not ctx.repository or not ctx.head_sha:
        say("molt-budget: GITHUB_REPOSITORY or the head commit is unknown: reporting through the job summary and annotations only")
    else:
        api_ok = True
    if api_ok:
        assert ctx.repository and ctx.head_sha
        gh = client or GitHubClient(ctx.api_url, ctx.token, sleep=sleep)
        comment_refused = _attempt("post the PR comment", say,
                                   lambda: _post_comment(gh, ctx, report, outcome, say, hint, sparklines, bot_login), outcome)
        check_refused = _attempt("create the check run", say,
                                 lambda: _post_check_run(gh, ctx, report, outcome, check_name, say, hint, sparklines), outcome)
        if check_refused is not None:
            say(f"molt-budget: {_describe(check_refused)}: the token cannot write to {ctx.repository} (a fork PR's read-only "
                "token?); fell back to the job summary and annotations, the exit code still reflects the verdict")
        elif comment_refused is not None:
            say(f"molt-budget: could not post the PR comment: {_describe(comment_refused)} (the token cannot write to "
                "pull requests); the check run carries the verdict")
        outcome.fell_back = check_refused is not None or outcome.check_run_id is None
    if not api_ok or outcome.fell_back or outcome.check_run_id is None:
        for line in workflow_commands(report):
            print(scrub(line), file=out, flush=True)
            outcome.workflow_commands += 1
    _write_summary(ctx, report, outcome, say, hint, sparklines)
    if ctx.output:
        try:
            write_outputs(ctx.output, {name: scrub(value) for name, value in output_values(report, outcome).items()})
            outcome.outputs_written = True
        except OSError as exc:
            say(f"molt-budget: could not write $GITHUB_OUTPUT: {_describe(exc)}")


def _describe(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, (GitHubError, OSError)) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:500]


def _post_comment(gh: GitHubClient, ctx: GitHubContext, report: Report, outcome: PublishOutcome,
                  say: Callable[[str], None], hint: str | None, sparklines: dict[str, list[float]] | None,
                  bot_login: str | None = None) -> None:
    """Sticky comment on the PR, if this event has one; raises GitHubError (403 = read-only token)."""
    assert ctx.repository and ctx.head_sha
    number = ctx.pr_number
    if number is None and ctx.pr_lookup:
        number = find_fork_pr(gh, ctx.repository, ctx.pr_lookup[0], ctx.pr_lookup[1])
    if number is None:
        say(f"molt-budget: no pull request for this {ctx.event_name or 'run'} event: no PR comment, check run only")
        return
    if ctx.event_name == "workflow_run" and ctx.pr_lookup is None:
        now = pr_head_now(gh, ctx, number)
        if now and now != ctx.head_sha:
            say(f"molt-budget: PR #{number} has moved on to {now[:12]} since this run measured {ctx.head_sha[:12]}: "
                "no PR comment from this older run (its check run still goes on its commit)")
            return
    marker = marker_for(report)
    body = render_markdown(report, max_chars=COMMENT_MAX, marker=marker, full_report_hint=hint, sparklines=sparklines)
    action, comment = upsert_comment(gh, ctx.repository, number, marker, body, bot_login)
    outcome.comment, outcome.comment_url = action, (comment or {}).get("html_url")
    say(f"molt-budget: {action} the PR comment on #{number}" + (f": {outcome.comment_url}" if outcome.comment_url else ""))


def _post_check_run(gh: GitHubClient, ctx: GitHubContext, report: Report, outcome: PublishOutcome,
                    check_name: str, say: Callable[[str], None], hint: str | None,
                    sparklines: dict[str, list[float]] | None) -> None:
    assert ctx.repository and ctx.head_sha
    summary = render_markdown(report, max_chars=CHECK_TEXT_MAX, full_report_hint=hint, sparklines=sparklines)
    try:
        run, batches = create_check_run(
            gh, ctx.repository, name=check_name, head_sha=ctx.head_sha, conclusion=outcome.conclusion,
            title=title_for(report), summary=summary, notes=check_annotations(report), details_url=ctx.report_url,
        )
    except AnnotationsFailed as exc:
        outcome.check_run_id, outcome.check_run_url = _int(exc.run.get("id")), exc.run.get("html_url")
        outcome.annotation_batches = exc.batches
        say(f"molt-budget: check run {check_name!r} on {ctx.head_sha[:12]}: {outcome.conclusion}; {exc}")
        return
    outcome.check_run_id, outcome.check_run_url = _int(run.get("id")), run.get("html_url")
    outcome.annotation_batches = batches
    say(f"molt-budget: check run {check_name!r} on {ctx.head_sha[:12]}: {outcome.conclusion}, "
        f"{sum(batches)} annotation(s)" + (f": {outcome.check_run_url}" if outcome.check_run_url else ""))


def _write_summary(ctx: GitHubContext, report: Report, outcome: PublishOutcome, say: Callable[[str], None],
                   hint: str | None, sparklines: dict[str, list[float]] | None) -> None:
    if not ctx.step_summary:
        return
    text = render_markdown(report, max_chars=SUMMARY_MAX, full_report_hint=hint, sparklines=sparklines)
    if outcome.fell_back:
        text = "> [!WARNING]\n> molt-budget could not post its check run to GitHub (see the job log); this summary " \
               "and the annotations carry the verdict.\n\n" + text
    from molt_budget.results.store import open_for_append

    try:
        with open_for_append(ctx.step_summary) as fh:
            fh.write((ctx.token.scrub(text) if ctx.token else text) + "\n")
        outcome.summary_written = True
    except OSError as exc:
        say(f"molt-budget: could not write the job summary: {_describe(exc)}")
