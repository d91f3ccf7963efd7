"""Redaction rules: ``GET/PUT /api/v1/redaction-rules`` and ``POST /api/v1/redaction-rules/test``.

The project's rules are applied to every item at ingestion, before it is written
(podium/governance/redaction.py, docs/governance.md#redaction). All three routes need an admin
key; a change drops this process's cached rules at once (other processes within
:data:`~podium.governance.redaction.CACHE_TTL` seconds) and is noted for the audit log.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from podium.core.roles import Action
from podium.governance.actor import actor_of, note
from podium.governance.redaction import Redactor, preview
from podium.governance.redaction_rules import MAX_RULES, PRESETS, compile_rules, validate_document
from podium.server.auth import needs
from podium.server.body import StrictJSONRoute
from podium.server.state import AppState
from podium.store.repos.projects import ApiKey

__all__ = ["current_rules", "redactor_of", "router", "save_rules"]

router = APIRouter(prefix="/api/v1", tags=["redaction"], route_class=StrictJSONRoute)

Admin = Annotated[ApiKey, needs(Action.ADMIN, "manage redaction rules")]


class RedactionRulesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: Annotated[list[dict[str, Any]], Field(max_length=MAX_RULES)] = []
    fail_closed: bool = False


class RedactionRulesOut(BaseModel):
    rules: list[dict[str, Any]]
    fail_closed: bool
    updated_by: str | None = None
    updated_at: Any = None
    presets: list[str]
    warnings: list[str]


class RedactionTestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sample: dict[str, Any]
    rules: Annotated[list[dict[str, Any]], Field(max_length=MAX_RULES)] | None = None
    fail_closed: bool | None = None


class RedactionTestOut(BaseModel):
    redacted: dict[str, Any] | None
    changes: int
    failures: list[dict[str, Any]]
    rejected: str | None
    ignored_fields: list[str]
    warnings: list[str]


def redactor_of(st: AppState) -> Redactor | None:
    return st.ingester.redactor


def current_rules(st: AppState, project_id: str) -> dict[str, Any]:
    """The project's document as the API shows it (no rules: an empty list, fail-open)."""
    doc = st.store.redaction.get(project_id) or {"rules": [], "fail_closed": False, "updated_by": None,
                                                    "updated_at": None}
    return {**doc, "presets": list(PRESETS), "warnings": list(compile_rules(doc).warnings)}


def save_rules(st: AppState, state: Any, project_id: str, doc: dict[str, Any]) -> dict[str, Any]:
    """Validate and store a document, drop the cached rules, note the change for the audit log."""
    clean = validate_document(doc)
    before = st.store.redaction.get(project_id)
    actor = actor_of(state)
    st.store.redaction.put(project_id, clean["rules"], fail_closed=clean["fail_closed"],
                           updated_by=actor.label() if actor else None)
    redactor = redactor_of(st)
    if redactor is not None:
        redactor.invalidate(project_id)
    note(state, "redaction.rules.set", target_type="redaction_rules", target_id=project_id,
         before={"rules": before["rules"], "fail_closed": before["fail_closed"]} if before else None,
         after=clean, detail={"rules": len(clean["rules"]), "fail_closed": clean["fail_closed"]},
         project_id=project_id)
    return current_rules(st, project_id)


@router.get("/redaction-rules", response_model=RedactionRulesOut, summary="The project's redaction rules (admin)")
def get_rules(request: Request, key: Admin) -> dict[str, Any]:
    return current_rules(request.app.state.podium, key.project_id)


@router.put("/redaction-rules", response_model=RedactionRulesOut,
            summary="Replace the project's redaction rules (admin)")
def put_rules(request: Request, body: RedactionRulesIn, key: Admin) -> dict[str, Any]:
    return save_rules(request.app.state.podium, request.state, key.project_id, body.model_dump())


@router.post("/redaction-rules/test", response_model=RedactionTestOut,
             summary="Dry run: what a sample payload becomes under the rules (admin)")
def test_rules(request: Request, body: RedactionTestIn, key: Admin) -> dict[str, Any]:
    st: AppState = request.app.state.podium
    if body.rules is None:
        stored = st.store.redaction.get(key.project_id) or {"rules": [], "fail_closed": False}
        doc = {"rules": stored["rules"], "fail_closed": stored["fail_closed"]}
    else:
        doc = {"rules": body.rules, "fail_closed": False}
    if body.fail_closed is not None:
        doc["fail_closed"] = body.fail_closed
    rs = compile_rules(validate_document(doc))
    return {**preview(rs, body.sample), "warnings": list(rs.warnings)}
