"""OpenInference instrumentation (openai, LangChain) against a real Podium server.

Each test runs the real packages the way their docs show (``OpenAIInstrumentor().instrument(...)``,
``LangChainInstrumentor().instrument(...)``, ``using_session``/``using_user``) with a fresh
``TracerProvider`` exporting over OTLP/HTTP to Podium, the model call going to Podium's own gateway
(an alias pointing at the fake upstream). The gateway's span lands in the same trace (``traceparent``
is injected by an httpx request hook), so usage reaches Podium twice: the trace must count it once.
What arrived is read back through the REST API. docs/integrations.md shows the same setup.
"""

from __future__ import annotations

import importlib.metadata
import time
import tomllib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openinference.instrumentation import using_session, using_user
from opentelemetry import propagate
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from podium.store.repos.dashboard import Bucketing, DashboardRepo
from tests.conftest import LiveServer
from tests.gateway.fake_upstream import FakeUpstream, Reply

pytestmark = pytest.mark.integration

MODEL = "gpt-4o-mini"  # an alias of the gateway, and the upstream model (priced: $0.15 / $0.60 per 1M tokens)
ANSWER = "Paris is the capital of France."  # the fake upstream counts 6 completion tokens (one per word)
PROMPT_TOKENS, COMPLETION_TOKENS = 10, 6
COST = (Decimal(PROMPT_TOKENS) * Decimal("0.15") + Decimal(COMPLETION_TOKENS) * Decimal("0.6")) / Decimal(10**6)


@pytest.fixture
def gateway(server: LiveServer, upstream: FakeUpstream) -> LiveServer:
    with server.client() as c:
        r = c.put(f"/api/v1/gateway/models/{MODEL}", json={
            "deployments": [{"provider": "openai", "model": MODEL, "api_base": upstream.base_url, "api_key": "k",
                             "max_retries": 0}]})
        assert r.status_code in (200, 201), r.text
    upstream.script(MODEL, Reply(ANSWER, prompt_tokens=PROMPT_TOKENS))
    return server


class Tracing:
    """A fresh provider per test: OTLP/HTTP to Podium (what a user runs) plus an in-memory copy
    (what was sent, to compare with what arrived)."""

    def __init__(self, srv: LiveServer, service: str) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        exporter = OTLPSpanExporter(endpoint=srv.url + "/v1/traces",
                                    headers={"Authorization": f"Bearer {srv.keys.secret_key}"})
        self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        self.sent = InMemorySpanExporter()
        self.provider.add_span_processor(SimpleSpanProcessor(self.sent))

    def trace_id(self) -> str:
        ids = {format(s.context.trace_id, "032x") for s in self.sent.get_finished_spans()}
        assert len(ids) == 1, ids
        return ids.pop()


@pytest.fixture
def tracing(gateway: LiveServer) -> Iterator[Tracing]:
    t = Tracing(gateway, "oi-app")
    yield t
    t.provider.shutdown()


def traced_http_client() -> httpx.Client:
    """httpx with the current trace context in each request: the gateway's span joins the trace."""
    return httpx.Client(event_hooks={"request": [lambda request: propagate.inject(request.headers)]})


def langchain_http_client() -> httpx.Client:
    """OpenInference's LangChain spans are never the current span (callbacks cannot attach a
    context safely); its ``get_current_span()`` finds the running one."""
    from openinference.instrumentation.langchain import get_current_span
    from opentelemetry.trace import set_span_in_context

    def inject(request: httpx.Request) -> None:
        span = get_current_span()
        if span is not None:
            propagate.inject(request.headers, context=set_span_in_context(span))

    return httpx.Client(event_hooks={"request": [inject]})


def wait_trace(srv: LiveServer, trace_id: str, ready: Callable[[dict[str, Any]], bool],
               timeout: float = 10.0) -> dict[str, Any]:
    with srv.client() as c:
        deadline = time.monotonic() + timeout
        while True:
            r = c.get(f"/api/v1/traces/{trace_id}")
            if r.status_code == 200 and ready(r.json()):
                return r.json()
            if time.monotonic() > deadline:
                raise AssertionError(f"trace {trace_id} not as expected within {timeout}s: {r.text[:3000]}")
            time.sleep(0.1)


def by_model(srv: LiveServer) -> list[tuple[str, int, int]]:
    """The dashboard's by-model rows (the home page's table): model, calls, tokens."""
    now = datetime.now(UTC)
    b = Bucketing.covering(now - timedelta(hours=1), now + timedelta(minutes=1), 3600)
    rows = DashboardRepo(srv.store.engine).by_model(srv.keys.project_id, b)["rows"]
    return [(r["model"], r["calls"], r["total_tokens"]) for r in rows]


