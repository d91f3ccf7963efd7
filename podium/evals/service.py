"""The server side of evaluation: checks what clients send, turns experiment item results into
``score`` rows (source ``eval``, attached to each item's trace), computes summaries and
comparisons. Storage goes through a repository (``podium.store.repos.evals.EvalRepo``), which
this module never imports.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from podium.core.datasets import (
    DatasetItem,
    check_dataset_name,
    items_from_records,
    normalize_item,
)
from podium.core.records import ID_PATTERN
from podium.errors import BadRequest, ValidationFailed
from podium.evals import analysis

__all__ = ["EvalService", "EvalStore", "ExperimentIn", "ItemResultIn", "score_rows"]

STATUSES = ("running", "completed", "failed", "interrupted")
MAX_ITEMS_PER_REQUEST = 50_000
MAX_RESULTS_PER_REQUEST = 5_000


class EvalStore(Protocol):  # what EvalRepo provides
    # (project_id, name, *, keyword fields as EvalRepo declares them)
    @property
    def create_dataset(self) -> Callable[..., dict[str, Any]]: ...
    @property
    def change_items(self) -> Callable[..., dict[str, Any]]: ...
    def get_experiment(self, project_id: str, experiment_id: str) -> dict[str, Any]: ...
    def create_experiment(self, project_id: str, rec: dict[str, Any], labels: Sequence[str] = ()) -> dict[str, Any]: ...
    @property
    def update_experiment(self) -> Callable[..., dict[str, Any]]: ...
    def add_items(self, project_id: str, experiment_id: str, rows: Sequence[dict[str, Any]],
                  score_rows: Sequence[dict[str, Any]] = ()) -> dict[str, int]: ...
    def all_items(self, project_id: str, experiment_id: str, *, full: bool = False) -> list[dict[str, Any]]: ...
    def resolve_version(self, project_id: str, name: str, version: int | None) -> int: ...


def _check_id(v: str | None, what: str) -> str | None:
    if v is not None and not ID_PATTERN.match(v):
        raise ValueError(f"{what} must be 1-128 letters, digits, '_', '-', '.', ':'")
    return v


def _finite(v: Any) -> Any:
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, float) and not math.isfinite(x):
            raise ValueError("NaN and Infinity are not valid JSON values")
        if isinstance(x, Mapping):
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return v


class ScoreEntryIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    value: float | bool | str | None = None
    passed: bool | None = None
    explanation: str | None = Field(default=None, max_length=100_000)
    metadata: dict[str, Any] | None = None
    error: str | None = Field(default=None, max_length=100_000)
    error_type: str | None = Field(default=None, max_length=64)
    type: str | None = Field(default=None, max_length=100)
    direction: Literal["higher", "lower"] | None = None
    weight: float | None = Field(default=None, ge=0, allow_inf_nan=False)

    @field_validator("value")
    @classmethod
    def _v(cls, v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError("a score value must be a finite number")
        return v


class ItemResultIn(BaseModel):
    """One (item, repetition) result, as the runner sends it."""

    model_config = ConfigDict(extra="forbid")
    item_id: str
    repetition: int = Field(default=0, ge=0, le=10_000)
    position: int = Field(default=0, ge=0, le=2**31 - 1)
    input: Any = None
    expected: Any = None
    context: Any = None
    metadata: dict[str, Any] | None = None
    labels: dict[str, Any] | None = None
    output: Any = None
    error: str | None = Field(default=None, max_length=100_000)
    error_type: str | None = Field(default=None, max_length=64)
    trace_id: str | None = None
    latency_ms: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    cost: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    usage: dict[str, Any] | None = None
    scores: dict[str, ScoreEntryIn] = Field(default_factory=dict)
    passed: bool | None = None
    weighted_score: float | None = Field(default=None, allow_inf_nan=False)
    attempts: int = Field(default=1, ge=0)

    @field_validator("item_id")
    @classmethod
    def _item(cls, v: str) -> str:
        return _check_id(v, "item_id")  # type: ignore[return-value]

    @field_validator("trace_id")
    @classmethod
    def _trace(cls, v: str | None) -> str | None:
        return _check_id(v, "trace_id")

    @field_validator("scores")
    @classmethod
    def _names(cls, v: dict[str, ScoreEntryIn]) -> dict[str, ScoreEntryIn]:
        for name in v:
            if not name or len(name) > 256:
                raise ValueError("score names are 1-256 characters")
        return v

    @field_validator("input", "expected", "context", "output", "metadata", "labels", "usage")
    @classmethod
    def _json(cls, v: Any) -> Any:
        return _finite(v)


class ExperimentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(default=None, description="client-chosen id (resuming uses it); default: generated")
    name: str = Field(min_length=1, max_length=256)
    dataset_name: str | None = None
    dataset_version: int | None = Field(default=None, ge=1)
    run_group: str | None = Field(default=None, max_length=64)
    task: dict[str, Any] | None = None
    scorers: list[dict[str, Any]] = Field(default_factory=list)
    config: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    labels: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str | None) -> str | None:
        if v is not None and (not ID_PATTERN.match(v) or len(v) > 64):
            raise ValueError("id must be 1-64 letters, digits, '_', '-', '.', ':'")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: list[str]) -> list[str]:
        return [check_label(x) for x in v]

    @field_validator("task", "scorers", "config", "metadata")
    @classmethod
    def _json(cls, v: Any) -> Any:
        return _finite(v)


def check_label(label: Any) -> str:
    if not isinstance(label, str) or not 1 <= len(label) <= 64 or not ID_PATTERN.match(label):
        raise ValueError(f"invalid label {label!r}: 1-64 letters, digits, '_', '-', '.', ':'")
    return label


def _validation(e: ValidationError, prefix: str = "") -> ValidationFailed:
    details = [{"field": prefix + ".".join(str(p) for p in err["loc"]), "message": err["msg"]} for err in e.errors()]
    first = details[0]
    return ValidationFailed(f"invalid {first['field'] or 'body'}: {first['message']}", details=details)


def score_rows(experiment: Mapping[str, Any], items: Sequence[ItemResultIn], now: datetime) -> list[dict[str, Any]]:
    """``score`` table rows for item results that have a trace: one per scorer result with a value.

    Ids are derived from (experiment, item, repetition, scorer), so re-sent results replace
    their scores instead of adding more."""
    out = []
    eid = str(experiment["id"])
    for it in items:
        if not it.trace_id:
            continue
        for name, s in it.scores.items():
            if s.error or s.value is None:
                continue
            key = f"{eid}|{it.item_id}|{it.repetition}|{name}"
            sid = "ev-" + hashlib.sha256(key.encode()).hexdigest()[:40]
            if isinstance(s.value, bool):
                dtype, num, text = "boolean", 1.0 if s.value else 0.0, None
            elif isinstance(s.value, int | float):
                dtype, num, text = "numeric", float(s.value), None
            else:
                dtype, num, text = "categorical", None, str(s.value)[:10_000]
            meta = {"experiment_id": eid, "experiment": experiment.get("name"), "item_id": it.item_id,
                    "repetition": it.repetition, "passed": s.passed, "scorer_type": s.type}
            if s.metadata:
                meta["score"] = s.metadata
            out.append({
                "id": sid, "trace_id": it.trace_id, "span_id": None, "session_id": None, "name": name,
                "data_type": dtype, "value": num, "string_value": text, "source": "eval",
                "comment": (s.explanation or None) and s.explanation[:10_000], "metadata": meta, "timestamp": now,
            })
    return out


def _parse_items(raw: Any, where: str = "items") -> list[DatasetItem]:
    if not isinstance(raw, list):
        raise BadRequest(f"`{where}` must be a list of items")
    if len(raw) > MAX_ITEMS_PER_REQUEST:
        raise BadRequest(f"at most {MAX_ITEMS_PER_REQUEST} items per request; got {len(raw)}: send them in parts")
    return items_from_records(raw, where=where, extra_to=None)


class EvalService:
    def __init__(self, repo: EvalStore) -> None:
        self.repo = repo

    # --- datasets -----------------------------------------------------------------------------
    def create_dataset(self, project_id: str, body: Mapping[str, Any], *, actor: str | None) -> dict[str, Any]:
        unknown = set(body) - {"name", "description", "metadata", "items", "message"}
        if unknown:
            raise ValidationFailed(f"unknown field(s) {sorted(unknown)}; a dataset has name, description, "
                                   "metadata, items, message", details=[{"field": sorted(unknown)[0]}])
        name = check_dataset_name(body.get("name"))
        desc = body.get("description")
        if desc is not None and not isinstance(desc, str):
            raise ValidationFailed("description must be a string", details=[{"field": "description"}])
        meta = body.get("metadata") or {}
        if not isinstance(meta, dict):
            raise ValidationFailed("metadata must be an object", details=[{"field": "metadata"}])
        items = _parse_items(body.get("items") or [])
        return self.repo.create_dataset(project_id, name, description=desc, metadata=meta, items=items,
                                        message=_message(body.get("message")), source={"kind": "api"}, actor=actor)

    def change_items(self, project_id: str, name: str, body: Mapping[str, Any], *, actor: str | None,
                     items: list[DatasetItem] | None = None, source: dict[str, Any] | None = None) -> dict[str, Any]:
        """``body``: ``{"items": [...], "message", "replace", "create"}`` (or ``items`` parsed from a file)."""
        unknown = set(body) - {"items", "message", "replace", "create", "description"}
        if unknown:
            raise ValidationFailed(f"unknown field(s) {sorted(unknown)}; send items, message, replace, create",
                                   details=[{"field": sorted(unknown)[0]}])
        parsed = items if items is not None else _parse_items(body.get("items") or [])
        replace = _flag(body, "replace")
        create = _flag(body, "create")
        if create:
            check_dataset_name(name)
        return self.repo.change_items(
            project_id, name, upsert=parsed, replace_all=replace, message=_message(body.get("message")),
            source=source or {"kind": "sync" if replace else "api"}, actor=actor, create=create,
            description=body.get("description") if isinstance(body.get("description"), str) else None)

    def delete_items(self, project_id: str, name: str, body: Mapping[str, Any], *, actor: str | None) -> dict[str, Any]:
        ids = body.get("ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise ValidationFailed("`ids` must be a non-empty list of item ids", details=[{"field": "ids"}])
        return self.repo.change_items(project_id, name, delete_ids=list(dict.fromkeys(ids)),
                                      message=_message(body.get("message")), source={"kind": "api"}, actor=actor)

    def items_from_traces(self, project_id: str, name: str, traces: Sequence[Mapping[str, Any]], *,
                          expected: str | None, split: str | None, create: bool, message: str | None,
                          actor: str | None, filter: Mapping[str, Any]) -> dict[str, Any]:
        """Items from trace rows (with input/output): id and ``source_trace_id`` are the trace id."""
        rows = []
        skipped = 0
        for tr in traces:
            if tr.get("input") is None:
                skipped += 1
                continue
            meta = {k: tr.get(k) for k in ("user_id", "session_id", "release", "environment") if tr.get(k)}
            if tr.get("name"):
                meta["trace_name"] = tr["name"]
            if tr.get("metadata"):
                meta["trace_metadata"] = tr["metadata"]
            if tr.get("tags"):
                meta["tags"] = tr["tags"]
            rows.append(normalize_item({
                "id": tr["id"], "input": tr.get("input"),
                "expected": tr.get("output") if expected == "output" else None,
                "metadata": meta, "split": split, "source_trace_id": tr["id"],
            }, f"trace {tr['id']}"))
        if create:
            check_dataset_name(name)
        items = items_from_records(rows, extra_to=None)
        out = self.repo.change_items(project_id, name, upsert=items, message=message or "from traces",
                                     source={"kind": "traces", "filter": dict(filter), "expected": expected},
                                     actor=actor, create=create)
        return {**out, "traces": len(traces), "skipped_without_input": skipped}

    # --- experiments --------------------------------------------------------------------------
    def create_experiment(self, project_id: str, body: Mapping[str, Any], *, actor: str | None) -> dict[str, Any]:
        try:
            e = ExperimentIn.model_validate(body)
        except ValidationError as err:
            raise _validation(err) from None
        if e.dataset_name is not None:
            v = self.repo.resolve_version(project_id, e.dataset_name, e.dataset_version)
            e.dataset_version = v
        elif e.dataset_version is not None:
            raise ValidationFailed("dataset_version needs dataset_name", details=[{"field": "dataset_version"}])
        rec = e.model_dump(exclude={"labels"})
        rec["id"] = e.id or uuid.uuid4().hex
        rec["created_by"] = actor
        return self.repo.create_experiment(project_id, rec, e.labels)

    def update_experiment(self, project_id: str, experiment_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        allowed = {"name", "metadata", "status", "add_labels", "remove_labels", "labels"}
        unknown = set(body) - allowed
        if unknown:
            raise ValidationFailed(f"unknown field(s) {sorted(unknown)}; you can change "
                                   f"{', '.join(sorted(allowed))}", details=[{"field": sorted(unknown)[0]}])
        values: dict[str, Any] = {}
        if "name" in body:
            if not isinstance(body["name"], str) or not 1 <= len(body["name"]) <= 256:
                raise ValidationFailed("name must be 1-256 characters", details=[{"field": "name"}])
            values["name"] = body["name"]
        if "metadata" in body:
            if not isinstance(body["metadata"], dict):
                raise ValidationFailed("metadata must be an object", details=[{"field": "metadata"}])
            values["metadata"] = _finite(body["metadata"])
        if "status" in body:
            if body["status"] not in STATUSES:
                raise ValidationFailed(f"status must be one of {', '.join(STATUSES)}", details=[{"field": "status"}])
            values["status"] = body["status"]
            if body["status"] == "running":
                values["ended_at"] = None
        try:
            add = [check_label(x) for x in (body.get("add_labels") or body.get("labels") or [])]
            remove = [check_label(x) for x in (body.get("remove_labels") or [])]
        except ValueError as err:
            raise ValidationFailed(str(err), details=[{"field": "labels"}]) from None
        return self.repo.update_experiment(project_id, experiment_id, values=values, add_labels=add,
                                           remove_labels=remove)

    def add_items(self, project_id: str, experiment_id: str, body: Any) -> dict[str, int]:
        raw = body.get("items") if isinstance(body, dict) else None
        if not isinstance(raw, list):
            raise BadRequest("send {\"items\": [...]} with one result per (item, repetition)")
        if len(raw) > MAX_RESULTS_PER_REQUEST:
            raise BadRequest(f"at most {MAX_RESULTS_PER_REQUEST} results per request; got {len(raw)}")
        parsed = []
        for i, r in enumerate(raw):
            try:
                parsed.append(ItemResultIn.model_validate(r))
            except ValidationError as err:
                raise _validation(err, f"items[{i}].") from None
        exp = self.repo.get_experiment(project_id, experiment_id)
        now = datetime.now(UTC)
        rows = []
        for p in parsed:
            d = p.model_dump()
            d["scores"] = {k: {kk: vv for kk, vv in v.items() if vv is not None}
                           for k, v in d["scores"].items()}
            rows.append(d)
        return self.repo.add_items(project_id, experiment_id, rows, score_rows(exp, parsed, now))

    def finish(self, project_id: str, experiment_id: str, status: str = "completed") -> dict[str, Any]:
        if status not in STATUSES or status == "running":
            raise ValidationFailed("status must be completed, failed or interrupted", details=[{"field": "status"}])
        exp = self.repo.get_experiment(project_id, experiment_id)
        items = self.repo.all_items(project_id, experiment_id)
        summary = analysis.summarize(items, exp.get("scorers") or [])
        return self.repo.update_experiment(project_id, experiment_id, values={
            "status": status, "summary": summary, "ended_at": datetime.now(UTC)})

    def compare(self, project_id: str, baseline: str, candidates: Sequence[str], *, confidence: float = 0.95,
                tolerance: float = 0.0, metrics: Sequence[str] | None = None) -> dict[str, Any]:
        if not candidates:
            raise BadRequest("name at least one candidate experiment (candidate=ID, repeatable)")
        if not 0 < confidence < 1:
            raise BadRequest("confidence must be between 0 and 1, e.g. 0.95")
        if tolerance < 0:
            raise BadRequest("tolerance must be >= 0")
        base = self.repo.get_experiment(project_id, baseline)
        base_items = self.repo.all_items(project_id, baseline)
        out = []
        for cid in candidates:
            cand = self.repo.get_experiment(project_id, cid)
            cand_items = self.repo.all_items(project_id, cid)
            scorers = [*(base.get("scorers") or []), *(cand.get("scorers") or [])]
            cmp = analysis.compare_runs(base_items, cand_items, scorers=scorers, metrics=metrics,
                                        confidence=confidence, tolerance=tolerance)
            out.append({"experiment": _brief(cand), **cmp})
        return {"baseline": _brief(base), "candidates": out}


def _brief(e: Mapping[str, Any]) -> dict[str, Any]:
    return {k: e.get(k) for k in ("id", "name", "status", "dataset_name", "dataset_version", "labels", "created_at",
                                  "item_count", "error_count")}


def _message(m: Any) -> str | None:
    if m is None:
        return None
    if not isinstance(m, str) or len(m) > 10_000:
        raise ValidationFailed("message must be a string of at most 10,000 characters", details=[{"field": "message"}])
    return m


def _flag(body: Mapping[str, Any], key: str) -> bool:
    v = body.get(key, False)
    if not isinstance(v, bool):
        raise ValidationFailed(f"`{key}` must be true or false", details=[{"field": key}])
    return v

