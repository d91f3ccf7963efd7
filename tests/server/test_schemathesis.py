"""Property-based fuzzing of the whole REST API from its own OpenAPI document (schemathesis).

A real server on each database, a real admin key. Every operation in
``/api/v1/openapi.json`` gets ``EXAMPLES`` generated requests (schema-valid and
schema-violating ones, fixed seed), except revoking the test's own key. Every answer must
be below 500, and every 4xx must have the pinned error shape
``{"error": {"code", "message", "details"}}``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.conftest import LiveServer

# A bound that keeps one database's run near a minute on a busy 2-core machine; raise it locally
# (PODIUM_FUZZ_EXAMPLES=300) for a deeper run.
EXAMPLES = int(os.environ.get("PODIUM_FUZZ_EXAMPLES", "20"))
VERBOSE = bool(os.environ.get("PODIUM_FUZZ_VERBOSE"))  # read at import: the fixtures clear PODIUM_* variables
ONLY = os.environ.get("PODIUM_FUZZ_ONLY", "")  # a path prefix, e.g. /api/v1/prompts
SEED = 20261206


def _is_own_key_revocation(case: Any, own_key: str) -> bool:
    return (case.method.upper() == "DELETE" and case.operation.path == "/api/v1/keys/{public_key}"
            and (case.path_parameters or {}).get("public_key") == own_key)


def _problem(path: str, resp: requests.Response) -> str | None:
    if resp.status_code >= 500:
        return f"server error {resp.status_code}: {resp.text[:300]}"
    if resp.status_code >= 400 and path.startswith("/api/public/"):
        # The Langfuse-compatible API answers in Langfuse's error shape on purpose.
        body = resp.json()
        if not (isinstance(body, dict) and isinstance(body.get("message"), str) and "error" in body):
            return f"{resp.status_code} not in Langfuse's error shape: {resp.text[:300]}"
        return None
    if resp.status_code >= 400:
        try:
            body = resp.json()
        except ValueError:
            return f"{resp.status_code} without a JSON body: {resp.text[:200]!r}"
        err = body.get("error") if isinstance(body, dict) else None
        if not (isinstance(body, dict) and set(body) == {"error"} and isinstance(err, dict)
                and set(err) == {"code", "message", "details"} and isinstance(err["code"], str)
                and isinstance(err["message"], str) and err["message"] and isinstance(err["details"], list)):
            return f"{resp.status_code} not in the pinned error shape: {resp.text[:300]}"
    return None


def _fuzz(op: Any, server: LiveServer, session: requests.Session, ran: dict[str, int]) -> list[str]:
    """Run EXAMPLES generated requests against one operation; the first few problems found."""
    label = f"{op.method.upper()} {op.path}"
    own_key = server.keys.public_key
    strategies = [op.as_strategy(generation_mode=GenerationMode.POSITIVE)]
    try:
        strategies.append(op.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    except Exception:  # an operation with nothing to violate
        pass
    seen: list[str] = []

    @seed(SEED)
    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(case=st.one_of(strategies))
    def run(case: Any) -> None:
        if _is_own_key_revocation(case, own_key):
            return
        resp = case.call(base_url=server.url, session=session, timeout=30)
        ran[label] = ran.get(label, 0) + 1
        problem = _problem(op.path, resp)
        if problem and len(seen) < 3:
            seen.append(f"{label} {case.path_parameters} {case.query} body={str(case.body)[:200]}: {problem}")

    t0 = time.monotonic()
    run()
    if VERBOSE:
        print(f"{label}: {ran.get(label, 0)} in {time.monotonic() - t0:.2f} s")
    return seen


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fuzz_every_operation(server: LiveServer) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/api/v1/openapi.json")
    session = requests.Session()
    session.auth = (server.keys.public_key, server.keys.secret_key)
    failures: list[str] = []
    ran: dict[str, int] = {}
    t0 = time.monotonic()
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path.startswith(ONLY):
            failures += _fuzz(op, server, session, ran)
    elapsed = time.monotonic() - t0
    print(f"schemathesis: {sum(ran.values())} requests over {len(ran)} operations in {elapsed:.1f} s")
    assert len(ran) > (40 if not ONLY else 0), sorted(ran)
    assert not failures, "\n".join(failures)
