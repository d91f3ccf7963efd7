"""Usage is counted once per actual model call, end to end (docs/data-model.md).

Real clients against a real server: the OpenTelemetry SDK (gen_ai attributes, as the OpenAI
instrumentations write them) around a call to Podium's gateway (fake upstream) in the same
trace; OpenInference wrapper spans with estimated usage around a call that reports its own
(LlamaIndex's shape); a call that failed with 401 before reaching any model.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from opentelemetry import propagate
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from podium.store.repos.dashboard import Bucketing, DashboardRepo
from tests.conftest import LiveServer, ProjectKeys, ServerThread
from tests.gateway.fake_upstream import FakeUpstream, Reply

pytestmark = pytest.mark.integration

MSG = [{"role": "user", "content": "hello there, how are you doing today?"}]


@pytest.fixture
def gateway(store: Any, project: ProjectKeys, upstream: FakeUpstream, podium_home: Path) -> Iterator[LiveServer]:
    from podium.config import Settings
    from podium.server.app import create_app

    podium_home.mkdir(parents=True, exist_ok=True)
    cfg = podium_home / "gateway.yaml"
    cfg.write_text(f"""
models:
  - name: local
    deployments:
      - {{provider: openai, model: smollm2-135m-instruct, api_base: "{upstream.base_url}", max_retries: 0}}
