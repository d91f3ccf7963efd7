"""Training data from production: traces (or spans) selected by a filter and a score condition
become SFT, DPO or KTO records, deduplicated, optionally redacted, measured in tokens, split
train/validation, and saved as one versioned Podium dataset with the export's lineage.

Pipeline: read candidates (trace filter; optionally the spans of a kind/name) → input as chat
messages, output as the assistant's text → the selection rule per format → exact dedup on the
normalised input+output → redaction (the ``pii`` and ``secrets`` guardrail scanners) → max
token length → deterministic split by a hash of the item id. Every dropped candidate is
counted under its reason.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from podium.core.datasets import DatasetItem
from podium.core.tokens import count_tokens
from podium.errors import BadRequest, Conflict, NotFound
from podium.store import Store
from podium.store.repos.scores import ScoreFilter
from podium.store.repos.traces import TraceFilter
from podium.tune.formats import (
    FORMATS,
    Format,
    Message,
    assistant_text,
    normalise,
    prompt_messages,
    record_from_item,
)

__all__ = ["Condition", "ExportResult", "ExportSpec", "export", "parse_condition", "write_jsonl"]

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, "!=": operator.ne, "==": operator.eq, "=": operator.eq,
    ">": operator.gt, "<": operator.lt,
}
_COND = re.compile(r"^\s*(?:score:)?([A-Za-z0-9_.\-/ ]{1,256}?)\s*(>=|<=|!=|==|=|>|<)\s*(.{1,256}?)\s*$")
SAMPLE_IDS = 5
PAGE = 500


@dataclass(frozen=True)
class Condition:
    """``score OP value``: the score ``score`` of a trace compared with ``value`` (a number, a
    boolean or a categorical label)."""

    score: str
    op: str
    value: float | str

    def test(self, v: float | str) -> bool:
        if isinstance(self.value, float) != isinstance(v, float):
            return False
        return bool(_OPS[self.op](v, self.value))

    def __str__(self) -> str:
        return f"{self.score}{self.op}{self.value:g}" if isinstance(self.value, float) else \
            f"{self.score}{self.op}{self.value}"


def parse_condition(text: str) -> Condition:
    """``"user-feedback=1"``, ``"score:polite >= 0.8"``, ``"verdict=good"``."""
    m = _COND.match(text)
    if not m:
        raise BadRequest(f"cannot read the condition {text!r}; write SCORE OP VALUE, e.g. "
                         "'user-feedback=1' or 'score:polite>=0.8' (OP: = != > >= < <=)",
                         details=[{"field": "where"}])
    name, op, raw = m.group(1).strip(), m.group(2), m.group(3).strip()
    value: float | str
    if raw.lower() in ("true", "false"):
        value = 1.0 if raw.lower() == "true" else 0.0
    else:
        try:
            value = float(raw)
        except ValueError:
            value = raw
        if isinstance(value, float) and not math.isfinite(value):
            raise BadRequest(f"the condition's value {raw!r} is not a finite number", details=[{"field": "where"}])
    if isinstance(value, str) and op not in ("=", "==", "!="):
        raise BadRequest(f"{op} needs a number; a label compares only with = or !=", details=[{"field": "where"}])
    return Condition(name, "==" if op == "=" else op, value)


@dataclass
class ExportSpec:
    """What to export. ``where``: the condition SFT keeps and KTO calls desirable (SFT without
    one keeps everything). ``rank_by``: the score DPO ranks responses to the same input by
    (chosen = best, rejected = worst, at least ``min_margin`` apart). ``span_kind`` /
    ``span_name``: export matching spans instead of whole traces."""

    format: Format
    filter: TraceFilter = field(default_factory=TraceFilter)
    where: str | None = None
    rank_by: str | None = None
    min_margin: float = 0.0
    span_kind: str | None = None
    span_name: str | None = None
    dedup: bool = True
    redact: bool = False
    max_tokens: int | None = None
    validation_ratio: float = 0.1
    max_traces: int = 10_000


@dataclass
class ExportResult:
    format: Format
    records: list[dict[str, Any]]
    items: list[DatasetItem]
    dropped: dict[str, int]
    dropped_samples: dict[str, list[str]]
    stats: dict[str, dict[str, int]]
    splits: dict[str, int]
    trace_ids: list[str]
    truncated: bool
    source: dict[str, Any]
    dataset: dict[str, Any] | None = None

    def summary(self, sample: int = 3) -> dict[str, Any]:
        return {"format": self.format, "records": len(self.records), "splits": self.splits,
                "dropped": self.dropped, "dropped_samples": self.dropped_samples, "token_stats": self.stats,
                "traces": len(self.trace_ids), "truncated": self.truncated, "lineage": self.source,
                "dataset": self.dataset, "sample": self.records[:sample]}


@dataclass
class _Cand:
    trace_id: str
    span_id: str | None
    prompt: list[Message]
    output: str
    scores: dict[str, float | str]

    @property
    def key(self) -> str:
        return self.trace_id if self.span_id is None else f"{self.trace_id}/{self.span_id}"


class _Drops:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.samples: dict[str, list[str]] = {}

    def add(self, reason: str, key: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        s = self.samples.setdefault(reason, [])
        if len(s) < SAMPLE_IDS:
            s.append(key)


def _check(spec: ExportSpec) -> Condition | None:
    if spec.format not in FORMATS:
        raise BadRequest(f"format is one of {', '.join(FORMATS)}", details=[{"field": "format"}])
    if not 0.0 <= spec.validation_ratio < 1.0:
        raise BadRequest("validation_ratio is in [0, 1)", details=[{"field": "validation_ratio"}])
    if spec.max_tokens is not None and spec.max_tokens < 1:
        raise BadRequest("max_tokens is at least 1", details=[{"field": "max_tokens"}])
    cond = parse_condition(spec.where) if spec.where else None
    if spec.format == "kto" and cond is None:
        raise BadRequest("kto needs where: the condition that makes a response desirable, e.g. 'user-feedback=1'",
                         details=[{"field": "where"}])
    if spec.format == "dpo":
        if not spec.rank_by:
            raise BadRequest("dpo needs rank_by: the score that ranks responses to the same input",
                             details=[{"field": "rank_by"}])
        if spec.min_margin < 0:
            raise BadRequest("min_margin is at least 0", details=[{"field": "min_margin"}])
    return cond


def _scores(store: Store, project_id: str, names: Iterable[str]) -> dict[tuple[str, str | None], dict[str, Any]]:
    """``{(trace_id, span_id): {name: value}}``: numeric/boolean scores averaged, labels the latest."""
    sums: dict[tuple[str, str | None], dict[str, list[float]]] = {}
    labels: dict[tuple[str, str | None], dict[str, str]] = {}
    for name in names:
        cursor: str | None = None
        while True:
            page = store.scores.list_scores(project_id, ScoreFilter(name=name), limit=PAGE, cursor=cursor)
            for s in page.items:  # newest first
                if not s.get("trace_id"):
                    continue
                k = (s["trace_id"], s.get("span_id"))
                v = s["value"]
                if isinstance(v, bool | int | float) and v is not None:
                    sums.setdefault(k, {}).setdefault(name, []).append(float(v))
                elif isinstance(v, str):
                    labels.setdefault(k, {}).setdefault(name, v)
            cursor = page.next_cursor
            if not cursor:
                break
    out: dict[tuple[str, str | None], dict[str, Any]] = {}
    for k, d in sums.items():
        out.setdefault(k, {}).update({n: sum(vs) / len(vs) for n, vs in d.items()})
    for k, ls in labels.items():
        for n, lv in ls.items():
            out.setdefault(k, {}).setdefault(n, lv)
    return out


def _candidates(store: Store, project_id: str, spec: ExportSpec, score_names: list[str],
                drops: _Drops) -> tuple[list[_Cand], list[str], bool]:
    traces: list[dict[str, Any]] = []
    cursor: str | None = None
    truncated = False
    while True:
        page = store.traces.list_traces(project_id, spec.filter, sort="start_time", order="asc",
                                        limit=PAGE, cursor=cursor, include_io=True)
        traces.extend(page.items)
        cursor = page.next_cursor
        if len(traces) >= spec.max_traces:
            truncated = bool(cursor) or len(traces) > spec.max_traces
            traces = traces[:spec.max_traces]
            break
        if not cursor:
            break
    scores = _scores(store, project_id, score_names)
    out: list[_Cand] = []
    for tr in traces:
        rows: list[tuple[str | None, Any, Any]]
        if spec.span_kind or spec.span_name:
            spans = store.traces.list_spans(project_id, tr["id"], limit=10_000).items
            rows = [(s["id"], s["input"], s["output"]) for s in spans
                    if (not spec.span_kind or s["kind"] == spec.span_kind)
                    and (not spec.span_name or s["name"] == spec.span_name)]
        else:
            rows = [(None, tr["input"], tr["output"])]
        for span_id, inp, outp in rows:
            key = tr["id"] if span_id is None else f"{tr['id']}/{span_id}"
            prompt = prompt_messages(inp)
            if prompt is None:
                drops.add("no_input", key)
                continue
            text = assistant_text(outp)
            if text is None:
                drops.add("no_output", key)
                continue
            sc = {**scores.get((tr["id"], None), {}), **(scores.get((tr["id"], span_id), {}) if span_id else {})}
            out.append(_Cand(tr["id"], span_id, prompt, text, sc))
    return out, [t["id"] for t in traces], truncated


def _redactor() -> Callable[[str], str]:
    from podium.guardrails.base import Context
    from podium.guardrails.registry import build

    scanners = [build("pii", {}), build("secrets", {})]

    def redact(text: str) -> str:
        for sc in scanners:
            res = sc.scan(text, Context(kind="output"))
            if res.replacement is not None:
                text = res.replacement
                continue
            spans = sorted(res.findings, key=lambda f: f.start)
            parts, pos = [], 0
            for f in spans:
                if f.start < pos:
                    continue
                parts.append(text[pos:f.start])
                parts.append(f"<{f.label.upper()}>")
                pos = f.end
            parts.append(text[pos:])
            text = "".join(parts)
        return text

    return redact


def _id(fmt: str, *keys: str) -> str:
    return f"{fmt}-" + hashlib.sha256("\n".join(keys).encode()).hexdigest()[:24]


def _split(item_id: str, ratio: float) -> str:
    h = int.from_bytes(hashlib.sha256(f"split:{item_id}".encode()).digest()[:8], "big") / 2**64
    return "validation" if h < ratio else "train"


def _assistant(text: str) -> list[Message]:
    return [{"role": "assistant", "content": text}]


def _stats(values: dict[str, list[int]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for name, vs in values.items():
        if not vs:
            continue
        s = sorted(vs)

        def q(p: float, s: list[int] = s) -> int:
            return s[min(len(s) - 1, int(p * (len(s) - 1) + 0.5))]

        out[name] = {"count": len(s), "min": s[0], "p50": q(0.5), "p95": q(0.95), "max": s[-1]}
    return out


def _digest(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def export(store: Store, project_id: str, spec: ExportSpec, *, dataset: str | None = None,
           dry_run: bool = False, actor: str | None = None) -> ExportResult:
    """Select, convert and (unless ``dry_run`` or no ``dataset``) save the records as the items
    of ``dataset`` (made when missing; a dataset made otherwise is refused). The items replace
    the dataset's current ones; exporting again with nothing changed makes no new version."""
    cond = _check(spec)
    names = sorted({n for n in ((cond.score if cond else None), spec.rank_by) if n})
    drops = _Drops()
    cands, trace_ids, truncated = _candidates(store, project_id, spec, names, drops)
    redact = _redactor() if spec.redact else None

    seen: set[str] = set()
    kept: list[_Cand] = []
    for c in cands:
        if spec.dedup:
            k = normalise(c.prompt) + "\x00" + normalise(c.output)
            if k in seen:
                drops.add("duplicate", c.key)
                continue
            seen.add(k)
        kept.append(c)

    # (item id, input, expected, labels, metadata, trace id)
    built: list[tuple[str, list[Message], Any, dict[str, Any], dict[str, Any], str]] = []
    if spec.format in ("sft", "kto"):
        for c in kept:
            label: bool | None = None
            if cond is not None:
                v = c.scores.get(cond.score)
                if v is None:
                    drops.add("no_score", c.key)
                    continue
                label = cond.test(v)
                if spec.format == "sft" and not label:
                    drops.add("failed_condition", c.key)
                    continue
            meta: dict[str, Any] = {"format": spec.format, "trace_id": c.trace_id, "span_id": c.span_id,
                    "scores": dict(sorted(c.scores.items()))}
            labels = {"label": label} if spec.format == "kto" else {}
            built.append((_id(spec.format, c.key), c.prompt, c.output, labels, meta, c.trace_id))
    else:
        assert spec.rank_by is not None
        groups: dict[str, list[_Cand]] = {}
        for c in kept:
            v = c.scores.get(spec.rank_by)
            if not isinstance(v, float):
                drops.add("no_score", c.key)
                continue
            groups.setdefault(normalise(c.prompt), []).append(c)
        for group in groups.values():
            if len({normalise(c.output) for c in group}) < 2:
                for c in group:
                    drops.add("no_pair", c.key)
                continue
            ranked = sorted(group, key=lambda c: (-float(c.scores[spec.rank_by or ""]), c.key))
            best, worst = ranked[0], ranked[-1]
            margin = float(best.scores[spec.rank_by]) - float(worst.scores[spec.rank_by])
            if margin <= 0 or margin < spec.min_margin:
                for c in group:
                    drops.add("small_margin", c.key)
                continue
            for c in ranked[1:-1]:
                drops.add("not_extreme", c.key)
            meta = {"format": "dpo", "trace_id": best.trace_id, "span_id": best.span_id,
                    "rejected_trace_id": worst.trace_id, "rejected_span_id": worst.span_id,
                    "margin": margin}
            built.append((_id("dpo", best.key, worst.key), best.prompt,
                          {"chosen": _assistant(best.output), "rejected": _assistant(worst.output)},
                          {}, meta, best.trace_id))

    items: list[DatasetItem] = []
    records: list[dict[str, Any]] = []
    tokens: dict[str, list[int]] = {}
    for item_id, prompt, expected, labels, meta, trace_id in built:
        if redact is not None:
            try:
                prompt = [{**m, "content": redact(m["content"])} for m in prompt]
                if isinstance(expected, str):
                    expected = redact(expected)
                else:
                    expected = {k: [{**m, "content": redact(m["content"])} for m in v] for k, v in expected.items()}
            except Exception:  # a scanner that fails must not let the text through unredacted
                drops.add("redaction_failed", trace_id)
                continue
        counts = {"prompt": count_tokens(prompt)}
        if isinstance(expected, str):
            counts["completion"] = count_tokens(expected)
            total = counts["prompt"] + counts["completion"]
        else:
            counts["chosen"] = count_tokens(expected["chosen"])
            counts["rejected"] = count_tokens(expected["rejected"])
            total = counts["prompt"] + max(counts["chosen"], counts["rejected"])
        counts["total"] = total
        if spec.max_tokens is not None and total > spec.max_tokens:
            drops.add("too_long", trace_id)
            continue
        for k, n in counts.items():
            tokens.setdefault(k, []).append(n)
        item = DatasetItem(id=item_id, input=prompt, expected=expected, metadata=meta,
                           split=_split(item_id, spec.validation_ratio), labels=labels, source_trace_id=trace_id)
        items.append(item)
        records.append(record_from_item(item.to_dict()))

    splits = {"train": sum(1 for i in items if i.split == "train"),
              "validation": sum(1 for i in items if i.split == "validation")}
    used = sorted({i.source_trace_id for i in items if i.source_trace_id}
                  | {str(i.metadata.get("rejected_trace_id")) for i in items if i.metadata.get("rejected_trace_id")})
    f = {k: v for k, v in asdict(spec.filter).items() if v not in (None, [])}
    source = {
        "kind": "export", "format": spec.format,
        "filter": json.loads(json.dumps(f, default=str)),
        "selection": {"where": str(cond) if cond else None, "rank_by": spec.rank_by, "min_margin": spec.min_margin,
                      "span_kind": spec.span_kind, "span_name": spec.span_name},
        "params": {"dedup": spec.dedup, "redact": spec.redact, "max_tokens": spec.max_tokens,
                   "validation_ratio": spec.validation_ratio, "max_traces": spec.max_traces},
        "trace_ids": {"count": len(used), "digest": _digest(used)},
        "created_by": actor,
    }
    result = ExportResult(spec.format, records, items, drops.counts, drops.samples, _stats(tokens), splits,
                          trace_ids, truncated, source)
    if dry_run or dataset is None:
        return result
    if not items:
        raise BadRequest("the export selected no records; nothing was saved (see details for what was dropped "
                         "and why: loosen the filter or the condition)",
                         details=[{"field": "where", "dropped": drops.counts, "traces": len(trace_ids)}])
    _check_target(store, project_id, dataset)
    result.dataset = store.evals.change_items(
        project_id, dataset, upsert=items, replace_all=True, create=True, source=source, actor=actor,
        message=f"{spec.format} export of {len(items)} records from {len(used)} traces",
        description=f"{spec.format.upper()} training data exported from production traces")
    return result


def _check_target(store: Store, project_id: str, dataset: str) -> None:
    try:
        versions = store.evals.list_versions(project_id, dataset)
    except NotFound:  # no such dataset: it will be made
        return
    if versions and not any((v.get("source") or {}).get("kind") == "export" for v in versions):
        raise Conflict(f"dataset {dataset!r} exists and was not made by a training-data export; "
                       "export into a new dataset name", details=[{"field": "dataset"}])


def write_jsonl(records_by_split: dict[str, list[dict[str, Any]]], out_dir: Path) -> list[Path]:
    """``train.jsonl`` and ``validation.jsonl`` (one record a line) under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, recs in records_by_split.items():
        p = out_dir / f"{split}.jsonl"
        p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs))
        paths.append(p)
    return paths
