"""Run one drift monitor: sample both windows, compute the features, test each one, and return
one result row (``store.drift.add_result`` stores it).

Statistic names (flat, what alert rules read with ``store.drift.latest_value``), for ``side``
``input`` or ``output``:

- ``{side}_embedding_auc``, ``{side}_embedding_p_value``, ``{side}_embedding_drifted``
- ``{side}_length_p_value`` (KS), ``{side}_length_wasserstein`` (normed), ``{side}_length_drifted``
- ``{side}_language_p_value`` (chi-square), ``{side}_language_psi``, ``{side}_language_drifted``
- ``{side}_topics_p_value`` (chi-square over reference clusters), ``{side}_topics_psi``,
  ``{side}_topics_drifted`` (the test fired or a new topic appeared), ``{side}_new_topics``
  (how many new topic clusters)
- ``score:{name}_p_value`` (KS), ``score:{name}_wasserstein``, ``score:{name}_mean_delta``,
  ``score:{name}_drifted``
- ``drifted`` (1 when any feature drifted), ``drifted_features``, ``reference_n``, ``current_n``
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from podium.monitor.drift.clusters import find_topics
from podium.monitor.drift.features import EmbeddingCache, default_cache, languages, lengths, to_text
from podium.monitor.drift.spec import DEFAULT_THRESHOLDS, parse_time, to_filter
from podium.monitor.drift.stattests import Outcome, categorical_drift, embedding_drift, numeric_drift, require
from podium.store import Store

__all__ = ["run_monitor", "windows"]


def windows(monitor: dict[str, Any], now: datetime) -> tuple[datetime, datetime, datetime | None, datetime | None]:
    """(current start, current end, reference start, reference end); the reference bounds are
    None for a dataset reference."""
    end = now
    start = end - timedelta(seconds=int(monitor["window_s"]))
    ref = monitor["reference"]
    if ref["kind"] == "rolling":
        ref_end = start - timedelta(seconds=int(ref.get("gap_s", 0)))
        return start, end, ref_end - timedelta(seconds=int(ref["length_s"])), ref_end
    if ref["kind"] == "fixed":
        return start, end, parse_time(ref["start"], "reference.start"), parse_time(ref["end"], "reference.end")
    return start, end, None, None


def _texts(records: list[dict[str, Any]], side: str) -> list[str]:
    out = []
    for r in records:
        x = to_text(r.get(side), is_input=side == "input")
        if x is not None:
            out.append(x)
    return out


def run_monitor(store: Store, project_id: str, monitor: dict[str, Any], *, now: datetime | None = None,
                cache: EmbeddingCache | None = None) -> dict[str, Any]:
    """One result row for ``monitor`` (as ``store.drift.get`` returns it) at ``now``."""
    require()
    t0 = time.perf_counter()
    now = now or datetime.now(UTC)
    th = {**DEFAULT_THRESHOLDS, **(monitor.get("thresholds") or {})}
    alpha, min_n = float(th["p_value"]), int(th["min_samples"])
    n = int(monitor["sample_size"])
    scope = monitor.get("scope") or {}
    f = to_filter(scope)
    cur_start, cur_end, ref_start, ref_end = windows(monitor, now)
    cur, cur_total = store.drift.sample_records(project_id, f, cur_start, cur_end, n, span_kind=scope.get("span_kind"),
                                                span_name=scope.get("span_name"), seed=1)
    ref_kind = monitor["reference"]["kind"]
    if ref_kind == "dataset":
        ref = store.drift.dataset_records(project_id, monitor["reference"]["dataset"], n, seed=2)
        ref_total = len(ref)
    else:
        assert ref_start is not None and ref_end is not None
        ref, ref_total = store.drift.sample_records(project_id, f, ref_start, ref_end, n,
                                                    span_kind=scope.get("span_kind"),
                                                    span_name=scope.get("span_name"), seed=2)
    result: dict[str, Any] = {
        "computed_at": now, "window_start": cur_start, "window_end": cur_end, "reference_start": ref_start,
        "reference_end": ref_end, "reference_n": len(ref), "current_n": len(cur), "status": "ok",
    }
    details: dict[str, Any] = {"reference": monitor["reference"], "matched": {"reference": ref_total,
                                                                               "current": cur_total},
                               "features": [], "skipped": [], "new_topics": {}}
    stats: dict[str, float] = {"reference_n": float(len(ref)), "current_n": float(len(cur))}
    if len(cur) < min_n or len(ref) < min_n:
        result.update(status="insufficient", drifted=False, statistics=stats, details=details,
                      error=f"too few samples: {len(ref)} reference, {len(cur)} current "
                            f"(min_samples {min_n}); widen the windows or lower thresholds.min_samples",
                      duration_ms=(time.perf_counter() - t0) * 1000)
        return result

    cache = cache or default_cache()
    texts = {side: (_texts(ref, side), _texts(cur, side)) for side in ("input", "output")}
    emb: dict[str, Any] = {}

    def embeddings(side: str) -> Any:
        if side not in emb:
            r, c = texts[side]
            emb[side] = (cache.embed(r), cache.embed(c))
        return emb[side]

    outcomes: list[Outcome] = []
    for feat in monitor["features"]:
        if feat.startswith("score:"):
            continue
        side, kind = feat.split("_", 1)
        r_txt, c_txt = texts[side]
        if len(r_txt) < min_n or len(c_txt) < min_n:
            details["skipped"].append({"feature": feat, "reason": f"{len(r_txt)} reference and {len(c_txt)} "
                                                                  f"current texts; min_samples is {min_n}"})
            continue
        if kind == "embedding":
            r_e, c_e = embeddings(side)
            o = embedding_drift(feat, r_e, c_e, alpha=alpha, min_auc=float(th["embedding_auc"]))
            stats[f"{feat}_auc"] = o.statistic
        elif kind == "length":
            o = numeric_drift(feat, lengths(r_txt), lengths(c_txt), alpha=alpha)
            stats[f"{feat}_wasserstein"] = o.statistic
        elif kind == "language":
            o = categorical_drift(feat, languages(r_txt), languages(c_txt), alpha=alpha)
            stats[f"{feat}_psi"] = o.statistic
        else:  # topics
            r_e, c_e = embeddings(side)
            found = find_topics(r_e, c_e, r_txt, c_txt, min_share=float(th["new_topic_min_share"]))
            o = categorical_drift(feat, found.reference_labels, found.current_labels, alpha=alpha)
            o.extra["novel_share"] = round(found.novel_share, 4)
            o.extra["new_topics"] = len(found.new_topics)
            o.drifted = o.drifted or bool(found.new_topics)  # a new topic is drift on its own
            stats[f"{feat}_psi"] = o.statistic
            stats[f"{side}_new_topics"] = float(len(found.new_topics))
            details["new_topics"][side] = found.new_topics
        stats[f"{feat}_p_value"] = o.p_value
        stats[f"{feat}_drifted"] = 1.0 if o.drifted else 0.0
        outcomes.append(o)

    score_names = [x[6:] for x in monitor["features"] if x.startswith("score:")]
    if score_names:
        if ref_kind == "dataset":
            details["skipped"].extend({"feature": f"score:{s}", "reason": "a dataset reference has no scores"}
                                      for s in score_names)
        else:
            r_sc = store.drift.score_values(project_id, score_names, [x["trace_id"] for x in ref if x.get("trace_id")])
            c_sc = store.drift.score_values(project_id, score_names, [x["trace_id"] for x in cur if x.get("trace_id")])
            for s in score_names:
                feat = f"score:{s}"
                if len(r_sc[s]) < min_n or len(c_sc[s]) < min_n:
                    details["skipped"].append({"feature": feat, "reason": f"{len(r_sc[s])} reference and "
                                                                          f"{len(c_sc[s])} current scores; "
                                                                          f"min_samples is {min_n}"})
                    continue
                o = numeric_drift(feat, r_sc[s], c_sc[s], alpha=alpha)
                stats[f"{feat}_wasserstein"] = o.statistic
                stats[f"{feat}_mean_delta"] = float(o.extra["current_mean"]) - float(o.extra["reference_mean"])
                stats[f"{feat}_p_value"] = o.p_value
                stats[f"{feat}_drifted"] = 1.0 if o.drifted else 0.0
                outcomes.append(o)

    drifted = [o.feature for o in outcomes if o.drifted]
    stats["drifted"] = 1.0 if drifted else 0.0
    stats["drifted_features"] = float(len(drifted))
    details["features"] = [o.as_dict() for o in outcomes]
    result.update(drifted=bool(drifted), statistics=stats, details=details,
                  duration_ms=(time.perf_counter() - t0) * 1000)
    return result
