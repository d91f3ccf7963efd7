"""Data-subject requests: delete or export everything a project holds about one user id
(docs/governance.md#data-subject-requests).

What "about a user" means: the traces whose ``user_id`` is theirs and what hangs off them
(spans, scores, tags, annotation items and annotations), the feedback they gave on other traces
(scores whose ``metadata.user_id`` is theirs: ``POST /api/v1/feedback`` records it there),
dataset items made from their traces (``source_trace_id``: training-data exports and annotation
queues link items that way) or naming them (``metadata.user_id``), and the experiment results
computed on those items.

A deletion returns a :class:`~podium.store.repos.lifecycle.SubjectReceipt` (rows per table, the
request id, when, who) that is stored (counts only, never the data) and is refused under a legal
hold. What cannot be reached is said in the receipt's ``notes``: the gateway's response cache is
keyed by a hash of the request without its ``user`` field, so a user's entries cannot be found
(they expire after ``PODIUM_GATEWAY_CACHE_TTL``); Podium tracks no export files on disk
(training-data exports are the datasets above; files written with ``--out`` are the operator's).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from podium.config import Settings
from podium.governance.actor import Actor
from podium.governance.retention import hold_error
from podium.store import Store
from podium.store.repos.lifecycle import SubjectReceipt

__all__ = ["NOTES", "delete_subject", "export_subject", "subject_overview"]

NOTES = {
    "gateway_cache": "not identifiable: the response cache is keyed by a SHA-256 of the request without its "
                     "`user` field, so no entry names a user; entries expire after PODIUM_GATEWAY_CACHE_TTL "
                     "seconds",
    "files": "none tracked: training-data exports are stored as dataset items (deleted above); files written "
             "with `podium tune export --out` are outside Podium's records",
}


def subject_overview(store: Store, project_id: str, user_id: str) -> dict[str, Any]:
    """What Podium holds about ``user_id`` now (rows per table) and the past requests about them."""
    counts = store.lifecycle.subject_counts(project_id, user_id)
    return {"user_id": user_id, "counts": counts, "total": sum(counts.values()), "notes": NOTES,
            "requests": [r.as_dict() for r in store.lifecycle.requests(project_id, user_id=user_id)]}


def delete_subject(store: Store, settings: Settings, project_id: str, user_id: str, *, actor: Actor,
                   batch: int | None = None) -> SubjectReceipt:
    """Delete everything about ``user_id`` in batches and store the receipt. Raises
    :class:`~podium.governance.retention.LegalHold` under a hold. The caller records the audit
    event (a request: ``note(...)``; the CLI: ``store.audit.append``)."""
    policy = store.lifecycle.policy(project_id)
    if policy.legal_hold:
        raise hold_error(policy, "deleting a data subject")
    res = store.lifecycle.delete_subject(project_id, user_id, batch=batch or settings.retention_batch)
    return store.lifecycle.record_request(project_id, kind="delete", user_id=user_id, counts=res.counts,
                                          notes=dict(NOTES), actor=actor.label())


def _default(o: Any) -> Any:
    if isinstance(o, datetime | date):
        return o.isoformat()
    if isinstance(o, Decimal):
        return float(o)
    return str(o)


def _dumps(o: Any) -> str:
    return json.dumps(o, default=_default, ensure_ascii=False, separators=(",", ":"))


def export_subject(store: Store, project_id: str, user_id: str) -> Iterator[str]:
    """Everything about ``user_id`` as one JSON document, in pieces (a trace at a time):
    ``{"user_id", "project_id", "exported_at", "traces": [...], "feedback": [...],
    "dataset_items": [...], "notes"}``."""
    head = {"user_id": user_id, "project_id": project_id, "exported_at": datetime.now(UTC).isoformat()}
    yield _dumps(head)[:-1]
    section: str | None = None
    first = True
    names = {"trace": "traces", "feedback": "feedback", "dataset_item": "dataset_items"}
    seen: set[str] = set()
    for kind, row in store.lifecycle.export_subject(project_id, user_id):
        if kind != section:
            if section is not None:
                yield "]"
            yield f',"{names[kind]}":['
            section, first = kind, True
            seen.add(kind)
        yield ("" if first else ",") + _dumps(row)
        first = False
    if section is not None:
        yield "]"
    for kind, name in names.items():  # every section present, empty when nothing
        if kind not in seen:
            yield f',"{name}":[]'
    yield f',"notes":{_dumps(NOTES)}}}'
