"""Explanations in the web UI (``/explain``, docs/explain.md): a form (what to explain: a
guardrail scanner, a scorer or the local model; the text; the method) and the result as the text
with each word, sentence or token coloured by its weight (CSS classes, ``explain.css``), plus a
table of the segments by weight. The form posts to the same code as ``POST /api/v1/explanations``.

``GET /explain?kind=scanner&name=prompt-injection&scan_kind=input&text=...`` fills the form (the
guardrails page's rule table links each scanner's "why?" here), so a link never runs an explanation by itself: the button does.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from podium.core.roles import Action
from podium.errors import BadRequest, PodiumError
from podium.server.routes.explanations import ExplainIn, run_explanation
from podium.server.ui.access import check_origin, ui_action
from podium.server.ui.pages import _form, _mark_ui, _viewer, page

__all__ = ["highlight", "router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(_mark_ui)])

KINDS = ("scanner", "scorer", "local-model")
METHODS = {"scanner": ("shap", "lime"), "scorer": ("shap", "lime"),
           "local-model": ("occlusion", "integrated-gradients")}
_LEVELS = 4


def _scanners() -> list[str]:
    from podium.guardrails.registry import scanner_specs

    return sorted(scanner_specs())


def highlight(text: str, segments: list[dict[str, Any]], scale: float) -> list[dict[str, Any]]:
    """``text`` cut into pieces: each segment with a CSS class by its weight (``xw-p1``..``xw-p4``
    for positive, ``xw-n1``..``xw-n4`` for negative, relative to ``scale``), the text between
    segments plain."""
    out: list[dict[str, Any]] = []
    pos = 0
    for s in sorted(segments, key=lambda s: (s["start"], s["end"])):
        a, b = int(s["start"]), int(s["end"])
        if a < pos:
            continue
        if a > pos:
            out.append({"text": text[pos:a], "cls": ""})
        w = float(s["weight"])
        level = 0 if scale <= 0 else min(_LEVELS, int(abs(w) / scale * _LEVELS + 0.5))
        cls = f"xw xw-{'p' if w > 0 else 'n'}{level}" if level else "xw xw-0"
        out.append({"text": text[a:b], "cls": cls, "weight": w})
        pos = b
    if pos < len(text):
        out.append({"text": text[pos:], "cls": ""})
    return out


def _views(result: dict[str, Any], body: ExplainIn) -> list[dict[str, Any]]:
    """The highlighted texts: one for a scanner/scorer text or IG's templated prompt, one per
    message for occlusion."""
    segs = result["segments"]
    scale = max((abs(float(s["weight"])) for s in segs), default=0.0)
    if result["method"] == "integrated-gradients":
        return [{"label": "Prompt (chat template)", "pieces": highlight(result["extra"]["prompt"], segs, scale)}]
    if result["method"] == "occlusion":
        msgs = getattr(body.target, "messages", [])
        return [{"label": m.role, "pieces": highlight(m.content, [s for s in segs if s.get("message") == i], scale)}
                for i, m in enumerate(msgs) if any(s.get("message") == i for s in segs)]
    return [{"label": "Text", "pieces": highlight(body.text or "", segs, scale)}]


def _body(form: dict[str, str]) -> ExplainIn:
    kind = form.get("kind") or "scanner"
    method = form.get("method") or METHODS.get(kind, ("shap",))[0]
    text = form.get("text") or ""
    raw: dict[str, Any] = {"method": method}
    if form.get("max_evaluations"):
        raw["max_evaluations"] = form["max_evaluations"]
    if kind == "scanner":
        raw["target"] = {"kind": "scanner", "name": form.get("name") or "", "scan_kind": form.get("scan_kind") or "input"}
        raw["text"] = text
    elif kind == "scorer":
        try:
            config = json.loads(form.get("config") or "")
        except ValueError:
            raise BadRequest('the scorer config must be JSON, e.g. {"type": "icontains", "value": "paris"}') from None
        field = form.get("field") or "output"
        raw["target"] = {"kind": "scorer", "config": config, "fields": {field: text}, "field": field}
        raw["text"] = text
    else:
        raw["target"] = {"kind": "local-model", "messages": [{"role": "user", "content": text}],
                         "response": form.get("response") or ""}
        raw["granularity"] = form.get("granularity") or "sentence"
    return ExplainIn.model_validate(raw)


def _ctx(values: dict[str, str], **extra: Any) -> dict[str, Any]:
    kind = values.get("kind") if values.get("kind") in KINDS else "scanner"
    return {"nav": "explain", "kinds": KINDS, "methods": METHODS, "scanners": _scanners(), "f": values,
            "kind": kind, **extra}


@router.get("/explain", response_class=HTMLResponse)
@ui_action(Action.WRITE)
def explain_page(request: Request) -> HTMLResponse:
    _viewer(request, Action.WRITE, "explain scanners, scorers and the local model's answers")
    q = request.query_params
    values = {k: q.get(k, "")[:20_000] for k in ("kind", "name", "text", "method", "config", "field", "response",
                                                   "scan_kind")}
    return page(request, "explain.html", **_ctx(values))


@router.post("/explain", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def explain_submit(request: Request) -> HTMLResponse:
    check_origin(request)
    _viewer(request, Action.WRITE, "explain scanners, scorers and the local model's answers")
    form = await _form(request)
    result, views, error, status = None, [], None, 200
    try:
        body = _body(form)
        result = await run_in_threadpool(run_explanation, body)
        views = _views(result, body)
    except ValidationError as e:
        error = "; ".join(f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors()[:5])
        status = 400
    except PodiumError as e:
        error, status = e.message, e.status_code
    ranked = sorted(result["segments"], key=lambda s: -abs(float(s["weight"])))[:50] if result else []
    return page(request, "explain.html", status=status,
                **_ctx(form, result=result, views=views, ranked=ranked, error=error))
