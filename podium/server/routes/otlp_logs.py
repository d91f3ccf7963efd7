"""OTLP/HTTP logs: GenAI events (``gen_ai.*`` log records) attached to their spans."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from podium.errors import UnsupportedMediaType
from podium.server import otlp_logs
from podium.server.auth import require_write
from podium.server.body import read_body
from podium.server.ingest import IngestRoom
from podium.server.otlp import JSON_CONTENT_TYPES, PROTOBUF_CONTENT_TYPES
from podium.server.state import AppState

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/logs", summary="OTLP/HTTP logs export: GenAI events attached to their spans (protobuf or JSON)")
@router.post("/api/public/otel/v1/logs", include_in_schema=False)
async def otlp_logs_export(request: Request, key: require_write, _room: IngestRoom) -> Response:
    """Log records named ``gen_ai.system/user/assistant/tool.message``, ``gen_ai.choice`` or
    ``gen_ai.client.inference.operation.details`` become the input/output of the span they
    carry (``trace_id``/``span_id``), whether the span arrived before or arrives after. Other
    records are counted in ``partial_success.rejected_log_records`` with the reason."""
    st: AppState = request.app.state.podium
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype not in PROTOBUF_CONTENT_TYPES | JSON_CONTENT_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {ctype or '(none)'!r} is not OTLP; send application/x-protobuf or application/json"
        )
    as_json = ctype in JSON_CONTENT_TYPES
    body = await read_body(request, st.settings.max_request_bytes)
    rejected, message = await otlp_logs.ingest_logs(
        st, key.project_id, body, content_type=ctype
    )
    out = otlp_logs.encode_response(rejected=rejected, error_message=message, json=as_json)
    return Response(out, media_type="application/json" if as_json else "application/x-protobuf")
