"""The audit middleware: one audit event per mutating request (docs/governance.md#audit-log).

A plain ASGI middleware. It records requests whose method is not GET/HEAD/OPTIONS (API calls
and UI form posts alike) and any request whose handler added a note (``note(request.state,
...)``, e.g. an export). Each note becomes one event with the note's action, target and
before/after; a request without notes becomes one generic event (``http.<method>``, the route
template, its path parameters and the status). Failed requests (4xx/5xx) are recorded when
authentication said who was acting (a viewer's refused label move is recorded; an unknown key's
401 is not). The high-volume data paths in :data:`EXCLUDED_PATHS` are never recorded.

The event is written before the response starts (in a worker thread, one short transaction),
so a client that saw the response can read its event; a failed write is logged and does not
fail the request (the change it describes has already happened).
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import anyio
from starlette.datastructures import State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from podium.governance.actor import Actor, AuditNote, actor_of, note, notes_of

__all__ = ["EXCLUDED_PATHS", "SAFE_METHODS", "AuditLogMiddleware", "excluded", "label_note", "noted"]

logger = logging.getLogger("podium.server.audit")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Paths never audited: the data planes, called thousands of times a minute by SDKs and
#: collectors (spans, OTLP, Langfuse batches, gateway model calls, end-user feedback, guard
#: scans, SDK score posts). An entry ending in "/" is a prefix, any other an exact path.
#: Listed in docs/governance.md#audit-log.
EXCLUDED_PATHS = (
    "/v1/",  # gateway model calls (/v1/chat/completions ...) and OTLP/HTTP (/v1/traces, /v1/logs)
    "/api/v1/ingest",  # native batch ingestion
    "/api/public/otel/",  # OTLP under the Langfuse prefix
    "/api/public/ingestion",  # Langfuse SDK batches
    "/api/public/scores",  # Langfuse SDK score posts (POST only: deleting one is audited)
    "/api/v1/scores",  # SDK score posts (POST /api/v1/scores; deleting a score is audited)
    "/api/v1/feedback",  # end-user feedback (public key)
    "/api/v1/guard/scan",  # guardrail scans
    "/metrics",
)
_ANONYMOUS = Actor("anonymous", "-")
_SAME: Any = object()
T = TypeVar("T")


def excluded(path: str) -> bool:
    """Whether ``path`` is one of the data paths the audit log leaves out."""
    return any(path.startswith(p) if p.endswith("/") else path == p for p in EXCLUDED_PATHS)


def label_note(state: Any, store: Any, project_id: str, name: str, label: str, action: str) -> None:
    """Note a prompt label move from the label's newest history entry (who moved it from where
    to where): one line in each handler that moves a label."""
    try:
        last = store.prompts.label_history(project_id, name, label, limit=1).items
    except Exception:  # the move happened; its note must not fail the request
        last = []
    item = last[0] if last else {}
    note(state, action, target_type="prompt", target_id=name, project_id=project_id,
         before={"targets": item.get("from_targets")}, after={"targets": item.get("to_targets")},
         detail={"label": label, "from_version": item.get("from_version"), "to_version": item.get("to_version"),
                 "seq": item.get("seq"), "comment": item.get("comment")})


def _route_of(scope: Scope) -> str | None:
    route = scope.get("route")
    path = getattr(route, "path", None) or getattr(route, "path_format", None)
    return str(path) if path else None


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers") or ():
        if k == name:
            return str(v.decode("latin-1"))
    return None


def _generic(method: str, path: str, route: str | None, params: dict[str, Any]) -> AuditNote:
    """The event of a request no handler described: the method, the route and its parameters."""
    template = route or path
    parts = [p for p in template.split("/") if p and not p.startswith("{")]
    if parts[:2] == ["api", "v1"] or parts[:2] == ["api", "public"]:
        parts = parts[2:]
    target_type = parts[0] if parts else None
    target_id = str(next(iter(params.values()))) if params else None
    return AuditNote(action=f"http.{method.lower()}", target_type=target_type, target_id=target_id,
                     detail={"path_params": {k: str(v) for k, v in params.items()}} if params else {})


class AuditLogMiddleware:
    """Records mutating requests in the audit log (``app.state.podium.store.audit``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or excluded(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        recorded = False

        async def record(status: int) -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            try:
                await self._record(scope, status)
            except Exception:  # the change is made; losing its event is logged loudly, not raised
                logger.exception("audit event not recorded for %s %s", scope.get("method"), scope.get("path"))

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                await record(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            await record(500)
            raise

    async def _record(self, scope: Scope, status: int) -> None:
        state = State(scope.setdefault("state", {}))
        notes = notes_of(state)
        method = str(scope.get("method", "GET")).upper()
        if not notes and method in SAFE_METHODS:
            return
        actor = actor_of(state)
        if actor is None:
            if status >= 400:
                return  # nobody known: a bad key or a refused login is not a change
            actor = _ANONYMOUS
        path = str(scope.get("path", ""))
        route = _route_of(scope)
        params = dict(scope.get("path_params") or {})
        if not notes:
            notes = [_generic(method, path, route, params)]
        app: Any = scope["app"]  # Starlette puts the application in every scope
        store = app.state.podium.store
        ua = _header(scope, b"user-agent")
        client = scope.get("client")
        ip = actor.ip or (client[0] if client else None)

        def write() -> None:
            for n in notes:
                store.audit.append(
                    project_id=n.project_id or actor.project_id, actor=actor, action=n.action,
                    target_type=n.target_type, target_id=n.target_id, before=n.before, after=n.after,
                    detail=n.detail or None, status=status, method=method, route=route, path=path, ip=ip,
                    user_agent=ua)

        await anyio.to_thread.run_sync(write)


def noted(state: Any, action: str, result: T, *, target_type: str, target_id: Any = None, before: Any = None,
          detail: dict[str, Any] | None = None, after: Any = _SAME) -> T:
    """Note ``action`` with ``result`` as the value after (or ``after``) and hand ``result`` back,
    so a handler's ``return x`` becomes ``return noted(request.state, "area.verb", x, ...)``."""
    note(state, action, target_type=target_type, target_id=None if target_id is None else str(target_id),
         before=before, after=result if after is _SAME else after, detail=detail or {})
    return result
