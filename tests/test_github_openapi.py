"""The committed, trimmed OpenAPI description is what trim_openapi.py makes: strict, 3.1, pinned."""

from __future__ import annotations

import importlib.util
import json
from typing import Any

from github_fake import DATA, SPEC, FakeGitHub, fake_github, github_server  # noqa: F401 (fixtures)
from werkzeug import Response

spec = importlib.util.spec_from_file_location("trim_openapi", DATA / "trim_openapi.py")
assert spec and spec.loader
trim_openapi = importlib.util.module_from_spec(spec)
spec.loader.exec_module(trim_openapi)


def walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def test_committed_copy_is_pinned_and_strict() -> None:
    assert SPEC["openapi"] == "3.1.0"
    assert trim_openapi.PINNED in SPEC["info"]["x-trimmed-from"]
    schemas = {k: v for k, v in SPEC.items() if k != "components"}, SPEC["components"]["schemas"]
    assert not any("nullable" in n for n in walk(schemas))
    assert set(SPEC["paths"]) == set(trim_openapi.OPERATIONS)
    create = SPEC["paths"]["/repos/{owner}/{repo}/check-runs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert create["additionalProperties"] is False
    output = create["properties"]["output"]
    assert output["additionalProperties"] is False and output["properties"]["annotations"]["maxItems"] == 50
    assert output["properties"]["summary"]["maxLength"] == 65535
    assert output["properties"]["annotations"]["items"]["additionalProperties"] is False


def test_trim_turns_nullable_into_type_lists_and_closes_request_bodies() -> None:
    source = {
        "openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "servers": [{"url": "https://api.github.com"}],
        "paths": {path: {m: {"responses": {"200": {"$ref": "#/components/responses/ok"}}} for m in methods}
                  for path, methods in trim_openapi.OPERATIONS.items()},
        "components": {"responses": {"ok": {"description": "ok", "content": {"application/json": {"schema": {
            "$ref": "#/components/schemas/thing"}}}}},
            "schemas": {"thing": {"type": "object", "description": "dropped", "properties": {
                "a": {"type": "string", "nullable": True, "enum": ["x"]},
                "b": {"nullable": True, "allOf": [{"type": "integer"}]},
                "description": {"type": "string"}}},
                "unused": {"type": "object"}}},
    }
    source["paths"]["/repos/{owner}/{repo}/check-runs"]["post"]["requestBody"] = {"content": {"application/json": {"schema": {
        "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name", "extra"]}}}}
    out = trim_openapi.trim(json.loads(json.dumps(source)))
    thing = out["components"]["schemas"]["thing"]
    assert "unused" not in out["components"]["schemas"] and "description" not in thing
    assert thing["properties"]["a"] == {"type": ["string", "null"], "enum": ["x", None]}
    assert thing["properties"]["b"] == {"anyOf": [{"allOf": [{"type": "integer"}]}, {"type": "null"}]}
    assert "description" in thing["properties"]                      # a property named description stays
    body = out["paths"]["/repos/{owner}/{repo}/check-runs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["additionalProperties"] is False and body["properties"]["extra"] == {}


def test_the_fake_refuses_requests_and_replies_outside_the_description(fake_github: FakeGitHub) -> None:
    """The net under every GitHub test: a request or a reply that breaks GitHub's description is a violation."""
    import requests

    headers = {"Authorization": f"Bearer {fake_github.token}", "Accept": "application/vnd.github+json"}
    comments = f"{fake_github.url}/repos/{fake_github.repo}/issues/2/comments"
    assert requests.post(comments, json={"body": 5}, headers=headers, timeout=30).status_code == 422
    checks = f"{fake_github.url}/repos/{fake_github.repo}/check-runs"
    assert requests.post(checks, json={"name": "x", "head_sha": "a" * 40, "status": "bogus"}, headers=headers, timeout=30).status_code == 422
    assert [v.split(": ")[1] for v in fake_github.violations] == ["InvalidRequestBody", "InvalidRequestBody"]
    fake_github.violations.clear()
    route = fake_github._route

    def reply_with_a_string_id(*args: Any) -> Any:
        return Response('{"id": "not-an-int"}', status=route(*args).status_code, content_type="application/json")

    fake_github._route = reply_with_a_string_id        # type: ignore[method-assign]
    assert requests.post(comments, json={"body": "ok"}, headers=headers, timeout=30).status_code == 201
    assert len(fake_github.violations) == 1 and "breaks the description" in fake_github.violations[0]
    fake_github.violations.clear()                      # seen: the fixture's own check must not fail the test
