"""Annotation queues in the UI (docs/annotation.md): ``/annotate`` lists the queues with their
progress and makes new ones (from the traces list's filter or a list of trace/span ids),
``/annotate/{id}`` shows one queue (progress, per-annotator counts, agreement, *To dataset*),
and ``/annotate/{id}/review`` is the review screen: the trace's (or span's) input and output,
the queue's score forms and a comment, driven by the keyboard (``static/annotate.js``).

The annotator is the name in the ``podium_annotator`` cookie (set on the review screen), else the
viewer's actor (the key's public key, ``ui-local`` in local mode). Opening the review screen
claims the next item for that annotator (the same lock as ``POST .../next``), so it needs the
write role; so do submitting, skipping and the queue changes. Everything calls the same repo as
the REST API.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import QueryParams

from podium.core.datasets import check_dataset_name
from podium.core.records import ID_PATTERN
from podium.core.roles import Action, allowed
from podium.errors import NotFound, PodiumError
from podium.monitor import agreement
from podium.server.ui.access import UiError, Viewer, check_origin, ui_action
from podium.server.ui.pages import _form, _mark_ui, _st, _viewer, page, trace_filter
from podium.store.repos.annotations import MAX_FILTER_ITEMS, AnnotationRepo, Target
from podium.store.repos.score_configs import ScoreConfigRepo

__all__ = ["ANNOTATOR_COOKIE", "router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(_mark_ui)])

#: Remembers the annotator's name between visits (set on the review screen).
ANNOTATOR_COOKIE = "podium_annotator"
_MAX_IDS = 1000


def _repo(request: Request) -> AnnotationRepo:
    return _st(request).store.annotations


def annotator(request: Request, v: Viewer) -> str:
    name = (request.cookies.get(ANNOTATOR_COOKIE) or "").strip()
    return name[:256] if name and name.isprintable() else v.actor


def _page(request: Request, v: Viewer, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    return page(request, template, status=status, can_annotate=allowed(v.role, Action.WRITE), **ctx)


def _configs(request: Request, v: Viewer) -> list[dict[str, Any]]:
    return ScoreConfigRepo(_st(request).store.engine).list(v.project_id)


class _Query:
    """Just enough of a request for ``pages.trace_filter``: the traces page's query string."""

    def __init__(self, qs: str) -> None:
        self.query_params = QueryParams(qs)


def filter_from_query(qs: str) -> dict[str, Any]:
    """The traces page's filter (its query string, e.g. ``environment=prod&range=24h``) as the
    JSON filter a queue keeps (a relative range becomes an absolute start)."""
    f, errors = trace_filter(_Query(qs.lstrip("?")))  # type: ignore[arg-type]  # trace_filter reads query_params only
    if errors:
        raise UiError(400, "Invalid filter", "; ".join(errors))
    out: dict[str, Any] = {}
    for k, val in dataclasses.asdict(f).items():
        if val is None or val == []:
            continue
        out[k] = val.isoformat() if isinstance(val, datetime) else val
    return out


