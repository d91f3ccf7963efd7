"""An app instrumented by opentelemetry-instrumentation-openai-v2, exporting to Podium.

Run by tests/integration/test_otlp_logs.py in a subprocess (the instrumentation patches
the openai package and reads its mode from the environment once):

    python genai_app.py PODIUM_URL SECRET_KEY OPENAI_BASE_URL

Prints the trace id. Spans go to /v1/traces and the GenAI events (log records) to
/v1/logs, each through the real OTLP/HTTP exporters.
"""

from __future__ import annotations

import sys

from openai import OpenAI
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def main() -> None:
    url, secret, upstream = sys.argv[1:4]
    headers = {"Authorization": f"Bearer {secret}"}
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers=headers)))
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{url}/v1/logs", headers=headers))
    )
    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)
    client = OpenAI(base_url=upstream, api_key="sk-test", max_retries=0)
    tracer = tracer_provider.get_tracer("genai-app")
    with tracer.start_as_current_span("app") as root:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "say hi"}],
        )
    # Logs first, then spans, so the events land before their span (the other order is tested too).
    logger_provider.shutdown()
    tracer_provider.shutdown()
    print(format(root.get_span_context().trace_id, "032x"))


if __name__ == "__main__":
    main()
