"""Scores: list and create (creation goes through the ingest writer like everything else)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from podium.core.records import ScoreIn
from podium.errors import BadRequest
from podium.server.auth import require_read, require_write
from podium.server.body import StrictJSONRoute
from podium.server.convert import BatchBuilder
from podium.server.routes.score_configs import score_configs_for
from podium.server.routes.traces import utc_param
from podium.server.schemas import ScorePage
from podium.server.state import AppState
from podium.store.repos.scores import ScoreFilter

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["scores"], route_class=StrictJSONRoute)


@router.get("/scores", response_model=ScorePage, summary="List scores")
def list_scores(
    request: Request,
    key: require_read,
    trace_id: str | None = None,
    span_id: str | None = None,
    session_id: str | None = None,
    name: str | None = None,
    source: str | None = None,
    data_type: Literal["numeric", "boolean", "categorical", "text"] | None = None,
    after: Annotated[datetime | None, Query(alias="from")] = None,
    before: Annotated[datetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    st: AppState = request.app.state.podium
    f = ScoreFilter(
        trace_id, span_id, session_id, name, source, data_type, utc_param("from", after), utc_param("to", before)
    )
    page = st.store.scores.list_scores(key.project_id, f, limit=limit, cursor=cursor)
    return {"data": page.items, "next_cursor": page.next_cursor}


@router.post("/scores", status_code=201, summary="Create (or replace, by id) a score")
async def create_score(request: Request, body: ScoreIn, key: require_write) -> JSONResponse:
    st: AppState = request.app.state.podium
    configs = await score_configs_for(request, key.project_id)
    builder = BatchBuilder(key.project_id, lambda: st.prices_for(key.project_id), configs)
    sid = builder.add_score(body)  # a score that breaks its score config: 400 naming the config
    refused = await st.ingester.submit(builder.batch)
    if refused:
        raise BadRequest(refused[0][1])
    return JSONResponse({"id": sid}, status_code=201)
