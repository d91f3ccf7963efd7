"""Langfuse particulars of the OTel mapping: v5's JSON-encoded metadata values, v3's explicit
trace input/output (the real SDKs run in tests/integration/test_langfuse.py)."""

from __future__ import annotations

from typing import Any

import pytest

from podium.core.conventions import span_from_otel
from podium.core.records import SpanIn


def convert(attributes: dict[str, Any], scope: str | None = None, version: str | None = None) -> dict[str, Any]:
    out = span_from_otel(
        trace_id="0af7651916cd43dd8448eb211c80319c", span_id="b7ad6b7169203331", parent_span_id=None,
        name="op", kind=1, start_time_unix_nano=1_700_000_000_000_000_000,
        end_time_unix_nano=1_700_000_001_000_000_000, status_code=0, status_message=None,
        attributes=attributes, scope_name=scope, scope_version=version,
    )
    SpanIn.model_validate(out)
    return out


V5_ATTRS = {
    "langfuse.trace.metadata.feature": '"qa"',
    "langfuse.trace.metadata.count": "3",
    "langfuse.trace.metadata.digits": '"123"',
    "langfuse.observation.metadata.step": '"retrieval"',
    "langfuse.observation.metadata.obj": '{"a":1}',
    "langfuse.observation.metadata.text_like_json": '"[1]"',
}


@pytest.mark.parametrize("version", ["5.2.0", "6.0.0"])
def test_v5_metadata_values_are_decoded_once(version: str) -> None:
    out = convert(dict(V5_ATTRS), "langfuse-sdk", version)
    assert out["trace_metadata"] == {"feature": "qa", "count": 3, "digits": "123"}
    md = out["metadata"]
    assert (md["step"], md["obj"], md["text_like_json"]) == ("retrieval", {"a": 1}, "[1]")


@pytest.mark.parametrize(("scope", "version"), [("langfuse-sdk", "3.15.0"), ("langfuse-sdk", "4.18.0"),
                                                 ("my-app", "5.0.0"), ("langfuse-sdk", None)])
def test_other_senders_keep_their_strings(scope: str, version: str | None) -> None:
    out = convert({"langfuse.trace.metadata.feature": "qa", "langfuse.trace.metadata.quoted": '"x"'}, scope, version)
    assert out["trace_metadata"] == {"feature": "qa", "quoted": '"x"'}


def test_explicit_trace_input_output() -> None:
    out = convert({"langfuse.trace.input": '{"question": "q"}', "langfuse.trace.output": "plain answer",
                   "langfuse.observation.input": '{"args": ["q", "secret"]}'})
    assert out["trace_input"] == {"question": "q"} and out["trace_output"] == "plain answer"
    assert out["input"] == {"args": ["q", "secret"]}
    assert "langfuse.trace.input" not in (out.get("attributes") or {})
