"""What an online evaluation rule may say, and the checks that turn a bad one into a 400.

The REST API, the UI form and ``podium evaluators create rule.yaml`` all go through
:class:`RuleIn` / :class:`RulePatch` and :func:`check_rule`, which also builds the scorers and
parses the mapping once, so a rule that is stored can be evaluated.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from podium.errors import BadRequest, ValidationFailed
from podium.monitor.online.mapping import check_mapping
from podium.monitor.online.scorers import build_scorers

__all__ = ["FilterIn", "RuleIn", "RulePatch", "ScorerIn", "TargetIn", "check_rule", "parse_rule"]

_Name = Annotated[str, Field(min_length=1, max_length=256)]
_Short = Annotated[str, Field(min_length=1, max_length=256)]
_Finite = Annotated[float, Field(allow_inf_nan=False, ge=-1e300, le=1e300)]


class TargetIn(BaseModel):
    """``trace`` (one evaluation per trace) or ``span`` (one per span whose name/kind match)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["trace", "span"] = "trace"
    name: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    kind: Annotated[str, Field(min_length=1, max_length=16)] | None = None


class FilterIn(BaseModel):
    """The trace filters (the traces list's: ``podium.store.repos.traces.TraceFilter``)."""

    model_config = ConfigDict(extra="forbid")
    start_after: datetime | None = None
    start_before: datetime | None = None
    name: Annotated[str, Field(max_length=1000)] | None = None
    q: Annotated[str, Field(max_length=1000)] | None = None
    user_id: _Short | None = None
    session_id: _Short | None = None
    tags: Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(max_length=20)] = []
    status: Literal["ok", "error"] | None = None
    model: _Short | None = None
    environment: _Short | None = None
    release: _Short | None = None
    min_latency_ms: _Finite | None = None
    max_latency_ms: _Finite | None = None
    min_cost: _Finite | None = None
    max_cost: _Finite | None = None
    score_name: _Short | None = None
    min_score: _Finite | None = None
    max_score: _Finite | None = None


class ScorerIn(BaseModel):
    """One scorer: ``type`` (a registered scorer or judge) or ``guardrail`` (a scanner)."""

    model_config = ConfigDict(extra="forbid")
    type: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    guardrail: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    params: Annotated[dict[str, Any], Field(max_length=50)] = {}
    model: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    name: _Name | None = None
    scan: Literal["input", "output"] = "output"


_Mapping = Annotated[dict[Annotated[str, Field(max_length=32)],
                          Annotated[str, Field(max_length=500)] | None], Field(max_length=10)]


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: _Name
    enabled: bool = True
    target: TargetIn = TargetIn()
    filter: FilterIn = FilterIn()
    sample_rate: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] = 1.0
    scorers: Annotated[list[ScorerIn], Field(min_length=1, max_length=20)]
    mapping: _Mapping = {}
    delay_s: Annotated[float, Field(ge=0.0, le=86_400.0, allow_inf_nan=False)] = 10.0


class RulePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: _Name | None = None
    enabled: bool | None = None
    target: TargetIn | None = None
    filter: FilterIn | None = None
    sample_rate: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] | None = None
    scorers: Annotated[list[ScorerIn], Field(min_length=1, max_length=20)] | None = None
    mapping: _Mapping | None = None
    delay_s: Annotated[float, Field(ge=0.0, le=86_400.0, allow_inf_nan=False)] | None = None


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=False)


def check_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A whole rule (the stored fields) made consistent; raises BadRequest with a fix."""
    target = rule.get("target") or {"type": "trace"}
    if target.get("type") == "trace" and (target.get("name") or target.get("kind")):
        raise BadRequest("target: name/kind select spans; set target.type to span, or drop them",
                         details=[{"field": "target", "message": "name/kind need type span"}])
    for i, s in enumerate(rule.get("scorers") or []):
        if bool(s.get("type")) == bool(s.get("guardrail")):
            raise BadRequest(f"scorers[{i}]: give exactly one of `type` (a scorer or judge, e.g. icontains, "
                             "llm-rubric) or `guardrail` (a scanner, e.g. pii)",
                             details=[{"field": f"scorers.{i}", "message": "type or guardrail"}])
    f = rule.get("filter") or {}
    for lo, hi in (("min_latency_ms", "max_latency_ms"), ("min_cost", "max_cost"), ("min_score", "max_score"),
                   ("start_after", "start_before")):
        if f.get(lo) is not None and f.get(hi) is not None and f[lo] > f[hi]:
            raise BadRequest(f"filter.{lo} is above filter.{hi}; swap them",
                             details=[{"field": f"filter.{lo}", "message": f"above {hi}"}])
    check_mapping(rule.get("mapping"), target=target.get("type", "trace"))
    build_scorers(rule.get("scorers") or [])
    rule["filter"] = {k: v for k, v in f.items() if v not in (None, [])}
    rule["mapping"] = rule.get("mapping") or {}
    return rule


def parse_rule(raw: Any) -> dict[str, Any]:
    """A rule from a mapping (a YAML/JSON file, the UI form): validated, as the repo stores it."""
    try:
        model = RuleIn.model_validate(raw)
    except ValidationError as e:
        details = [{"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]} for err in e.errors()]
        first = details[0] if details else {"field": "", "message": "invalid"}
        raise ValidationFailed(f"rule: {first['field']}: {first['message']}", details=details) from None
    return check_rule(_dump(model))
