"""The trace page's Attribution panel (``templates/_attribution.html``): a form that computes a
context attribution of the trace's answer (the same code as ``POST /api/v1/traces/{id}/attributions``)
and redirects back to the trace, where the panel lists the chunks ranked by weight with bars and
their top sentences. Computing needs WRITE (admin, member); the panel is shown to readers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from podium.core.roles import Action, allowed
from podium.errors import PodiumError
from podium.server.routes.attributions import AttributionIn, compute
from podium.server.ui.access import UiError, check_origin, ui_action
from podium.server.ui.pages import _form, _mark_ui, _seg, _st, _viewer

__all__ = ["panel_context", "router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(_mark_ui)])


def panel_context(request: Request, viewer: Any, trace_id: str) -> dict[str, Any]:
    """What ``_attribution.html`` needs: the trace's latest attributions and whether this viewer
    may compute one (the trace page's handler merges it into its context)."""
    store = _st(request).store
    rows = store.attributions.for_trace(viewer.project_id, trace_id, limit=5)
    spans = store.traces.list_spans(viewer.project_id, trace_id, include_io=False, limit=2000).items
    kinds = {s["kind"] for s in spans}
    return {"attributions": rows, "can_attribute": allowed(viewer.role, Action.WRITE),
            "attribution_panel": bool(rows) or {"retrieval", "generation"} <= kinds}


@router.post("/traces/{trace_id}/attributions")
@ui_action(Action.WRITE)
async def attribute(request: Request, trace_id: str) -> Response:
    check_origin(request)
    v = _viewer(request, Action.WRITE, "compute context attributions")
    form = await _form(request)
    try:
        body = AttributionIn(method=form.get("method") or "context-cite",  # type: ignore[arg-type]  # checked by pydantic
                             span_id=form.get("span_id") or None,
                             ablations=int(form.get("ablations") or 32))
    except (ValidationError, ValueError) as e:
        raise UiError(400, "Attribution not computed", f"invalid form: {e}") from e
    try:
        await run_in_threadpool(compute, _st(request), v.project_id, trace_id, body,
                                created_by=v.actor)
    except PodiumError as e:
        raise UiError(e.status_code, "Attribution not computed", e.message) from e
    return RedirectResponse(f"/traces/{_seg(trace_id)}#attribution", status_code=303)
