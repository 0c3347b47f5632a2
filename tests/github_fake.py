"""A fake api.github.com on 127.0.0.1 that checks every request against GitHub's OpenAPI description.

Why: the reporter must keep GitHub's real contract (paths, methods, ids, bodies, the
50-annotation cap, the 65,535-character summary) without network. Requests are validated
with openapi-core against tests/github_data/openapi-trimmed.json (GitHub's published
description, trimmed and made strict by trim_openapi.py); replies are built from the
description's own examples and validated too. Comments and check runs live in memory so
the sticky-comment and annotation-batching logic run for real. Scripted faults (403, 422,
5xx, rate limits) are served before the normal behaviour.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

DATA = Path(__file__).resolve().parent / "github_data"
SPEC = json.loads((DATA / "openapi-trimmed.json").read_text(encoding="utf-8"))
EVENTS = DATA / "events"
TOKEN = "ghs_FAKEfakeFAKEfake0123456789abcdefABCDEF"
COMMENT_MAX = 65_536
# What the workflow checked out (GITHUB_SHA): the merge commit the fixture reports measured
MEASURED_SHA = "4f1e2d3c4b5a69788766554433221100aabbccdd"
FORK_403 = {"message": "Resource not accessible by integration",
            "documentation_url": "https://docs.github.com/rest/issues/comments#create-an-issue-comment", "status": "403"}


@dataclass
class Fault:
    """A scripted reply for the next `times` requests matching method and path regex."""

    method: str
    path: str
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    authorization: str | None


def example(name: str) -> Any:
    """A response example from GitHub's description (a canned reply)."""
    return copy.deepcopy(SPEC["components"]["examples"][name]["value"])


def _example(name: str) -> dict[str, Any]:
    return copy.deepcopy(SPEC["components"]["examples"][name]["value"])