""")
    app = create_app(Settings(gateway_config=cfg, gateway_cache="off"), store=store)
    th = ServerThread(app).start()
    yield LiveServer(th.url, store, project, app, th)
    th.stop()


def _tracer(srv: LiveServer) -> tuple[TracerProvider, Any]:
    token = base64.b64encode(f"{srv.keys.public_key}:{srv.keys.secret_key}".encode()).decode()
    provider = TracerProvider(resource=Resource.create({"service.name": "usage-app"}))
    exporter = OTLPSpanExporter(endpoint=srv.url + "/v1/traces", headers={"Authorization": f"Basic {token}"})
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, provider.get_tracer("usage-test")


def _wait(srv: LiveServer, trace_id: str, ready: Callable[[dict[str, Any]], bool],
          timeout: float = 10.0) -> dict[str, Any]:
    with srv.client() as c:
        deadline = time.monotonic() + timeout
        while True:
            r = c.get(f"/api/v1/traces/{trace_id}")
            if r.status_code == 200 and ready(r.json()):
                return r.json()
            if time.monotonic() > deadline:
                raise AssertionError(f"trace {trace_id} not as expected within {timeout}s: {r.text[:2000]}")
            time.sleep(0.1)


def _by_model(srv: LiveServer) -> list[tuple[str, int, int]]:
    now = datetime.now(UTC)
    b = Bucketing.covering(now - timedelta(hours=1), now + timedelta(minutes=1), 3600)
    rows = DashboardRepo(srv.store.engine).by_model(srv.keys.project_id, b)["rows"]
    return [(r["model"], r["calls"], r["total_tokens"]) for r in rows]


def test_client_span_around_a_gateway_call_counts_once(gateway: LiveServer, upstream: FakeUpstream) -> None:
    # the fake upstream reports one completion token per word
    upstream.script("smollm2-135m-instruct", Reply(text=" ".join(["fine"] * 30), prompt_tokens=56))
    provider, tracer = _tracer(gateway)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.keys.secret_key, max_retries=0)
    with tracer.start_as_current_span("chat local") as llm:
        llm.set_attribute("gen_ai.operation.name", "chat")
        llm.set_attribute("gen_ai.system", "openai")
        llm.set_attribute("gen_ai.request.model", "local")
        llm.set_attribute("gen_ai.input.messages", json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": MSG[0]["content"]}]}]))
        headers: dict[str, str] = {}
        propagate.inject(headers)  # traceparent: the gateway's span becomes this span's child
        resp = client.chat.completions.create(model="local", messages=MSG, extra_headers=headers)
        assert resp.usage is not None
        llm.set_attribute("gen_ai.response.model", "local")
        llm.set_attribute("gen_ai.usage.input_tokens", resp.usage.prompt_tokens)
        llm.set_attribute("gen_ai.usage.output_tokens", resp.usage.completion_tokens)
        trace_id = format(llm.get_span_context().trace_id, "032x")
        client_span_id = format(llm.get_span_context().span_id, "016x")
    provider.shutdown()
    tr = _wait(gateway, trace_id, lambda t: len(t["spans"]) == 2 and t["total_tokens"] == 86)
    assert (tr["input_tokens"], tr["output_tokens"], tr["total_tokens"]) == (56, 30, 86)
    spans = {s["id"]: s for s in tr["spans"]}
    client_span = spans.pop(client_span_id)
    (gw_span,) = spans.values()
    assert gw_span["parent_id"] == client_span_id and gw_span["metadata"]["gateway"]["alias"] == "local"
    assert client_span["total_tokens"] == 86 and client_span["usage_counted"] is False
    assert gw_span["total_tokens"] == 86 and gw_span["usage_counted"] is True
    assert _by_model(gateway) == [("smollm2-135m-instruct", 1, 86)]
    with gateway.client() as c:
        home = c.get("/", params={"range": "1h"}).text
    assert "smollm2-135m-instruct" in home


def test_wrapper_spans_with_estimated_usage_count_only_the_call(server: LiveServer) -> None:
    provider, tracer = _tracer(server)
    question = "What did the author do growing up? " * 20
    with tracer.start_as_current_span("query") as root, ExitStack() as wrappers:
        root.set_attribute("openinference.span.kind", "CHAIN")
        root.set_attribute("input.value", question)
        for name in ("predict", "chat"):  # LlamaIndex's wrappers: LLM spans without token counts
            wrapper = wrappers.enter_context(tracer.start_as_current_span(name))
            wrapper.set_attribute("openinference.span.kind", "LLM")
            wrapper.set_attribute("llm.model_name", "gpt-4o-mini")
            wrapper.set_attribute("input.value", question)
            wrapper.set_attribute("output.value", "He wrote short stories and programmed.")
        with tracer.start_as_current_span("ChatCompletion") as call:
            call.set_attribute("openinference.span.kind", "LLM")
            call.set_attribute("llm.model_name", "gpt-4o-mini")
            call.set_attribute("input.value", question)
            call.set_attribute("output.value", "He wrote short stories and programmed.")
            call.set_attribute("llm.token_count.prompt", 146)
            call.set_attribute("llm.token_count.completion", 8)
        trace_id = format(root.get_span_context().trace_id, "032x")
    provider.shutdown()
    tr = _wait(server, trace_id, lambda t: len(t["spans"]) == 4)
    by_name = {s["name"]: s for s in tr["spans"]}
    for name in ("predict", "chat"):
        assert by_name[name]["usage_estimated"] is True and by_name[name]["usage_counted"] is False
    assert by_name["ChatCompletion"]["usage_counted"] is True
    assert (tr["input_tokens"], tr["output_tokens"], tr["total_tokens"]) == (146, 8, 154)
    assert float(tr["total_cost"]) == pytest.approx(float(by_name["ChatCompletion"]["cost_total"]))
    assert _by_model(server) == [("gpt-4o-mini", 1, 154)]


def test_a_call_that_failed_with_401_gets_no_usage(gateway: LiveServer) -> None:
    provider, tracer = _tracer(gateway)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-pd-not-a-key", max_retries=0)
    with tracer.start_as_current_span("chat local") as llm:
        llm.set_attribute("gen_ai.operation.name", "chat")
        llm.set_attribute("gen_ai.request.model", "local")
        llm.set_attribute("gen_ai.input.messages", json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": MSG[0]["content"]}]}]))
        headers: dict[str, str] = {}
        propagate.inject(headers)
        with pytest.raises(openai.AuthenticationError) as err:
            client.chat.completions.create(model="local", messages=MSG, extra_headers=headers)
        assert err.value.status_code == 401
        llm.set_status(Status(StatusCode.ERROR, str(err.value)))
        trace_id = format(llm.get_span_context().trace_id, "032x")
    provider.shutdown()
    tr = _wait(gateway, trace_id, lambda t: len(t["spans"]) == 1)
    (s,) = tr["spans"]
    assert s["status"] == "error" and s["kind"] == "generation"
    assert s["total_tokens"] is None and s["usage_estimated"] is None and s["cost_total"] is None
    assert (tr["status"], tr["total_tokens"], float(tr["total_cost"])) == ("error", 0, 0.0)
    with httpx.Client(base_url=gateway.url) as c:  # the 401 never reached a model: no gateway span either
        assert c.get("/api/v1/traces/" + trace_id, auth=gateway.keys.basic()).json()["span_count"] == 1


def test_the_podium_openai_wrapper_nests_the_gateway_span_and_counts_once(
        gateway: LiveServer, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    import podium
    from podium.openai import OpenAI

    upstream.script("smollm2-135m-instruct", Reply(text=" ".join(["fine"] * 30), prompt_tokens=56))
    monkeypatch.setenv("PODIUM_BASE_URL", gateway.url)
    monkeypatch.setenv("PODIUM_PUBLIC_KEY", gateway.keys.public_key)
    monkeypatch.setenv("PODIUM_SECRET_KEY", gateway.keys.secret_key)
    podium.shutdown(timeout=2)
    try:
        client = OpenAI(base_url=gateway.url + "/v1", api_key=gateway.keys.secret_key, max_retries=0)
        with podium.span("app") as root:
            client.chat.completions.create(model="local", messages=MSG)
            trace_id = root.trace_id
        assert podium.flush().failed == 0
    finally:
        podium.shutdown(timeout=2)
    sent = upstream.requests[-1]["headers"]  # the gateway does not forward traceparent upstream
    assert "traceparent" not in sent
    tr = _wait(gateway, trace_id, lambda t: len(t["spans"]) == 3 and t["total_tokens"] == 86)
    spans = {s["name"]: s for s in tr["spans"]}
    wrapper = spans["OpenAI.chat.completions"]
    (gw_span,) = [s for s in tr["spans"] if (s["metadata"] or {}).get("gateway")]
    assert gw_span["parent_id"] == wrapper["id"]  # one trace: the gateway's span under the wrapper's
    assert (wrapper["usage_counted"], gw_span["usage_counted"]) == (False, True)
    assert (tr["input_tokens"], tr["output_tokens"]) == (56, 30)
    assert _by_model(gateway) == [("smollm2-135m-instruct", 1, 86)]
