"""Settings › Redaction: the project's redaction rules (edited as YAML), fail-open or
fail-closed, and a dry run on a sample text (admins only: the rules say what is sensitive).

The handlers call the REST handlers' helpers (``routes.redaction``): the same validation
(errors name the rule: ``rules[2].pattern``), the same cache invalidation, the same audit note.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from podium.core.roles import Action
from podium.errors import PodiumError
from podium.governance.redaction import preview
from podium.governance.redaction_rules import PRESETS, compile_rules, validate_document
from podium.server.routes.redaction import current_rules, save_rules
from podium.server.ui.access import check_origin, ui_action
from podium.server.ui.pages import _form, _mark_ui, _st, _viewer, page

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(_mark_ui)])

_WHAT = "manage redaction rules"
_EXAMPLE = """rules:
  - preset: credit_card
  - preset: email
  - preset: api_key
  - path: metadata.password
    replacement: "[REDACTED:password]"
"""


def _yaml(rules: list[dict[str, Any]]) -> str:
    if not rules:
        return ""
    import yaml

    return str(yaml.safe_dump({"rules": rules}, sort_keys=False, allow_unicode=True, width=100))


def _parse(text: str) -> Any:
    """The textarea's YAML (or JSON); a clear error when it is neither."""
    import yaml

    try:
        data = yaml.safe_load(text) if text.strip() else {"rules": []}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"the rules are not valid YAML{where}; indent list items under rules:") from None
    if data is None:
        data = {"rules": []}
    if isinstance(data, list):
        data = {"rules": data}
    if not isinstance(data, dict):
        raise ValueError("the rules are a YAML mapping with a rules: list")
    return data


def _ctx(doc: dict[str, Any], **extra: Any) -> dict[str, Any]:
    ctx: dict[str, Any] = dict(nav="settings", tab="redaction", doc=doc, presets=list(PRESETS), example=_EXAMPLE,
                               rules_text=_yaml(doc["rules"]), fail_closed=doc["fail_closed"], error=None,
                               details=[], saved=False, sample="", result=None)
    ctx.update({k: v for k, v in extra.items() if not (k == "rules_text" and not v)})
    return ctx


@router.get("/settings/redaction", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
async def redaction_settings(request: Request) -> HTMLResponse:
    v = _viewer(request, Action.ADMIN, _WHAT)
    doc = await run_in_threadpool(current_rules, _st(request), v.project_id)
    return page(request, "settings_redaction.html", **_ctx(doc, saved=request.query_params.get("saved") == "1"))


@router.post("/settings/redaction", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
async def save_redaction(request: Request) -> Response:
    check_origin(request)
    v = _viewer(request, Action.ADMIN, _WHAT)
    form = await _form(request)
    text = form.get("rules", "")
    fail_closed = form.get("fail_closed") in ("on", "true", "1")
    st = _st(request)
    try:
        data = _parse(text)
        data["fail_closed"] = fail_closed
        await run_in_threadpool(save_rules, st, request.state, v.project_id, data)
    except (ValueError, PodiumError) as e:
        doc = await run_in_threadpool(current_rules, st, v.project_id)
        msg = e.message if isinstance(e, PodiumError) else str(e)
        details = e.details if isinstance(e, PodiumError) else []
        return page(request, "settings_redaction.html", status=400,
                    **_ctx(doc, rules_text=text or " ", fail_closed=fail_closed, error=msg, details=details))
    return RedirectResponse("/settings/redaction?saved=1", status_code=303)


@router.post("/settings/redaction/test", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
async def test_redaction(request: Request) -> HTMLResponse:
    """Dry run of the rules in the editor (saved or not) on a sample text, tried as a span's input
    (or, when the sample is a JSON object keyed by field, as those fields)."""
    check_origin(request)
    v = _viewer(request, Action.ADMIN, _WHAT)
    form = await _form(request)
    text, sample_text = form.get("rules", ""), form.get("sample", "")
    fail_closed = form.get("fail_closed") in ("on", "true", "1")
    doc = await run_in_threadpool(current_rules, _st(request), v.project_id)
    try:
        data = _parse(text)
        data["fail_closed"] = fail_closed
        rs = compile_rules(validate_document(data))
    except (ValueError, PodiumError) as e:
        msg = e.message if isinstance(e, PodiumError) else str(e)
        details = e.details if isinstance(e, PodiumError) else []
        return page(request, "settings_redaction.html", status=400,
                    **_ctx(doc, rules_text=text or " ", fail_closed=fail_closed, error=msg, details=details,
                           sample=sample_text))
    sample: dict[str, Any] = {"input": sample_text}
    stripped = sample_text.strip()
    if stripped.startswith("{"):
        try:
            parsed = json.loads(stripped)
            if isinstance(parsed, dict):
                sample = parsed
        except ValueError:
            pass
    result = await run_in_threadpool(preview, rs, sample)
    shown = None
    if result["redacted"] is not None:
        shown = result["redacted"]["input"] if sample.keys() == {"input"} else json.dumps(
            result["redacted"], ensure_ascii=False, indent=2, default=str)
    return page(request, "settings_redaction.html",
                **_ctx(doc, rules_text=text or " ", fail_closed=fail_closed, sample=sample_text,
                       result={**result, "shown": shown}))