def _routes() -> list[tuple[re.Pattern[str], str, dict[str, Any]]]:
    out = []
    for template, item in SPEC["paths"].items():
        regex = re.compile("^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template)) + "$")
        out.append((regex, template, item))
    return out


ROUTES = _routes()


def _declared_query(item: dict[str, Any], method: str) -> set[str]:
    names = set()
    for param in list(item.get("parameters", [])) + list(item[method].get("parameters", [])):
        if "$ref" in param:
            param = SPEC["components"]["parameters"][param["$ref"].rsplit("/", 1)[1]]
        if param.get("in") == "query":
            names.add(param["name"])
    return names


def _violations(validate: Callable[[], None]) -> list[Exception]:
    """What GitHub's description says is wrong, as a list (empty: nothing). openapi-core's
    validate_* check exactly what unmarshal_* check, without building the unmarshalled
    objects nobody reads: 3-5 times faster a request (each test makes dozens)."""
    from openapi_core.exceptions import OpenAPIError

    try:
        validate()
    except OpenAPIError as err:
        return [err]
    return []


class FakeGitHub:
    """State and behaviour; `url` is the API base (with `/api/v3` for the Enterprise flavour)."""

    def __init__(self, server: HTTPServer, prefix: str = "", repo: str = "Codertocat/Hello-World") -> None:
        self.server = server
        self.prefix = prefix
        self.repo = repo
        self.url = server.url_for(prefix or "/").rstrip("/")
        # openapi-core is imported by the first fake, not at collection: ~0.7 CPU-s that every
        # xdist worker paid before its first test, whether or not it runs a GitHub test
        from openapi_core import Config, OpenAPI

        spec = copy.deepcopy(SPEC)
        spec["servers"] = [{"url": self.url}]
        self.openapi = OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))
        self.token = TOKEN
        self.comments: dict[int, dict[str, Any]] = {}
        self.check_runs: dict[int, dict[str, Any]] = {}
        self.annotations: dict[int, list[dict[str, Any]]] = {}
        self.pulls: list[dict[str, Any]] = []
        self.commits: set[str] = set()        # empty = every SHA exists
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self.violations: list[str] = []
        self.next_link_base: str | None = None   # serve Link rel="next" pointing here instead of at ourselves
        self.read_only = False                    # a fork PR's token: every write answers 403
        self.slow: list[Fault] = []               # do the request, then answer only after `body` seconds
        self._ids = 1000
        self._lock = threading.Lock()
        server.expect_request(re.compile(".*")).respond_with_handler(self.handle)

    # -- scripting --------------------------------------------------------------------

    def fail(self, method: str, path: str, status: int, body: Any = None, headers: dict[str, str] | None = None,
             times: int = 1) -> None:
        self.faults.append(Fault(method, path, status, body if body is not None else {"message": f"fake {status}"},
                                 headers or {}, times))

    def add_comment(self, number: int, body: str, login: str = "someone", kind: str = "User") -> dict[str, Any]:
        return self._new_comment(number, body, login, kind)

    def issue_comments(self, number: int) -> list[dict[str, Any]]:
        return [c for c in sorted(self.comments.values(), key=lambda c: c["id"]) if c["_issue"] == number]

    def requests_to(self, method: str, pattern: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and re.search(pattern, s.path)]

    # -- the handler ------------------------------------------------------------------

    def answer_late(self, method: str, path: str, seconds: float, times: int = 1) -> None:
        """The request is carried out at once, the answer sent `seconds` later (a slow GitHub)."""
        self.slow.append(Fault(method, path, 200, seconds, {}, times))

    def handle(self, request: Request) -> Response:
        with self._lock:
            response = self._handle(request)
            self._validate_response(request, response)
            delay = 0.0
            for slow in self.slow:
                if slow.times > 0 and slow.method == request.method and re.search(slow.path, request.path):
                    slow.times -= 1
                    delay = float(slow.body)
                    break
        if delay:
            time.sleep(delay)
        return response

    def _handle(self, request: Request) -> Response:
        body = request.get_json(silent=True) if request.data else None
        path = request.path[len(self.prefix):] if self.prefix and request.path.startswith(self.prefix) else request.path
        self.seen.append(Seen(request.method, path, dict(request.args), body, request.headers.get("Authorization")))
        if self.prefix and not request.path.startswith(self.prefix + "/"):
            return self._error(404, "Not Found (fake: outside the API base)")
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._error(401, "Bad credentials")
        problem = self._check_request(request, path)
        if problem:
            self.violations.append(f"{request.method} {path}: {problem}")
            return self._error(422, f"Invalid request. (fake: {problem})")
        for fault in self.faults:
            if fault.times > 0 and fault.method == request.method and re.search(fault.path, path):
                fault.times -= 1
                return self._json(fault.status, fault.body, fault.headers)
        if self.read_only and request.method in ("POST", "PATCH", "DELETE", "PUT"):
            return self._json(403, FORK_403)
        return self._route(request.method, path, body, request.args)

    def _check_request(self, request: Request, path: str) -> str | None:
        match = next(((t, item) for regex, t, item in ROUTES if regex.match(path)), None)
        if match is None or request.method.lower() not in match[1]:
            return "no such operation in GitHub's description"
        declared = _declared_query(match[1], request.method.lower())
        unknown = set(request.args) - declared
        if unknown:
            return f"query parameters not in GitHub's description: {sorted(unknown)}"
        if "per_page" in request.args and not 1 <= int(request.args["per_page"]) <= 100:
            return "per_page must be 1..100"
        if request.method in ("POST", "PATCH", "PUT") and request.mimetype != "application/json":
            return f"content type {request.mimetype!r} is not application/json"
        from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest

        errors = _violations(lambda: self.openapi.validate_request(WerkzeugOpenAPIRequest(request)))
        if errors:
            causes = []
            for err in errors:
                inner = getattr(err, "__cause__", None)
                details = getattr(inner, "schema_errors", None) or []
                causes.append(f"{type(err).__name__}: " + "; ".join(str(e.message) for e in details) if details else repr(err))
            return " | ".join(causes)
        return None

    def _validate_response(self, request: Request, response: Response) -> None:
        if response.status_code >= 300 or response.status_code == 204:    # scripted faults and empty replies
            return
        data = json.loads(response.get_data())
        if isinstance(data, list) and len(data) > 2:   # items come from one code path: two are enough, and fast
            response = Response(json.dumps(data[:2]), status=response.status_code, content_type=response.content_type)
        from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse

        errors = _violations(lambda: self.openapi.validate_response(WerkzeugOpenAPIRequest(request), WerkzeugOpenAPIResponse(response)))
        if errors:
            self.violations.append(f"fake reply to {request.method} {request.path} breaks the description: {errors!r}")

    # -- behaviour --------------------------------------------------------------------

    def _route(self, method: str, path: str, body: Any, args: Any) -> Response:
        repo = f"/repos/{self.repo}"
        m = re.fullmatch(repo + r"/issues/(\d+)/comments", path)
        if m and method == "GET":
            return self._page([c for c in self.issue_comments(int(m[1]))], path, args)
        if m and method == "POST":
            if len(body["body"]) > COMMENT_MAX:
                return self._validation("IssueComment", "body", f"body is too long (maximum is {COMMENT_MAX} characters)")
            return self._json(201, self._public(self._new_comment(int(m[1]), body["body"], "github-actions[bot]", "Bot")))
        m = re.fullmatch(repo + r"/issues/comments/(\d+)", path)
        if m:
            comment = self.comments.get(int(m[1]))
            if comment is None:
                return self._error(404, "Not Found")
            if method == "GET":
                return self._json(200, self._public(comment))
            if method == "DELETE":
                del self.comments[comment["id"]]
                return Response(status=204)
            if len(body["body"]) > COMMENT_MAX:
                return self._validation("IssueComment", "body", f"body is too long (maximum is {COMMENT_MAX} characters)")
            comment["body"] = body["body"]
            comment["updated_at"] = "2026-11-26T15:00:00Z"
            return self._json(200, self._public(comment))
        if path == repo + "/check-runs" and method == "POST":
            if self.commits and body["head_sha"] not in self.commits:
                return self._json(422, {"message": f"No commit found for SHA: {body['head_sha']}",
                                        "documentation_url": "https://docs.github.com/rest/checks/runs#create-a-check-run",
                                        "status": "422"})
            return self._json(201, self._new_check_run(body))
        m = re.fullmatch(repo + r"/commits/([^/]+)/check-runs", path)
        if m and method == "GET":
            runs = [r for r in self.check_runs.values() if r["head_sha"] == m[1]
                    and ("check_name" not in args or r["name"] == args["check_name"])]
            per_page, page = int(args.get("per_page", 30)), int(args.get("page", 1))
            chunk = runs[(page - 1) * per_page: page * per_page]
            return self._json(200, {"total_count": len(runs), "check_runs": chunk})
        m = re.fullmatch(repo + r"/check-runs/(\d+)", path)
        if m:
            run = self.check_runs.get(int(m[1]))
            if run is None:
                return self._error(404, "Not Found")
            if method == "PATCH":
                self._update_check_run(run, body)
            return self._json(200, run)
        if path == repo + "/pulls" and method == "GET":
            head = args.get("head")
            state = args.get("state", "open")
            items = [p for p in self.pulls if (not head or p["head"]["label"] == head) and (state == "all" or p["state"] == state)]
            return self._page(items, path, args)
        return self._error(404, "Not Found")

    def _new_comment(self, number: int, body: str, login: str, kind: str) -> dict[str, Any]:
        self._ids += 1
        comment = _example("issue-comment")
        comment.update(
            id=self._ids, node_id=f"IC_{self._ids}", body=body,
            url=f"{self.url}/repos/{self.repo}/issues/comments/{self._ids}",
            html_url=f"https://github.com/{self.repo}/pull/{number}#issuecomment-{self._ids}",
            issue_url=f"{self.url}/repos/{self.repo}/issues/{number}",
            created_at="2026-11-26T14:00:00Z", updated_at="2026-11-26T14:00:00Z",
        )
        comment["user"].update(login=login, type=kind)
        comment["_issue"] = number
        self.comments[self._ids] = comment
        return comment

    @staticmethod
    def _public(comment: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in comment.items() if not k.startswith("_")}

    def _new_check_run(self, body: dict[str, Any]) -> dict[str, Any]:
        self._ids += 1
        run = _example("check-run")
        output = body.get("output") or {}
        run.update(
            id=self._ids, node_id=f"CR_{self._ids}", head_sha=body["head_sha"], name=body["name"],
            external_id=body.get("external_id", ""), details_url=body.get("details_url", ""),
            url=f"{self.url}/repos/{self.repo}/check-runs/{self._ids}",
            html_url=f"https://github.com/{self.repo}/runs/{self._ids}",
            status=body.get("status", "queued") if "conclusion" not in body else "completed",
            conclusion=body.get("conclusion"),
            completed_at=body.get("completed_at"),
        )
        run["output"] = {"title": output.get("title"), "summary": output.get("summary"), "text": output.get("text"),
                         "annotations_count": 0, "annotations_url": run["url"] + "/annotations"}
        self.check_runs[self._ids] = run
        self.annotations[self._ids] = []
        self._update_check_run(run, {"output": output} if output else {})
        return run

    def _update_check_run(self, run: dict[str, Any], body: dict[str, Any]) -> None:
        for key in ("name", "details_url", "external_id", "status", "conclusion", "completed_at"):
            if key in body:
                run[key] = body[key]
        output = body.get("output")
        if output:
            run["output"].update({k: output[k] for k in ("title", "summary", "text") if k in output})
            self.annotations[run["id"]].extend(output.get("annotations", []))
            run["output"]["annotations_count"] = len(self.annotations[run["id"]])

    def _page(self, items: list[dict[str, Any]], path: str, args: Any) -> Response:
        per_page = int(args.get("per_page", 30))
        page = int(args.get("page", 1))
        chunk = items[(page - 1) * per_page: page * per_page]
        headers = {}
        last = max(1, -(-len(items) // per_page))
        if page < last:
            query = {k: v for k, v in args.items() if k != "page"}
            base = self.next_link_base or self.url
            next_url = f"{base}{path}?{urlencode({**query, 'page': page + 1})}"
            last_url = f"{self.url}{path}?{urlencode({**query, 'page': last})}"
            headers["Link"] = f'<{next_url}>; rel="next", <{last_url}>; rel="last"'
        return self._json(200, [self._public(i) if "_issue" in i else i for i in chunk], headers)

    # -- replies ----------------------------------------------------------------------

    @staticmethod
    def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
        return Response(json.dumps(body), status=status, headers=headers or {}, content_type="application/json; charset=utf-8")

    def _error(self, status: int, message: str) -> Response:
        return self._json(status, {"message": message, "documentation_url": "https://docs.github.com/rest", "status": str(status)})

    def _validation(self, resource: str, field_name: str, message: str) -> Response:
        return self._json(422, {"message": "Validation Failed", "errors": [
            {"resource": resource, "code": "custom", "field": field_name, "message": message}],
            "documentation_url": "https://docs.github.com/rest", "status": "422"})


class _Server(HTTPServer):
    """pytest-httpserver's server, polling for shutdown every 50 ms instead of werkzeug's 0.5 s:
    stopping the session's two servers cost each xdist worker a second at its end."""

    def thread_target(self) -> None:
        assert self.server is not None
        self.server.serve_forever(poll_interval=0.05)


def start_server() -> HTTPServer:
    server = _Server(host="127.0.0.1", port=0, threaded=True)   # a slow answer must not hold up the next request
    server.start()
    return server


@pytest.fixture(scope="session")
def github_server() -> Iterator[HTTPServer]:
    """One server per session: stopping a werkzeug server costs half a second."""
    server = start_server()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def other_server() -> Iterator[HTTPServer]:
    """Another origin on 127.0.0.1 (another port): where pagination must never go."""
    server = start_server()
    yield server
    server.stop()


@pytest.fixture
def fake_github(github_server: HTTPServer) -> Iterator[FakeGitHub]:
    github_server.clear()
    fake = FakeGitHub(github_server)
    yield fake
    github_server.clear()
    assert not fake.violations, "requests or replies outside GitHub's description:\n" + "\n".join(fake.violations)


def event_env(fake: FakeGitHub, tmp_path: Path, event: str, payload: dict[str, Any] | None = None,
              token: str | None = TOKEN, **extra: str) -> dict[str, str]:
    """A GITHUB_* environment as the runner sets it, with GitHub's example payload for `event`."""
    files = {"pull_request": "pull_request.opened.json", "merge_group": "merge_group.checks_requested.json",
             "push": "push.json", "workflow_run": "workflow_run.completed.json"}
    if payload is None:
        payload = json.loads((EVENTS / files[event]).read_text(encoding="utf-8"))
    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps(payload), encoding="utf-8")
    env = {
        "GITHUB_EVENT_NAME": event, "GITHUB_EVENT_PATH": str(event_path), "GITHUB_REPOSITORY": fake.repo,
        "GITHUB_API_URL": fake.url, "GITHUB_SERVER_URL": "https://github.com", "GITHUB_SHA": MEASURED_SHA,
        "GITHUB_RUN_ID": "4242", "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"), "GITHUB_OUTPUT": str(tmp_path / "output.txt"),
    }
    if token is not None:
        env["GITHUB_TOKEN"] = token
    env.update(extra)
    return env
