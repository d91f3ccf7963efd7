"""A LlamaIndex program traced with OpenInference, as its docs show: run by
tests/integration/test_llamaindex.py in its own venv (llama-index-llms-openai needs openai<3).

    python llamaindex_client.py PODIUM_URL SECRET_KEY MODEL_BASE_URL MODEL_API_KEY

Exports its spans over OTLP/HTTP to PODIUM_URL, asks one question of a two-document index and
prints one JSON line: the answer, the trace id and the spans it sent.
"""

from __future__ import annotations

import json
import sys

import httpx
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.llms.openai import OpenAI
from openinference.instrumentation import using_session, using_user
from openinference.instrumentation.llama_index import LlamaIndexInstrumentor
from opentelemetry import propagate
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def main(podium_url: str, secret_key: str, base_url: str, api_key: str) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "llamaindex-app"}))
    exporter = OTLPSpanExporter(endpoint=podium_url + "/v1/traces",
                                headers={"Authorization": f"Bearer {secret_key}"})
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sent = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(sent))
    LlamaIndexInstrumentor().instrument(tracer_provider=provider)

    # The trace context goes with each request: a gateway's span joins the trace.
    http_client = httpx.Client(event_hooks={"request": [lambda request: propagate.inject(request.headers)]})
    Settings.llm = OpenAI(model="gpt-4o-mini", api_base=base_url, api_key=api_key, max_retries=0,
                          http_client=http_client)
    Settings.embed_model = MockEmbedding(embed_dim=8, model_name="mock-embedding")  # no embedding model to run
    Settings.tokenizer = str.split  # tiktoken would download its encoding (no network in tests)

    index = VectorStoreIndex.from_documents([Document(text="Paris is the capital of France."),
                                             Document(text="Berlin is the capital of Germany.")])
    query_engine = index.as_query_engine(similarity_top_k=2)
    sent.clear()  # the index's own trace (its embeddings) is not the one the test reads
    with using_session("session-li-1"), using_user("user-li-1"):
        response = query_engine.query("What is the capital of France?")

    LlamaIndexInstrumentor().uninstrument()
    provider.shutdown()
    spans = [{"name": s.name, "id": format(s.context.span_id, "016x"),
              "trace_id": format(s.context.trace_id, "032x"),
              "parent_id": format(s.parent.span_id, "016x") if s.parent else None,
              "kind": (s.attributes or {}).get("openinference.span.kind"),
              "attributes": dict(s.attributes or {})} for s in sent.get_finished_spans()]
    print(json.dumps({"answer": str(response), "spans": spans}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