def assert_counted_once(srv: LiveServer, tr: dict[str, Any], call: dict[str, Any], gw: dict[str, Any]) -> None:
    """The client's LLM span and the gateway's span both report the call's usage: counted once."""
    expected = (PROMPT_TOKENS, COMPLETION_TOKENS, PROMPT_TOKENS + COMPLETION_TOKENS)
    assert (call["input_tokens"], call["output_tokens"], call["total_tokens"]) == expected
    assert (gw["input_tokens"], gw["output_tokens"], gw["total_tokens"]) == expected
    assert [call["usage_counted"], gw["usage_counted"]].count(True) == 1, (call["usage_counted"], gw["usage_counted"])
    assert (tr["input_tokens"], tr["output_tokens"], tr["total_tokens"]) == expected
    assert Decimal(str(tr["total_cost"])) == pytest.approx(COST)
    assert Decimal(str(gw["cost_total"])) == pytest.approx(COST)
    assert by_model(srv) == [(MODEL, 1, PROMPT_TOKENS + COMPLETION_TOKENS)]
    with srv.client() as c:
        assert MODEL in c.get("/", params={"range": "1h"}).text


@pytest.mark.parametrize("via", ["upstream", "gateway", "gateway-stream"])
def test_openinference_openai(via: str, gateway: LiveServer, upstream: FakeUpstream, tracing: Tracing) -> None:
    """The openai SDK calling the model directly, then through Podium's gateway with the trace
    context propagated (the gateway's span is then the child of OpenInference's ChatCompletion)."""
    from openinference.instrumentation.openai import OpenAIInstrumentor

    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracing.provider)
    try:
        if via.startswith("gateway"):
            client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.keys.secret_key, max_retries=0,
                                   http_client=traced_http_client())
        else:
            client = openai.OpenAI(base_url=upstream.base_url, api_key="k", max_retries=0)
        messages: Any = [{"role": "system", "content": "Answer briefly."},
                         {"role": "user", "content": "What is the capital of France?"}]
        with using_session("session-oi-1"), using_user("user-oi-1"):
            if via.endswith("stream"):
                stream = client.chat.completions.create(model=MODEL, temperature=0.2, messages=messages, stream=True,
                                                        stream_options={"include_usage": True})
                text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            else:
                resp = client.chat.completions.create(model=MODEL, temperature=0.2, messages=messages)
                text = resp.choices[0].message.content or ""
    finally:
        instrumentor.uninstrument()
    assert text == ANSWER
    assert len(upstream.bodies(MODEL)) == 1

    n = 2 if via.startswith("gateway") else 1
    tr = wait_trace(gateway, tracing.trace_id(), lambda t: t["span_count"] == n and t["total_tokens"] > 0)
    spans = tr["spans"]
    (call,) = [s for s in spans if s["name"] == "ChatCompletion"]
    # names, kinds, model, provider, parameters, content
    assert call["parent_id"] is None and call["kind"] == "generation"
    assert call["model"] == MODEL and call["provider"] == "openai"
    assert call["model_parameters"]["temperature"] == 0.2
    assert call["input"] == [{"role": "system", "content": "Answer briefly."},
                             {"role": "user", "content": "What is the capital of France?"}]
    assert call["output"] == [{"role": "assistant", "content": ANSWER}]
    assert (call["input_tokens"], call["output_tokens"], call["usage_estimated"]) == (10, 6, False)
    if via.endswith("stream"):  # OpenInference's "First Token Stream Event": time to first token
        assert call["completion_start_time"] is not None and call["time_to_first_token_ms"] >= 0
    # user and session, on the trace too
    assert (tr["user_id"], tr["session_id"]) == ("user-oi-1", "session-oi-1")
    assert tr["name"] == "ChatCompletion"
    total = PROMPT_TOKENS + COMPLETION_TOKENS
    if via.startswith("gateway"):
        (gw,) = [s for s in spans if s is not call]
        assert gw["parent_id"] == call["id"] and gw["kind"] == "generation" and gw["model"] == MODEL
        assert gw["metadata"]["gateway"]["alias"] == MODEL
        assert_counted_once(gateway, tr, call, gw)
    else:
        assert call["usage_counted"] is True
        assert (tr["input_tokens"], tr["output_tokens"], tr["total_tokens"]) == (10, 6, total)
        assert Decimal(str(tr["total_cost"])) == pytest.approx(COST)
        assert by_model(gateway) == [(MODEL, 1, total)]
    with gateway.client() as c:
        (sess,) = c.get("/api/v1/sessions").json()["data"]
        assert (sess["id"], sess["trace_count"], sess["total_tokens"]) == ("session-oi-1", 1, total)
        (user,) = c.get("/api/v1/users").json()["data"]
        assert (user["id"], user["total_tokens"]) == ("user-oi-1", total)


