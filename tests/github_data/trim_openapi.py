"""Trim GitHub's published OpenAPI description to the operations molt-budget calls, made strict.

Why: the fake api.github.com in tests/test_github_*.py validates every request against
GitHub's own contract, but the full description is 13 MB and needs npm to fetch. This
script keeps only the operations below plus the transitive closure of their
`#/components/...` references (~100 KB), so CI needs neither node nor the network.

Source (pinned): npm package `@octokit/openapi@23.0.2` ("GitHub's official OpenAPI spec",
MIT), file `package/generated/api.github.com.json` (OpenAPI 3.0.3).

Refresh procedure:

    tmp=$(mktemp -d) && cd "$tmp"
    npm pack @octokit/openapi@23.0.2           # bump the version here and in PINNED below
    tar xzf octokit-openapi-23.0.2.tgz package/generated/api.github.com.json
    cd - && python tests/github_data/trim_openapi.py \
        "$tmp/package/generated/api.github.com.json" tests/github_data/openapi-trimmed.json

What "strict" means (GitHub's description is lenient; the real API is not always):
- the document is rewritten as OpenAPI 3.1: `nullable: true` becomes a JSON-Schema type
  list (`["string", "null"]`) or `anyOf [..., {"type": "null"}]`, so plain `jsonschema`
  (Draft 2020-12) can validate it too;
- every object schema inside a *request body* that lists `properties` and says nothing
  about `additionalProperties` gets `additionalProperties: false`, so a misspelled
  optional field fails the test instead of being silently ignored by GitHub;
- a name listed in `required` but missing from `properties` (the spec has a few) is
  added as an unconstrained property so the strict schema stays satisfiable;
- `description` texts are dropped (size); examples are kept (canned replies).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PINNED = "@octokit/openapi@23.0.2"

OPERATIONS: dict[str, list[str]] = {
    "/repos/{owner}/{repo}/check-runs": ["post"],
    "/repos/{owner}/{repo}/check-runs/{check_run_id}": ["get", "patch"],
    "/repos/{owner}/{repo}/commits/{ref}/check-runs": ["get"],
    "/repos/{owner}/{repo}/issues/{issue_number}/comments": ["get", "post"],
    "/repos/{owner}/{repo}/issues/comments/{comment_id}": ["get", "patch", "delete"],
    "/repos/{owner}/{repo}/pulls": ["get"],
}

DATA_KEYS = {"examples", "example", "default", "enum", "const", "value"}   # payloads, not schema: never stripped
DROP_KEYS = {"description", "x-github", "externalDocs", "x-githubEnterpriseOnly", "x-multi-segment"}


def refs(node: Any) -> set[str]:
    """Every `$ref` string in a JSON tree."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value)
            else:
                found |= refs(value)
    elif isinstance(node, list):
        for item in node:
            found |= refs(item)
    return found


def resolve(spec: dict[str, Any], ref: str) -> Any:
    node: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def strip(node: Any) -> Any:
    """Drop documentation keys; keep `description` when it is a property *name*, and keep data intact."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in DROP_KEYS and not (key == "description" and isinstance(value, dict)):
                continue
            out[key] = value if key in DATA_KEYS else strip(value)
        return out
    if isinstance(node, list):
        return [strip(item) for item in node]
    return node


def denull(node: Any) -> Any:
    """OAS 3.0 `nullable` → JSON-Schema type lists (OAS 3.1)."""
    if isinstance(node, list):
        return [denull(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: denull(value) for key, value in node.items()}
    if node.pop("nullable", False):
        if "type" in node and "$ref" not in node:
            types = node["type"] if isinstance(node["type"], list) else [node["type"]]
            node["type"] = types + ["null"]
            if "enum" in node and None not in node["enum"]:
                node["enum"] = node["enum"] + [None]
        else:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


def strictify(schema: Any) -> Any:
    """additionalProperties: false on every object that lists properties (request bodies)."""
    if isinstance(schema, list):
        return [strictify(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: strictify(value) for key, value in schema.items()}
    props = schema.get("properties")
    if isinstance(props, dict) and "additionalProperties" not in schema:
        for name in schema.get("required", []):
            props.setdefault(name, {})
        schema["additionalProperties"] = False
    return schema


def trim(spec: dict[str, Any]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path, methods in OPERATIONS.items():
        item = spec["paths"][path]
        paths[path] = {m: item[m] for m in methods}
        if "parameters" in item:
            paths[path]["parameters"] = item["parameters"]
    components: dict[str, dict[str, Any]] = {}
    todo = sorted(refs(paths))
    seen: set[str] = set()
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        _, _, kind, name = ref.split("/", 3)
        node = resolve(spec, ref)
        components.setdefault(kind, {})[name] = node
        todo.extend(sorted(refs(node) - seen))
    out = {
        "openapi": "3.1.0",
        "info": {
            "title": spec["info"]["title"],
            "version": spec["info"]["version"],
            "x-trimmed-from": f"npm {PINNED} package/generated/api.github.com.json",
            "x-trimmed-by": "tests/github_data/trim_openapi.py (strict: see its docstring)",
        },
        "servers": spec["servers"],
        "paths": paths,
        "components": {kind: dict(sorted(items.items())) for kind, items in sorted(components.items())},
    }
    out = denull(strip(out))
    out["components"]["examples"] = components.get("examples", {})   # example payloads verbatim
    for item in out["paths"].values():
        for method, op in item.items():
            if method == "parameters":
                continue
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body and "schema" in body:
                body["schema"] = strictify(body["schema"])
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    trimmed = trim(spec)
    Path(argv[1]).write_text(json.dumps(trimmed, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"{argv[1]}: {len(trimmed['paths'])} paths, "
          f"{sum(len(v) for v in trimmed['components'].values())} components, {Path(argv[1]).stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
