"""Cross-project matrix: a key of project B against every route, filled with project A's ids.

Issue 16 item 8. Project A holds one of every object type the API has (traces, spans,
sessions, users, scores, score configs, prompts with versions and labels, datasets with items,
experiments, annotation queues, dashboards, evaluation rules, alert rules, drift monitors,
gateway models, guardrail policies, registry models/versions/aliases, canaries, training runs
and sweeps, eval sweeps, collections, keys, prices), each carrying a content marker. Then, for
every operation of ``/api/v1/openapi.json`` (the cases are generated from the schema, so a new
route is covered the day it is added, and a route whose path parameter the test cannot fill
with one of A's ids fails the test), B's admin key calls it with A's ids in the path (and in the
body where a body names other objects):

- no answer ever carries A's content marker, and list answers never name A's ids;
- reads of A's objects are 404 (or an empty answer of B's own);
- writes land in B's namespace or are refused: A's view of every object, read with A's key
  before and after, is unchanged;
- no 5xx anywhere.

A real server on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, ProjectKeys, make_project

pytestmark = pytest.mark.integration

TAG = uuid.uuid4().hex[:10]
MARK = f"amark{TAG}"  # in the content of every A object: must never reach B
AID = f"aid{TAG}"  # in A's ids and names: must never be listed for B


def _client(server: LiveServer, keys: ProjectKeys) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=keys.basic(), timeout=120, follow_redirects=False)


def _ok(r: httpx.Response, what: str) -> dict[str, Any]:
    assert r.status_code in (200, 201), (what, r.status_code, r.text[:500])
    return r.json() if r.content else {}


def _span(trace_id: str, sid: str, **kw: Any) -> dict[str, Any]:
    return {"type": "span", "body": {"id": sid, "trace_id": trace_id, "name": f"{AID}-span",
                                     "start_time": "2026-11-20T10:00:00Z", "end_time": "2026-11-20T10:00:01Z", **kw}}


def seed_a(c: httpx.Client) -> dict[str, Any]:
    """One of every object type in A (with A's key); returns the ids by kind."""
    ids: dict[str, Any] = {}
    tr = f"{AID}-trace"
    _ok(c.post("/api/v1/ingest", json={"batch": [
        _span(tr, f"{AID}-root", input=f"question {MARK}", output=f"answer {MARK}", user_id=f"{AID}-user",
              session_id=f"{AID}-session", kind="generation", model="gpt-4o-mini"),
    ]}), "ingest")
    ids.update(trace_id=tr, span_id=f"{AID}-root", user_id=f"{AID}-user", session_id=f"{AID}-session")
    sc = _ok(c.post("/api/v1/score-configs", json={"name": f"{AID}-correct", "data_type": "boolean",
                                                   "description": MARK}), "score config")
    ids["config_id"] = sc["id"]
    s = _ok(c.post("/api/v1/scores", json={"name": f"{AID}-score", "value": 1, "trace_id": tr,
                                           "comment": MARK}), "score")
    ids["score_id"] = s.get("id") or (s.get("data") or [{}])[0].get("id")
    p = f"{AID}-prompt"
    _ok(c.post("/api/v1/prompts", json={"name": p, "prompt": f"Say {MARK} to {{{{name}}}}",
                                        "labels": ["production", "staging"]}), "prompt")
    ids.update(prompt=p, label="production", version=1)
    ds = f"{AID}-dataset"
    _ok(c.post("/api/v1/datasets", json={"name": ds, "description": MARK,
                                         "items": [{"input": f"q {MARK}", "expected_output": MARK}]}), "dataset")
    items = _ok(c.get(f"/api/v1/datasets/{ds}/items"), "dataset items")["data"]
    ids.update(dataset=ds, dataset_item=items[0]["id"])
    ex = _ok(c.post("/api/v1/experiments", json={"name": f"{AID}-exp", "dataset_name": ds, "metadata": {"m": MARK},
                                                 "scorers": [{"name": "acc", "direction": "higher"}]}),
             "experiment")
    ids["experiment_id"] = ex["id"]
    _ok(c.post(f"/api/v1/experiments/{ex['id']}/items", json={"items": [
        {"item_id": items[0]["id"], "position": 0, "input": MARK, "output": MARK,
         "scores": {"acc": {"value": 1.0}}}]}), "exp items")
    q = _ok(c.post("/api/v1/annotation-queues", json={"name": f"{AID}-queue", "description": MARK,
                                                      "score_config_ids": [sc["id"]], "items": [{"trace_id": tr}]}),
            "annotation queue")
    ids["queue_id"] = q["id"]
    aitems = _ok(c.get(f"/api/v1/annotation-queues/{q['id']}/items"), "queue items")["data"]
    ids["queue_item"] = aitems[0]["id"] if aitems else "none"
    d = _ok(c.post("/api/v1/dashboards", json={"name": f"{AID}-dash", "description": MARK}), "dashboard")
    ids["dashboard_id"] = d["id"]
    rule = _ok(c.post("/api/v1/evaluation-rules", json={
        "name": f"{AID}-rule", "filter": {"name": MARK}, "sample_rate": 1, "delay_s": 0, "enabled": False,
        "scorers": [{"type": "icontains", "params": {"value": MARK}, "name": "has-mark"}]}), "evaluation rule")
    ids["rule_id"] = rule["id"]
    _ok(c.post("/api/v1/alert-rules", json={
        "name": f"{AID}-alert", "description": MARK, "severity": "critical", "enabled": False,
        "condition": {"metric": "error_rate", "agg": "rate"}, "op": ">", "threshold": 0.2, "window_s": 300,
        "cooldown_s": 0, "eval_interval_s": 60,
        "channels": [{"type": "webhook", "params": {"url": "http://127.0.0.1:9/hook", "retries": 0}}]}),
        "alert rule")
    ids["alert"] = f"{AID}-alert"
    _ok(c.post("/api/v1/drift-monitors", json={
        "name": f"{AID}-drift", "description": MARK, "scope": {"filter": {"environment": "api"}},
        "window_s": 3600, "features": ["input_length"], "enabled": False}), "drift monitor")
    ids["monitor"] = f"{AID}-drift"
    _ok(c.put(f"/api/v1/guardrails/policies/{AID}-policy", json={"input": []}),
        "guardrail policy")
    ids["policy"] = f"{AID}-policy"
    reg = f"{AID}-model"
    for _ in range(2):
        _ok(c.post(f"/api/v1/registry/models/{reg}/versions", json={
            "artifact": {"kind": "external", "uri": f"hf://a/{AID}"}, "description": MARK}), "registry version")
    _ok(c.put(f"/api/v1/registry/models/{reg}/aliases/champion", json={"version": 1}), "registry alias")
    _ok(c.put(f"/api/v1/registry/models/{reg}/aliases/challenger", json={"version": 2}), "registry alias")
    ids.update(registry=reg, registry_alias="champion")
    gw = f"{AID}-gw"
    _ok(c.put(f"/api/v1/gateway/models/{gw}", json={"deployments": [
        {"provider": "openai", "model": f"registry:/{reg}@champion", "api_base": "http://127.0.0.1:9/v1",
         "api_key": f"sk-{MARK}", "max_retries": 0}]}), "gateway model")
    ids["gateway_model"] = gw
    can = _ok(c.post("/api/v1/canaries", json={"gateway_alias": gw, "model": reg, "candidate": "challenger",
                                               "step_duration_s": 3600, "min_requests": 5}), "canary")
    ids["canary_id"] = can["id"]
    run = _ok(c.post("/api/v1/training-runs", json={"method": "sft", "base_model": f"{AID}-base",
                                                    "params": {"note": MARK}}), "training run")
    ids["run_id"] = run["id"]
    sweep = _ok(c.post("/api/v1/training-sweeps", json={"name": f"{AID}-tsweep", "space": {"note": MARK}}),
                "training sweep")
    ids["training_sweep"] = sweep["id"]
    es = _ok(c.post("/api/v1/eval-sweeps", json={"name": f"{AID}-esweep", "suite": {"name": MARK, "path": "s.yaml"}}),
             "eval sweep")
    ids["eval_sweep"] = es["id"]
    col = f"{AID}-kb"
    _ok(c.post("/api/v1/collections", json={"name": col, "description": MARK}), "collection")
    _ok(c.post(f"/api/v1/collections/{col}/documents", json={"documents": [
        {"name": f"{AID}-doc.txt", "text": f"The secret is {MARK}."}]}), "collection document")
    ids["collection"] = col
    _ok(c.put(f"/api/v1/prices/{AID}-price-model", json={"input_per_million": 1, "output_per_million": 2}), "price")
    ids["price_model"] = f"{AID}-price-model"
    key = _ok(c.post("/api/v1/keys", json={"role": "viewer", "note": MARK}), "key")
    ids["public_key"] = key["public_key"]
    return ids


# --- which of A's ids fills which path parameter --------------------------------------------------

def _params(ids: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(path prefix, {param: A's value}); the first prefix a path starts with wins, then the
    generic names at the end."""
    return [
        ("/api/v1/prompts/", {"name": ids["prompt"], "label": ids["label"], "version": ids["version"]}),
        ("/api/public/v2/prompts/", {"name": ids["prompt"], "version": ids["version"]}),
        ("/api/v1/datasets/", {"name": ids["dataset"], "item_id": ids["dataset_item"]}),
        ("/api/public/v2/datasets/", {"name": ids["dataset"]}),
        ("/api/public/datasets/", {"name": ids["dataset"], "run": f"{AID}-exp"}),
        ("/api/public/dataset-items/", {"item_id": ids["dataset_item"]}),
        ("/api/public/scores/", {"score_id": ids["score_id"]}),
        ("/api/public/score-configs/", {"config_id": ids["config_id"]}),
        ("/api/v1/registry/models/", {"name": ids["registry"], "alias": ids["registry_alias"], "version": 1}),
        ("/api/v1/gateway/models/", {"name": ids["gateway_model"]}),
        ("/api/v1/guardrails/policies/", {"name": ids["policy"]}),
        ("/api/v1/collections/", {"name": ids["collection"]}),
        ("/api/v1/annotation-queues/", {"queue_id": ids["queue_id"], "item_id": ids["queue_item"]}),
        ("/api/v1/alert-rules/", {"rule": ids["alert"]}),
        ("/api/v1/evaluation-rules/", {"rule_id": ids["rule_id"]}),
        ("/api/v1/drift-monitors/", {"monitor": ids["monitor"]}),
        ("/api/v1/training-sweeps/", {"sweep_id": ids["training_sweep"]}),
        ("/api/v1/eval-sweeps/", {"sweep_id": ids["eval_sweep"]}),
        ("/api/v1/prices/", {"model": ids["price_model"]}),
        ("", {"trace_id": ids["trace_id"], "span_id": ids["span_id"], "config_id": ids["config_id"],
              "score_id": ids["score_id"], "experiment_id": ids["experiment_id"],
              "dashboard_id": ids["dashboard_id"], "canary_id": ids["canary_id"], "run_id": ids["run_id"],
              "public_key": ids["public_key"], "user_id": ids["user_id"]}),
    ]


# Path parameters that name no object of a project (or objects another part's test owns).
NOT_PROJECT_OBJECTS = {
    "/api/v1/audit-events/{event_id}": "audit events: tests/governance/test_audit*.py (project-scoped reads)",
    "/api/v1/invitations/{invitation_id}": "organisation level: tests/governance/test_people*.py",
    "/api/v1/members/{user_id}": "organisation members: tests/governance/test_people*.py",
    "/api/v1/users/{user_id}/disable": "people (organisation level): tests/governance/test_people*.py",
    "/api/v1/users/{user_id}/sessions/revoke": "people (organisation level): tests/governance/test_people*.py",
}

# Bodies for writes: a valid body, naming A's objects where the route takes ids in its body.
def _bodies(ids: dict[str, Any]) -> dict[tuple[str, str], Any]:
    tr = ids["trace_id"]
    return {
        ("POST", "/api/v1/ingest"): {"batch": [_span(tr, ids["span_id"], input="B writes here")]},
        ("POST", "/api/v1/scores"): {"name": "b-score", "value": 0, "trace_id": tr, "span_id": ids["span_id"]},
        ("POST", "/api/public/scores"): {"name": "b-score", "value": 0, "traceId": tr},
        ("POST", "/api/v1/feedback"): {"trace_id": tr, "name": "thumbs", "value": 1},
        ("POST", "/api/v1/datasets/{name}/from-traces"): {"trace_ids": [tr]},
        ("POST", "/api/v1/datasets/{name}/items"): {"items": [{"input": "b"}]},
        ("POST", "/api/v1/datasets/{name}/items/delete"): {"ids": [ids["dataset_item"]]},
        ("PATCH", "/api/v1/datasets/{name}"): {"description": "B was here"},
        ("POST", "/api/v1/datasets"): {"name": ids["dataset"], "items": [{"input": "b"}]},
        ("POST", "/api/v1/prompts"): {"name": ids["prompt"], "prompt": "B's own", "labels": ["production"]},
        ("POST", "/api/v1/prompts/{name}/versions"): {"prompt": "B's version"},
        ("PUT", "/api/v1/prompts/{name}/labels/{label}"): {"version": 1},
        ("PATCH", "/api/v1/prompts/{name}"): {"tags": ["b"]},
        ("POST", "/api/v1/prompts/{name}/labels/{label}/rollback"): {},
        ("POST", "/api/v1/prompts/{name}/versions/{version}/compile"): {"variables": {"name": "b"}},
        ("PATCH", "/api/public/v2/prompts/{name}/versions/{version}"): {"newLabels": ["production"]},
        ("POST", "/api/v1/experiments"): {"name": "b-exp", "dataset_name": ids["dataset"]},
        ("POST", "/api/v1/experiments/{experiment_id}/items"): {"items": [
            {"item_id": ids["dataset_item"], "position": 0, "input": "b", "output": "b"}]},
        ("PATCH", "/api/v1/experiments/{experiment_id}"): {"description": "B was here"},
        ("POST", "/api/v1/annotation-queues"): {"name": "b-queue", "score_config_ids": [ids["config_id"]],
                                                "items": [{"trace_id": tr}]},
        ("POST", "/api/v1/annotation-queues/{queue_id}/items"): {"items": [{"trace_id": tr}]},
        ("POST", "/api/v1/annotation-queues/{queue_id}/next"): {"annotator": "b"},
        ("POST", "/api/v1/annotation-queues/{queue_id}/items/{item_id}/annotations"): {
            "annotator": "b", "scores": [{"config_id": ids["config_id"], "value": True}]},
        ("POST", "/api/v1/annotation-queues/{queue_id}/to-dataset"): {"dataset": "b-ds"},
        ("PATCH", "/api/v1/annotation-queues/{queue_id}"): {"description": "B was here"},
        ("PATCH", "/api/v1/score-configs/{config_id}"): {"description": "B was here"},
        ("PATCH", "/api/v1/dashboards/{dashboard_id}"): {"description": "B was here"},
        ("PATCH", "/api/v1/evaluation-rules/{rule_id}"): {"enabled": False},
        ("PATCH", "/api/v1/alert-rules/{rule}"): {"description": "B was here"},
        ("PATCH", "/api/v1/drift-monitors/{monitor}"): {"description": "B was here"},
        ("PUT", "/api/v1/gateway/models/{name}"): {"deployments": [{"provider": "openai", "model": "b",
                                                                    "api_base": "http://127.0.0.1:9/v1"}]},
        ("PUT", "/api/v1/guardrails/policies/{name}"): {"input": []},
        ("PUT", "/api/v1/registry/models/{name}/aliases/{alias}"): {"version": 1},
        ("POST", "/api/v1/registry/models/{name}/versions"): {"artifact": {"kind": "external", "uri": "hf://b/m"}},
        ("PATCH", "/api/v1/registry/models/{name}"): {"description": "B was here"},
        ("PATCH", "/api/v1/registry/models/{name}/versions/{version}"): {"description": "B was here"},
        ("POST", "/api/v1/canaries"): {"gateway_alias": ids["gateway_model"], "model": ids["registry"],
                                       "candidate": "challenger"},
        ("PATCH", "/api/v1/training-runs/{run_id}"): {"status": "failed"},
        ("POST", "/api/v1/training-runs/{run_id}/steps"): {"steps": [{"step": 1, "metrics": {"loss": 1}}]},
        ("PATCH", "/api/v1/training-sweeps/{sweep_id}"): {"status": "failed"},
        ("PATCH", "/api/v1/eval-sweeps/{sweep_id}"): {"status": "failed"},
        ("POST", "/api/v1/collections/{name}/documents"): {"documents": [{"name": "b.txt", "text": "B's text"}]},
        ("POST", "/api/v1/collections/{name}/search"): {"query": "secret"},
        ("POST", "/api/v1/collections/{name}/answer"): {"question": "what is the secret?"},
        ("PUT", "/api/v1/prices/{model}"): {"input_per_million": 9, "output_per_million": 9},
        ("PUT", "/api/v1/gateway/keys/{public_key}"): {"limits": {"rpm": 1}},
        ("PUT", "/api/v1/guardrails/keys/{public_key}"): {"policy": "off"},
    }


# GET answers that are about time or the server, not A's objects: left out of the before/after view.
# (A subject export is a GET that is audited: reading it would change A's audit log itself.)
# (A's canary moves by itself: the worker's canary job steps it and appends events on its clock.)
VOLATILE = re.compile(r"^/api/v1/(health|gateway/health|gateway/spend|metrics/|alerts$|audit-events/(verify|export)"
                      r"|canaries$|canaries/\{canary_id\}$)"
                      r"|/(analytics|forecast|progress|agreement|stats|done)$|^/api/public/health"
                      r"|^/api/v1/subjects/\{user_id\}/export$|^/api/v1/dashboards/\{dashboard_id\}/data$")
# Keys whose value moves by itself (timestamps, counters the server keeps).
_MOVING = re.compile(r"(_at|At|_time|Time|timestamp|last_used|uptime|next_check|last_check)$")


def _fill(path: str, table: list[tuple[str, dict[str, Any]]]) -> str | None:
    names = re.findall(r"\{([^}:]+)(?::path)?\}", path)
    values: dict[str, Any] = {}
    for n in names:
        for prefix, mapping in table:
            if path.startswith(prefix) and n in mapping:
                values[n] = mapping[n]
                break
        else:
            return None
    return re.sub(r"\{([^}:]+)(?::path)?\}", lambda m: str(values[m.group(1)]), path)


def _operations(spec: dict[str, Any]) -> list[tuple[str, str]]:
    ops = [(m.upper(), p) for p, item in spec["paths"].items() for m in item if m in ("get", "post", "put",
                                                                                      "patch", "delete")]
    order = {"GET": 0, "POST": 1, "PUT": 1, "PATCH": 1, "DELETE": 2}
    return sorted(ops, key=lambda t: (order[t[0]], t[1]))


def _minimal(schema: dict[str, Any], spec: dict[str, Any], depth: int = 0) -> Any:
    """A small instance of a request schema (required properties only), for routes with no
    body in :func:`_bodies`: enough to get past validation on many routes."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _minimal(spec["components"]["schemas"][name], spec, depth + 1)
    for k in ("anyOf", "oneOf", "allOf"):
        if k in schema:
            return _minimal(schema[k][0], spec, depth + 1)
    if "default" in schema:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    t = schema.get("type")
    if t == "object" or "properties" in schema:
        if depth > 6:
            return {}
        return {n: _minimal(s, spec, depth + 1) for n, s in schema.get("properties", {}).items()
                if n in schema.get("required", [])}
    return {"array": [], "string": "b", "integer": 1, "number": 1, "boolean": False}.get(str(t))


def _request_body(method: str, path: str, spec: dict[str, Any], bodies: dict[tuple[str, str], Any]) -> Any:
    if (method, path) in bodies:
        return bodies[(method, path)]
    op = spec["paths"][path][method.lower()]
    content = (op.get("requestBody") or {}).get("content", {})
    if "application/json" in content:
        return _minimal(content["application/json"].get("schema", {}), spec)
    return None


def _view(c: httpx.Client, spec: dict[str, Any], table: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """What A sees: every GET route (filled with A's ids), timestamps left out."""

    def strip(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if not _MOVING.search(k)}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v

    out: dict[str, Any] = {}
    for method, path in _operations(spec):
        if method != "GET" or VOLATILE.search(path) or path in NOT_PROJECT_OBJECTS:
            continue
        url = _fill(path, table)
        if url is None:
            continue
        r = c.get(url)
        try:
            body: Any = r.json()
        except ValueError:
            body = r.text
        out[path] = (r.status_code, strip(body))
    return out


@pytest.mark.slow  # ~300 requests and two full views of A: 20-60 s
@pytest.mark.timeout(900)
def test_a_key_of_project_b_reaches_nothing_of_project_a(server: LiveServer) -> None:
    b = make_project(server.store, "project-b")
    spec = server.app.openapi()  # what /api/v1/openapi.json serves
    with _client(server, server.keys) as a_client, _client(server, b) as b_client:
        ids = seed_a(a_client)
        table = _params(ids)
        bodies = _bodies(ids)
        before = _view(a_client, spec, table)
        assert sum(1 for st, _ in before.values() if st == 200) > 40, before  # A's objects are really there

        uncovered: list[str] = []
        problems: list[str] = []
        seen = 0
        status: dict[tuple[str, str], int] = {}
        for method, path in _operations(spec):
            if path in NOT_PROJECT_OBJECTS:
                continue
            url = _fill(path, table)
            if url is None:
                uncovered.append(f"{method} {path}")
                continue
            body = _request_body(method, path, spec, bodies)
            r = b_client.request(method, url, json=body if method != "GET" else None)
            seen += 1
            status[(method, path)] = r.status_code
            text = r.text
            where = f"{method} {path} -> {r.status_code}"
            if r.status_code >= 500:
                problems.append(f"{where}: server error {text[:200]}")
            if MARK in text:
                problems.append(f"{where}: A's content reached B: {text[:300]}")
            if "{" not in path and r.status_code < 300 and AID in text and method == "GET":
                problems.append(f"{where}: a list names A's ids: {text[:300]}")
            if method == "GET" and "{" in path and r.status_code == 200 and AID in text:
                # A 200 read of one of A's ids: only allowed when it is B's own (empty) answer.
                data = _echo_free(text, url)
                if AID in data:
                    problems.append(f"{where}: read A's object: {text[:300]}")
        assert not uncovered, ("routes whose path parameters name no object this test seeds in project A: "
                               f"add the object to seed_a() and the parameter to _params(): {uncovered}")
        assert seen > 150, seen
        assert not problems, "\n".join(problems)
        # Reads of A's objects are 404; writes naming A's ids landed in B (the cases are not all 4xx).
        for path in ("/api/v1/traces/{trace_id}", "/api/v1/prompts/{name}", "/api/v1/datasets/{name}",
                     "/api/v1/experiments/{experiment_id}", "/api/v1/annotation-queues/{queue_id}",
                     "/api/v1/registry/models/{name}", "/api/v1/canaries/{canary_id}",
                     "/api/v1/training-runs/{run_id}", "/api/v1/collections/{name}",
                     "/api/v1/dashboards/{dashboard_id}", "/api/v1/score-configs/{config_id}"):
            assert status[("GET", path)] == 404, (path, status[("GET", path)])
        for op in (("POST", "/api/v1/ingest"), ("POST", "/api/v1/scores"), ("POST", "/api/v1/prompts"),
                   ("POST", "/api/v1/datasets"), ("PUT", "/api/v1/gateway/models/{name}"),
                   ("PUT", "/api/v1/guardrails/policies/{name}"), ("PUT", "/api/v1/prices/{model}")):
            assert status[op] in (200, 201, 207), (op, status[op])

        after = _view(a_client, spec, table)
        changed = [p for p in before if before[p] != after.get(p)]
        assert not changed, {p: _diff(before[p], after.get(p)) for p in changed[:5]}
        # B's list endpoints are B's own: A's marker nowhere, B's own writes there.
        assert MARK not in b_client.get("/api/v1/traces", params={"include_io": "true"}).text
        # B's ingest with A's trace and span ids wrote B's own span; A's is as it was.
        mine = b_client.get(f"/api/v1/traces/{ids['trace_id']}/spans/{ids['span_id']}")
        assert mine.status_code == 200 and mine.json()["input"] == "B writes here", mine.text[:300]
        theirs = a_client.get(f"/api/v1/traces/{ids['trace_id']}/spans/{ids['span_id']}").json()
        assert theirs["input"] == f"question {MARK}"


def _diff(old: Any, new: Any) -> Any:
    """What changed in A's view of a route: the items that appeared or went, or both answers."""
    (s0, b0), (s1, b1) = old, new or (None, None)
    if isinstance(b0, dict) and isinstance(b1, dict) and isinstance(b0.get("data"), list):
        gone = [x for x in b0["data"] if x not in b1.get("data", [])]
        came = [x for x in b1.get("data", []) if x not in b0["data"]]
        return {"status": (s0, s1), "gone": gone[:3], "came": came[:3]}
    if isinstance(b0, dict) and isinstance(b1, dict):
        return {k: (b0.get(k), b1.get(k)) for k in set(b0) | set(b1) if b0.get(k) != b1.get(k)}
    return old, new


def _echo_free(text: str, url: str) -> str:
    """``text`` with the request's own path segments taken out (a 200 that echoes the id it was
    asked about, e.g. an empty history of B's own, names A's id without reading A's data)."""
    for seg in url.split("/"):
        if AID in seg:
            text = text.replace(seg, "")
    return text