@pytest.mark.parametrize("via", ["upstream", "gateway"])
def test_langchain_chat_openai(via: str, gateway: LiveServer, upstream: FakeUpstream, tracing: Tracing) -> None:
    """LangChain calling the model directly, then through Podium's gateway with the trace context
    propagated (the gateway's span is then a sibling of ChatOpenAI's: the same call twice)."""
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_openai import ChatOpenAI
    from openinference.instrumentation.langchain import LangChainInstrumentor

    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=tracing.provider)
    try:
        if via == "gateway":
            llm = ChatOpenAI(model=MODEL, base_url=gateway.url + "/v1", api_key=gateway.keys.secret_key,
                             temperature=0, max_retries=0, http_client=langchain_http_client())
        else:
            llm = ChatOpenAI(model=MODEL, base_url=upstream.base_url, api_key="k", temperature=0, max_retries=0)
        prompt = ChatPromptTemplate.from_messages([("system", "Answer briefly."),
                                                   ("user", "What is the capital of {country}?")])
        chain = prompt | llm | StrOutputParser()
        with using_session("session-lc-1"), using_user("user-lc-1"):
            answer = chain.invoke({"country": "France"})
    finally:
        instrumentor.uninstrument()
    assert answer == ANSWER
    (body,) = upstream.bodies(MODEL)
    assert body["messages"] == [{"role": "system", "content": "Answer briefly."},
                                {"role": "user", "content": "What is the capital of France?"}]

    n = 5 if via == "gateway" else 4
    tr = wait_trace(gateway, tracing.trace_id(), lambda t: t["span_count"] == n and t["total_tokens"] > 0)
    by_name = {s["name"]: s for s in tr["spans"]}
    root, tmpl, call, parser = (by_name.pop(n) for n in ("RunnableSequence", "ChatPromptTemplate", "ChatOpenAI",
                                                         "StrOutputParser"))
    assert root["parent_id"] is None
    assert tmpl["parent_id"] == call["parent_id"] == parser["parent_id"] == root["id"]
    assert [root["kind"], tmpl["kind"], call["kind"], parser["kind"]] == ["chain", "span", "generation", "chain"]
    assert tmpl["attributes"]["openinference.span.kind"] == "PROMPT"  # no Podium kind: kept as sent
    assert call["model"] == MODEL and call["provider"] == "openai"
    assert call["model_parameters"]["temperature"] == 0
    assert call["input"] == [{"role": "system", "content": "Answer briefly."},
                             {"role": "user", "content": "What is the capital of France?"}]
    assert call["output"] == [{"role": "assistant", "content": ANSWER}]
    # OpenInference sends a single-key input dict as its value
    assert (root["input"], root["output"], parser["output"]) == ("France", ANSWER, ANSWER)
    assert (tr["name"], tr["input"], tr["output"]) == ("RunnableSequence", "France", ANSWER)
    assert (tr["user_id"], tr["session_id"]) == ("user-lc-1", "session-lc-1")
    for s in (root, tmpl, parser):  # chains carry no usage of their own
        assert s["total_tokens"] is None and s["cost_total"] is None
    if via == "upstream":
        assert by_name == {}
        total = PROMPT_TOKENS + COMPLETION_TOKENS
        assert (call["input_tokens"], call["output_tokens"], call["usage_counted"]) == (10, 6, True)
        assert (tr["input_tokens"], tr["output_tokens"], tr["total_tokens"]) == (10, 6, total)
        assert Decimal(str(tr["total_cost"])) == pytest.approx(COST)
        assert Decimal(str(call["cost_total"])) == pytest.approx(COST)
        assert by_model(gateway) == [(MODEL, 1, total)]
        return
    (gw,) = by_name.values()
    # LangChain's spans are never current: the gateway's span joins as the chain's child, beside ChatOpenAI
    assert gw["parent_id"] == root["id"] and gw["kind"] == "generation"
    assert gw["metadata"]["gateway"]["alias"] == MODEL
    assert_counted_once(gateway, tr, call, gw)


def documented_versions() -> dict[str, str]:
    """The version table of docs/integrations.md's OpenInference section: {package: specifier}."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "integrations.md").read_text()
    table = doc.split("<!-- openinference-versions -->")[1].split("<!-- /openinference-versions -->")[0]
    rows = [[c.strip().strip("`") for c in line.strip().strip("|").split("|")]
            for line in table.strip().splitlines()[2:]]
    return {pkg: spec for pkg, spec in rows}


def test_documented_versions_are_the_tested_ones() -> None:
    """docs/integrations.md's table: the pins of pyproject.toml's dev extra, and what is installed."""
    doc = documented_versions()
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    dev = {r.name: r.specifier for r in map(Requirement, pyproject["project"]["optional-dependencies"]["dev"])}
    for pkg in ("openinference-instrumentation-openai", "openinference-instrumentation-langchain", "langchain-openai"):
        assert SpecifierSet(doc[pkg]) == dev[pkg], pkg
        assert importlib.metadata.version(pkg) in SpecifierSet(doc[pkg]), pkg
