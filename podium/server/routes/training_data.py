"""Training data from production: ``POST /api/v1/training-data/export`` (SFT, DPO or KTO records
from traces, saved as a versioned dataset; ``dry_run`` returns the statistics and a sample) and
``GET /api/v1/datasets/{name}/export.jsonl`` (an exported dataset as JSONL, one split at a time).
The work is :func:`podium.tune.export.export`; see docs/training-data.md."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from podium.core.datasets import check_dataset_name
from podium.core.roles import Action
from podium.errors import BadRequest
from podium.server.auth import needs
from podium.server.body import StrictJSONRoute
from podium.server.routes.evals import trace_filter
from podium.server.state import AppState
from podium.store.repos.projects import ApiKey
from podium.tune.export import ExportSpec, export
from podium.tune.formats import record_from_item

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["training data"], route_class=StrictJSONRoute)

Reader = Annotated[ApiKey, needs(Action.READ, "read datasets")]
Writer = Annotated[ApiKey, needs(Action.WRITE, "export training data")]
_Name = Annotated[str, Field(min_length=1, max_length=256)]


class ExportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: Literal["sft", "dpo", "kto"]
    dataset: _Name | None = Field(default=None, description="the dataset to save into (made when missing); "
                                                             "required unless dry_run")
    filter: Annotated[dict[str, Any], Field(max_length=32)] = Field(
        default_factory=dict, description="the trace list's filters: from, to, name, q, user_id, session_id, tags, "
                                          "status, model, environment, release, min/max_latency_ms, min/max_cost, "
                                          "score_name, min/max_score")
    where: Annotated[str, Field(min_length=1, max_length=600)] | None = Field(
        default=None, description="SFT keeps / KTO calls desirable the responses where this holds: "
                                  "'user-feedback=1', 'score:polite>=0.8'")
    rank_by: _Name | None = Field(default=None, description="DPO: the score that ranks responses to one input")
    min_margin: Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)] = 0.0
    span_kind: Annotated[str, Field(min_length=1, max_length=16)] | None = None
    span_name: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    dedup: bool = True
    redact: bool = Field(default=False, description="replace PII and secrets (the pii and secrets scanners)")
    max_tokens: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    validation_ratio: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = 0.1
    max_traces: Annotated[int, Field(ge=1, le=100_000)] = 10_000
    dry_run: bool = False
    sample: Annotated[int, Field(ge=0, le=100)] = 3
    records: bool = Field(default=False, description="return every record (by split) in the reply")


@router.post("/training-data/export", summary="Export traces as SFT, DPO or KTO training data")
async def export_training_data(request: Request, body: ExportIn, key: Writer) -> dict[str, Any]:
    """Selects the traces (``filter``) or their spans (``span_kind``/``span_name``), builds one
    record per kept response (SFT, KTO) or per input with a best and a worst response (DPO),
    and, unless ``dry_run``, saves them as the items of ``dataset``: a new version only when
    something changed, with the export's lineage in the version's ``source``."""
    if body.dataset is None and not body.dry_run:
        raise BadRequest("name the dataset to save into (dataset), or send dry_run: true",
                         details=[{"field": "dataset"}])
    if body.dataset is not None:
        check_dataset_name(body.dataset)
    spec = ExportSpec(format=body.format, filter=trace_filter(body.filter), where=body.where, rank_by=body.rank_by,
                      min_margin=body.min_margin, span_kind=body.span_kind, span_name=body.span_name,
                      dedup=body.dedup, redact=body.redact, max_tokens=body.max_tokens,
                      validation_ratio=body.validation_ratio, max_traces=body.max_traces)
    st: AppState = request.app.state.podium
    res = await run_in_threadpool(export, st.store, key.project_id, spec, dataset=body.dataset,
                                  dry_run=body.dry_run, actor=key.public_key)
    out = res.summary(sample=body.sample)
    out["dry_run"] = body.dry_run
    if body.records:
        out["records_by_split"] = {
            s: [r for r, i in zip(res.records, res.items, strict=True) if i.split == s]
            for s in ("train", "validation")
        }
    return out


@router.get("/datasets/{name}/export.jsonl", tags=["datasets"], summary="An exported dataset as JSONL",
            response_class=StreamingResponse)
def dataset_jsonl(
    request: Request, name: str, key: Reader,
    split: Annotated[Literal["train", "validation"] | None, Query(description="one split; all when absent")] = None,
    version: Annotated[int | None, Query(ge=1, le=2**31)] = None,
) -> StreamingResponse:
    """One training record a line (OpenAI chat format for SFT, TRL's keys for DPO and KTO), for
    a dataset written by ``POST /api/v1/training-data/export``."""
    import json

    check_dataset_name(name)
    st: AppState = request.app.state.podium
    v, first = st.store.evals.list_items(key.project_id, name, version=version, split=split, limit=1)
    if first.items and (first.items[0].get("metadata") or {}).get("format") not in ("sft", "dpo", "kto"):
        raise BadRequest(f"dataset {name!r} was not made by a training-data export; export one with "
                         "POST /api/v1/training-data/export", details=[{"field": "name"}])

    def lines() -> Iterator[bytes]:
        cursor: str | None = None
        while True:
            _, page = st.store.evals.list_items(key.project_id, name, version=v, split=split, limit=500,
                                                cursor=cursor)
            for item in page.items:
                try:
                    rec = record_from_item(item)
                except (ValueError, KeyError, TypeError):
                    continue
                yield (json.dumps(rec, ensure_ascii=False) + "\n").encode()
            cursor = page.next_cursor
            if not cursor:
                return

    return StreamingResponse(lines(), media_type="application/jsonl")