def _targets(text: str) -> list[Target]:
    """One target a line: ``trace_id`` or ``trace_id span_id`` (comma or space separated)."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = [p for p in line.replace(",", " ").split() if p]
        if not parts:
            continue
        if len(parts) > 2 or not all(ID_PATTERN.match(p) for p in parts):
            raise UiError(400, "Invalid ids", f"line {n}: write a trace id, optionally followed by a span id")
        out.append(Target(parts[0], parts[1] if len(parts) == 2 else None))
    if len(out) > _MAX_IDS:
        raise UiError(400, "Too many ids", f"add at most {_MAX_IDS} ids at once (the API takes {MAX_FILTER_ITEMS})")
    return out


# --- the queues ---------------------------------------------------------------------------------------


def _list_page(request: Request, v: Viewer, status: int = 200, **extra: Any) -> HTMLResponse:
    configs = [c for c in _configs(request, v) if not c["archived"]]
    queues = _repo(request).list_queues(v.project_id)
    names = {c["id"]: c["name"] for c in _configs(request, v)}
    for q in queues:
        q["config_names"] = [names.get(i, i) for i in q["score_config_ids"]]
    extra.setdefault("error", None)
    extra.setdefault("form", {})
    return _page(request, v, "annotation_queues.html", status=status, nav="annotate", queues=queues, configs=configs,
                prefill_filter=request.query_params.get("filter", ""), max_items=MAX_FILTER_ITEMS, **extra)


@router.get("/annotate", response_class=HTMLResponse)
@ui_action(Action.READ)
def queues_page(request: Request) -> HTMLResponse:
    v = _viewer(request, Action.READ)
    return _list_page(request, v)


@router.post("/annotate", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def create_queue(request: Request) -> Response:
    check_origin(request)
    v = _viewer(request, Action.WRITE, "create annotation queues")
    form = await _form(request)
    config_ids = [val for k, val in parse_qsl((await request.body()).decode("utf-8", "replace")) if k == "config"]
    try:
        qid = _create(request, v, form, config_ids[:20])
    except (PodiumError, UiError) as e:
        code = e.status if isinstance(e, UiError) else e.status_code
        return _list_page(request, v, status=code, error=e.message, form=form)
    return RedirectResponse(f"/annotate/{quote(qid, safe='')}?created=1", status_code=303)


def _create(request: Request, v: Viewer, form: dict[str, str], config_ids: list[str]) -> str:
    name = form.get("name", "").strip()
    if not name or len(name) > 256:
        raise UiError(400, "Name needed", "give the queue a name (up to 256 characters)")
    if not config_ids:
        raise UiError(400, "Score config needed", "pick at least one score config the reviewers fill in")
    try:
        reviews = int(form.get("reviews_per_item") or 1)
        limit = int(form.get("limit") or 100)
    except ValueError:
        raise UiError(400, "Not a number", "reviews per item and the trace limit are whole numbers") from None
    if not 1 <= reviews <= 20 or not 1 <= limit <= MAX_FILTER_ITEMS:
        raise UiError(400, "Out of range", f"reviews per item is 1-20; the trace limit 1-{MAX_FILTER_ITEMS}")
    source = form.get("source", "filter")
    targets = _targets(form.get("ids", "")) if source == "ids" else None
    if source == "ids" and not targets:
        raise UiError(400, "No ids", "list trace ids (one a line, optionally followed by a span id)")
    raw_filter = filter_from_query(form.get("filter", "")) if source != "ids" else None
    repo = _repo(request)
    q = repo.create_queue(v.project_id, name=name, score_config_ids=config_ids,
                          description=form.get("description", "").strip()[:10_000] or None,
                          reviews_per_item=reviews, created_by=v.actor)
    try:
        if targets is not None:
            repo.add_items(v.project_id, q["id"], targets)
        else:
            repo.add_from_filter(v.project_id, q["id"], raw_filter or {}, limit)
    except PodiumError:
        repo.delete_queue(v.project_id, q["id"])
        raise
    return str(q["id"])


def _queue_ctx(request: Request, v: Viewer, queue_id: str) -> dict[str, Any]:
    repo = _repo(request)
    q = repo.get_queue(v.project_id, queue_id)
    configs = {c["id"]: c for c in _configs(request, v)}
    q["configs"] = [configs[i] for i in q["score_config_ids"] if i in configs]
    return {"queue": q, "progress": repo.progress(v.project_id, queue_id)}


@router.get("/annotate/{queue_id}", response_class=HTMLResponse)
@ui_action(Action.READ)
def queue_page(request: Request, queue_id: str) -> HTMLResponse:
    v = _viewer(request, Action.READ)
    ctx = _queue_ctx(request, v, queue_id)
    agree: list[dict[str, Any]] | None = None
    if agreement.available():
        agree = agreement.for_queue(_st(request).store, v.project_id, queue_id)
    return _page(request, v, "annotation_queue.html", nav="annotate", agreement=agree,
                install_hint=agreement.INSTALL_HINT, created=request.query_params.get("created"),
                exported=request.query_params.get("exported"), added=request.query_params.get("added"),
                error=None, **ctx)


@router.post("/annotate/{queue_id}/to-dataset", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def to_dataset(request: Request, queue_id: str) -> Response:
    check_origin(request)
    v = _viewer(request, Action.WRITE, "add reviewed items to a dataset")
    form = await _form(request)
    repo = _repo(request)
    repo.get_queue(v.project_id, queue_id)  # 404 first
    name = form.get("dataset", "").strip()
    try:
        check_dataset_name(name)
        res = repo.to_dataset(v.project_id, queue_id, name, only_done=form.get("only", "done") != "reviewed",
                              expected="annotation" if form.get("expected") == "annotation" else "output",
                              actor=v.actor)
    except PodiumError as e:
        ctx = _queue_ctx(request, v, queue_id)
        agree = agreement.for_queue(_st(request).store, v.project_id, queue_id) if agreement.available() else None
        return _page(request, v, "annotation_queue.html", status=e.status_code, nav="annotate", agreement=agree,
                    install_hint=agreement.INSTALL_HINT, created=None, exported=None, error=e.message, **ctx)
    note = f"{name}:{res['added']}:{res['updated']}:{res['unchanged']}"
    return RedirectResponse(f"/annotate/{quote(queue_id, safe='')}?exported={quote(note, safe='')}", status_code=303)


@router.post("/annotate/{queue_id}/items", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def add_items(request: Request, queue_id: str) -> Response:
    """More traces for the queue: from the traces filter or a list of ids (ones already in are kept)."""
    check_origin(request)
    v = _viewer(request, Action.WRITE, "add items to annotation queues")
    form = await _form(request)
    repo = _repo(request)
    repo.get_queue(v.project_id, queue_id)  # 404 first
    try:
        if form.get("source") == "ids":
            targets = _targets(form.get("ids", ""))
            if not targets:
                raise UiError(400, "No ids", "list trace ids (one a line, optionally followed by a span id)")
            got = repo.add_items(v.project_id, queue_id, targets)
        else:
            try:
                limit = int(form.get("limit") or 100)
            except ValueError:
                raise UiError(400, "Not a number", "the trace limit is a whole number") from None
            got = repo.add_from_filter(v.project_id, queue_id, filter_from_query(form.get("filter", "")),
                                       max(1, min(limit, MAX_FILTER_ITEMS)))
    except (PodiumError, UiError) as e:
        code = e.status if isinstance(e, UiError) else e.status_code
        ctx = _queue_ctx(request, v, queue_id)
        agree = agreement.for_queue(_st(request).store, v.project_id, queue_id) if agreement.available() else None
        return _page(request, v, "annotation_queue.html", status=code, nav="annotate", agreement=agree,
                     install_hint=agreement.INSTALL_HINT, created=None, exported=None, error=e.message, **ctx)
    note = f"{got['added']}:{got['existing']}"
    return RedirectResponse(f"/annotate/{quote(queue_id, safe='')}?added={note}", status_code=303)


@router.post("/annotate/{queue_id}/delete", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def delete_queue(request: Request, queue_id: str) -> Response:
    check_origin(request)
    v = _viewer(request, Action.WRITE, "delete annotation queues")
    _repo(request).delete_queue(v.project_id, queue_id)
    return RedirectResponse("/annotate", status_code=303)


# --- the review screen --------------------------------------------------------------------------------


def _review_page(request: Request, v: Viewer, queue_id: str, item: dict[str, Any] | None, *, status: int = 200,
                 error: str | None = None, values: dict[str, str] | None = None) -> HTMLResponse:
    st = _st(request)
    repo = _repo(request)
    ctx = _queue_ctx(request, v, queue_id)
    who = annotator(request, v)
    history = repo.history(v.project_id, queue_id, who)
    trace = span = None
    mine: dict[str, Any] = {}
    comment = ""
    prev_id = next_id = None
    if item is not None:
        try:
            trace = st.store.traces.get_trace(v.project_id, item["trace_id"])
            if item["span_id"]:
                span = st.store.traces.get_span(v.project_id, item["trace_id"], item["span_id"])
        except NotFound:
            pass
        for a in repo.annotations(v.project_id, queue_id, item_id=item["id"], annotator=who):
            mine[a["score_config_id"]] = a["label"] if a["label"] is not None else a["value"]
            comment = a["comment"] or comment
        if item["id"] in history:
            k = history.index(item["id"])
            prev_id = history[k - 1] if k > 0 else None
            next_id = history[k + 1] if k + 1 < len(history) else None
        else:
            prev_id = history[-1] if history else None
    elif history:
        prev_id = history[-1]
    if values:  # what was posted, shown again after an error
        mine.update(values)
    return _page(request, v, "annotate.html", status=status, nav="annotate", item=item, trace=trace, span=span,
                annotator=who, mine=mine, comment=comment, prev_id=prev_id, next_id=next_id, error=error,
                reviewed=len(history), **ctx)


@router.get("/annotate/{queue_id}/review", response_class=HTMLResponse)
@ui_action(Action.WRITE)
def review(request: Request, queue_id: str) -> HTMLResponse:
    v = _viewer(request, Action.WRITE, "review items of annotation queues")
    repo = _repo(request)
    wanted = request.query_params.get("item")
    if wanted:
        item: dict[str, Any] | None = repo.get_item(v.project_id, queue_id, wanted)
    else:
        item = repo.claim_next(v.project_id, queue_id, annotator(request, v))
    return _review_page(request, v, queue_id, item)


def _back(queue_id: str) -> str:
    return f"/annotate/{quote(queue_id, safe='')}/review"


@router.post("/annotate/{queue_id}/items/{item_id}", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def submit(request: Request, queue_id: str, item_id: str) -> Response:
    check_origin(request)
    v = _viewer(request, Action.WRITE, "annotate")
    form = await _form(request)
    repo = _repo(request)
    item = repo.get_item(v.project_id, queue_id, item_id)  # 404 first
    q = repo.get_queue(v.project_id, queue_id)
    configs = {c["id"]: c for c in _configs(request, v)}
    values: dict[str, Any] = {}
    posted: dict[str, str] = {}
    for cid in q["score_config_ids"]:
        raw = form.get(f"v:{cid}", "").strip()
        if raw == "" or cid not in configs:
            continue
        posted[cid] = raw
        dt = configs[cid]["data_type"]
        if dt == "boolean":
            values[cid] = raw.lower() in ("true", "1", "yes", "y")
        elif dt == "numeric":
            try:
                values[cid] = float(raw)
            except ValueError:
                values[cid] = raw  # the config's check names the problem
        else:
            values[cid] = raw
    if not values:
        return _review_page(request, v, queue_id, item, status=400, error="pick a value for at least one score")
    try:
        repo.submit(v.project_id, queue_id, item_id, annotator(request, v), values,
                    comment=form.get("comment", "").strip()[:10_000] or None)
    except PodiumError as e:
        return _review_page(request, v, queue_id, item, status=e.status_code, error=e.message, values=posted)
    return RedirectResponse(_back(queue_id), status_code=303)


@router.post("/annotate/{queue_id}/items/{item_id}/skip", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def skip(request: Request, queue_id: str, item_id: str) -> Response:
    check_origin(request)
    v = _viewer(request, Action.WRITE, "skip items of annotation queues")
    repo = _repo(request)
    item = repo.get_item(v.project_id, queue_id, item_id)
    try:
        repo.skip(v.project_id, queue_id, item_id, annotator(request, v))
    except PodiumError as e:
        return _review_page(request, v, queue_id, item, status=e.status_code, error=e.message)
    return RedirectResponse(_back(queue_id), status_code=303)


@router.post("/annotate/{queue_id}/annotator", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def set_annotator(request: Request, queue_id: str) -> Response:
    """Remember the annotator's name (a cookie); the next review claims under it."""
    check_origin(request)
    v = _viewer(request, Action.WRITE, "review items of annotation queues")
    form = await _form(request)
    _repo(request).get_queue(v.project_id, queue_id)
    name = form.get("annotator", "").strip()
    if len(name) > 256 or (name and not name.isprintable()):
        raise UiError(400, "Invalid name", "use up to 256 printable characters")
    resp = RedirectResponse(_back(queue_id), status_code=303)
    if name:
        resp.set_cookie(ANNOTATOR_COOKIE, name, max_age=365 * 86400, httponly=True, samesite="strict")
    else:
        resp.delete_cookie(ANNOTATOR_COOKIE)
    return resp
