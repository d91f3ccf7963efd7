"""The schema, as SQLAlchemy Core tables (repos issue Core statements: bulk upserts are the hot path).

Every table but ``project`` carries ``project_id`` first in its primary key, so every
query is scoped by project and cannot reach another project's rows by id.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    text,
)

from podium.store.types import JSONType, UtcDateTime

__all__ = [
    "alert_event",
    "alert_rule",
    "annotation",
    "annotation_item",
    "annotation_queue",
    "api_key",
    "app_user",
    "audit_event",
    "audit_head",
    "canary",
    "canary_event",
    "collection",
    "collection_chunk",
    "collection_document",
    "collection_version",
    "dashboard",
    "dashboard_chart",
    "dataset",
    "dataset_item",
    "dataset_version",
    "drift_monitor",
    "drift_result",
    "eval_sweep",
    "eval_sweep_trial",
    "experiment",
    "experiment_item",
    "experiment_label",
    "gateway_model",
    "gateway_spend",
    "invitation",
    "metadata",
    "model_alias",
    "model_alias_event",
    "model_price",
    "model_version",
    "monitor_job",
    "online_eval_rule",
    "online_eval_stat",
    "organisation",
    "organisation_project",
    "project",
    "project_member",
    "prompt",
    "prompt_label",
    "prompt_label_event",
    "prompt_settings",
    "prompt_version",
    "redaction_rules",
    "registered_model",
    "retention_policy",
    "retention_run",
    "score",
    "score_config",
    "span",
    "subject_request",
    "trace",
    "trace_tag",
    "training_run",
    "training_step",
    "training_sweep",
    "user_session",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Money = Numeric(20, 10)

project = Table(
    "project",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    # Gateway limits for the whole project: {"rpm", "tpm", "max_parallel", "budget_daily", ...}.
    Column("gateway_limits", JSONType),
    # Guardrail policies: {"default": <policy name | "off" | null>, "policies": {name: spec}}.
    Column("guardrails", JSONType),
)

api_key = Table(
    "api_key",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), nullable=False),
    Column("public_key", String(64), nullable=False, unique=True),
    # sha256 of the secret: secrets are 32 random bytes, so a slow KDF adds nothing but latency.
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("secret_hint", String(16), nullable=False),
    Column("role", String(16), nullable=False),
    Column("note", String(500)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
    # Gateway (virtual key) limits and the model aliases the key may call (None: all).
    Column("limits", JSONType),
    Column("models", JSONType),
    # The guardrail policy this key's gateway calls run under ("off": none; None: the project's).
    Column("guardrails", String(128)),
)

trace = Table(
    "trace",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(128), primary_key=True),
    Column("name", String(1000)),
    Column("name_explicit", Boolean, nullable=False, default=False),
    Column("user_id", String(256)),
    Column("session_id", String(256)),
    Column("release", String(256)),
    Column("environment", String(256)),
    Column("metadata", JSONType),
    Column("input", JSONType),
    Column("output", JSONType),
    Column("input_explicit", Boolean, nullable=False, default=False),
    Column("output_explicit", Boolean, nullable=False, default=False),
    Column("start_time", UtcDateTime, nullable=False),
    Column("end_time", UtcDateTime),
    Column("latency_ms", Float, nullable=False, default=0.0),
    Column("status", String(8), nullable=False, default="ok"),
    Column("span_count", Integer, nullable=False, default=0),
    Column("error_count", Integer, nullable=False, default=0),
    Column("input_tokens", BigInteger, nullable=False, default=0),
    Column("output_tokens", BigInteger, nullable=False, default=0),
    Column("total_tokens", BigInteger, nullable=False, default=0),
    Column("total_cost", Money, nullable=False, default=0),
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "project_id", "start_time"),
    Index(None, "project_id", "total_cost"),
    Index(None, "project_id", "latency_ms"),
    # Partial (0024): a trace without a user or session (most gateway calls) writes no entry; every
    # reader names one (``user_id = ?``) or asks ``IS NOT NULL``, which implies the condition.
    Index(None, "project_id", "user_id", "start_time", sqlite_where=text("user_id IS NOT NULL"),
          postgresql_where=text("user_id IS NOT NULL")),
    Index(None, "project_id", "session_id", "start_time", sqlite_where=text("session_id IS NOT NULL"),
          postgresql_where=text("session_id IS NOT NULL")),
)

trace_tag = Table(
    "trace_tag",
    metadata,
    Column("project_id", String(36), primary_key=True),
    Column("trace_id", String(128), primary_key=True),
    Column("tag", String(200), primary_key=True),
    Index(None, "project_id", "tag"),
)

span = Table(
    "span",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("trace_id", String(128), primary_key=True),
    Column("id", String(128), primary_key=True),
    Column("parent_id", String(128)),
    Column("name", String(1000), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("start_time", UtcDateTime, nullable=False),
    Column("end_time", UtcDateTime),
    Column("latency_ms", Float),
    Column("status", String(8), nullable=False, default="unset"),
    Column("status_message", Text),
    Column("model", String(256)),
    Column("provider", String(256)),
    Column("model_parameters", JSONType),
    Column("input", JSONType),
    Column("output", JSONType),
    Column("metadata", JSONType),
    Column("attributes", JSONType),
    Column("input_tokens", BigInteger),
    Column("output_tokens", BigInteger),
    Column("total_tokens", BigInteger),
    Column("usage_details", JSONType),
    Column("usage_estimated", Boolean),
    # Whether this span's usage and cost count toward totals (docs/data-model.md, "Usage is
    # counted once"): NULL when it carries none, false for wrappers of a call that reports its
    # own usage and failed calls with estimated usage. Kept by the ingest writer.
    Column("usage_counted", Boolean),
    Column("cost_input", Money),
    Column("cost_output", Money),
    Column("cost_total", Money),
    Column("completion_start_time", UtcDateTime),
    Column("prompt_name", String(256)),
    Column("prompt_version", Integer),
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "project_id", "trace_id", "start_time"),
    Index(None, "project_id", "trace_id", "parent_id"),
    Index(None, "project_id", "model", "trace_id"),
    # The lazy tree's first request (roots only) without reading a big trace's other spans.
    Index(
        "ix_span_roots",
        "project_id",
        "trace_id",
        "start_time",
        sqlite_where=text("parent_id IS NULL"),
        postgresql_where=text("parent_id IS NULL"),
    ),
)

score = Table(
    "score",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(128), primary_key=True),
    Column("trace_id", String(128)),
    Column("span_id", String(128)),
    Column("session_id", String(256)),
    Column("name", String(256), nullable=False),
    Column("data_type", String(16), nullable=False),
    Column("value", Float),
    Column("string_value", Text),
    Column("source", String(16), nullable=False),
    Column("comment", Text),
    Column("metadata", JSONType),
    Column("timestamp", UtcDateTime, nullable=False),
    Index(None, "project_id", "trace_id"),
    Index(None, "project_id", "name", "timestamp"),
    Index(None, "project_id", "session_id"),
)

# Typed score definitions (docs/data-model.md, "Score configs"): a score that names one (``config_id``)
# or whose name matches a non-archived one is validated against it at ingestion. Never deleted:
# ``archived`` stops name matching and keeps old scores readable.
score_config = Table(
    "score_config",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("data_type", String(16), nullable=False),  # numeric | boolean | categorical
    Column("min_value", Float),
    Column("max_value", Float),
    Column("categories", JSONType),  # [{"label": str, "value": float}] (categorical only)
    Column("description", Text),
    Column("archived", Boolean, nullable=False, default=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "project_id", "name", unique=True),
)

model_price = Table(
    "model_price",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("model", String(256), primary_key=True),
    Column("input_per_million", Money, nullable=False),
    Column("output_per_million", Money, nullable=False),
    Column("cached_input_per_million", Money),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Model aliases declared through the API (the config file declares the others). ``spec`` holds
# the deployments; provider secrets inside it are Fernet-encrypted (``api_key_encrypted``).
gateway_model = Table(
    "gateway_model",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(256), primary_key=True),
    Column("spec", JSONType, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Spend per limit scope and period ("d:2026-11-23", "m:2026-11", "total"), flushed from the
# gateway's in-memory counters every few seconds so budgets survive a restart.
gateway_spend = Table(
    "gateway_spend",
    metadata,
    Column("scope_kind", String(16), primary_key=True),
    Column("scope_id", String(64), primary_key=True),
    Column("period", String(16), primary_key=True),
    Column("amount", Money, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)


# --- prompt registry (podium/store/repos/prompts.py) ----------------------------------------------
# A prompt is named per project ("/" makes folders); its versions are immutable and numbered
# from 1 (the primary key makes concurrent creators retry instead of sharing a number);
# labels point at one version, or split traffic between several (A/B); every label change
# is an event with a per-(prompt, label) sequence number, the audit trail that rollback reads.

prompt = Table(
    "prompt",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(256), primary_key=True),
    Column("type", String(8), nullable=False),
    Column("tags", JSONType),
    Column("latest_version", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

prompt_version = Table(
    "prompt_version",
    metadata,
    Column("project_id", String(36), primary_key=True),
    Column("name", String(256), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("type", String(8), nullable=False),
    Column("template_format", String(16), nullable=False),
    Column("template", JSONType, nullable=False),
    Column("config", JSONType),
    Column("variables", JSONType),
    Column("placeholders", JSONType),
    Column("commit_message", Text),
    Column("size_bytes", Integer, nullable=False),
    Column("created_by", String(64)),
    Column("created_at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(["project_id", "name"], ["prompt.project_id", "prompt.name"], ondelete="CASCADE"),
)

prompt_label = Table(
    "prompt_label",
    metadata,
    Column("project_id", String(36), primary_key=True),
    Column("name", String(256), primary_key=True),
    Column("label", String(64), primary_key=True),
    # [{"version": 3, "weight": 90.0}, {"version": 4, "weight": 10.0}]; one entry without a split.
    Column("targets", JSONType, nullable=False),
    Column("version", Integer, nullable=False),  # the heaviest target, for simple queries
    Column("updated_at", UtcDateTime, nullable=False),
    Column("updated_by", String(64)),
    ForeignKeyConstraint(["project_id", "name"], ["prompt.project_id", "prompt.name"], ondelete="CASCADE"),
)

prompt_label_event = Table(
    "prompt_label_event",
    metadata,
    Column("project_id", String(36), primary_key=True),
    Column("name", String(256), primary_key=True),
    Column("label", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("action", String(16), nullable=False),  # set | rollback | delete
    Column("from_targets", JSONType),
    Column("to_targets", JSONType),
    Column("from_version", Integer),
    Column("to_version", Integer),
    Column("actor", String(64)),
    Column("comment", Text),
    Column("created_at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(["project_id", "name"], ["prompt.project_id", "prompt.name"], ondelete="CASCADE"),
)

prompt_settings = Table(
    "prompt_settings",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("protected_labels", JSONType),  # labels only admin keys may move
    Column("updated_at", UtcDateTime, nullable=False),
)

# Per-version analytics read the spans linked to a prompt without scanning the others.
Index(
    "ix_span_prompt",
    span.c.project_id,
    span.c.prompt_name,
    span.c.prompt_version,
    sqlite_where=text("prompt_name IS NOT NULL"),
    postgresql_where=text("prompt_name IS NOT NULL"),
)


# --- evaluation (podium/store/repos/evals.py) ------------------------------------------------------
# A dataset's items are immutable rows valid for a range of versions: version N is every row with
# valid_from <= N < valid_to (valid_to NULL: still current). A change closes the changed rows
# (valid_to = N) and inserts their new content (valid_from = N), so every version stays readable
# and an experiment records the version it ran on. Experiments keep their own copy of each item's
# input and expected output, so they stay readable after the dataset changes or is deleted.

dataset = Table(
    "dataset",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("description", Text),
    Column("metadata", JSONType),
    Column("latest_version", Integer, nullable=False),
    Column("next_position", BigInteger, nullable=False, default=0),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

dataset_version = Table(
    "dataset_version",
    metadata,
    Column("project_id", String(36), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("item_count", Integer, nullable=False),
    Column("added", Integer, nullable=False, default=0),
    Column("updated", Integer, nullable=False, default=0),
    Column("removed", Integer, nullable=False, default=0),
    Column("message", Text),
    Column("source", JSONType),  # {"kind": "api"|"file"|"traces"|"sync", ...}
    Column("created_by", String(64)),
    Column("created_at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(["project_id", "name"], ["dataset.project_id", "dataset.name"], ondelete="CASCADE"),
)

dataset_item = Table(
    "dataset_item",
    metadata,
    Column("project_id", String(36), primary_key=True),
    Column("dataset", String(200), primary_key=True),
    Column("id", String(128), primary_key=True),
    Column("valid_from", Integer, primary_key=True),
    Column("valid_to", Integer),
    Column("position", BigInteger, nullable=False),  # insertion order, kept across updates
    Column("input", JSONType),
    Column("expected", JSONType),
    Column("context", JSONType),
    Column("metadata", JSONType),
    Column("labels", JSONType),
    Column("split", String(64)),
    Column("source_trace_id", String(128)),
    Column("content_hash", String(64), nullable=False),
    ForeignKeyConstraint(["project_id", "dataset"], ["dataset.project_id", "dataset.name"], ondelete="CASCADE"),
    Index(None, "project_id", "dataset", "valid_from", "position"),
    Index(None, "project_id", "dataset", "valid_to"),
)

experiment = Table(
    "experiment",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("status", String(16), nullable=False),  # running | completed | failed | interrupted
    Column("dataset_name", String(200)),
    Column("dataset_version", Integer),
    Column("run_group", String(64)),  # experiments started together (one suite run)
    Column("task", JSONType),
    Column("scorers", JSONType),
    Column("config", JSONType),
    Column("metadata", JSONType),
    Column("summary", JSONType),
    Column("item_count", Integer, nullable=False, default=0),
    Column("error_count", Integer, nullable=False, default=0),
    Column("created_by", String(64)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime),
    Index(None, "project_id", "created_at"),
    Index(None, "project_id", "name", "created_at"),
    Index(None, "project_id", "run_group"),
)

experiment_label = Table(
    "experiment_label",
    metadata,
    Column("project_id", String(36), primary_key=True),
    Column("experiment_id", String(64), primary_key=True),
    Column("label", String(64), primary_key=True),
    ForeignKeyConstraint(
        ["project_id", "experiment_id"], ["experiment.project_id", "experiment.id"], ondelete="CASCADE"
    ),
    Index(None, "project_id", "label"),
)

# One row per (dataset item, repetition). ``scores`` holds every scorer's result for the item
# ({name: {value, passed, explanation, metadata, error}}); the values are also rows of the
# ``score`` table (source "eval") attached to the item's trace, so traces show them.
experiment_item = Table(
    "experiment_item",
    metadata,
    Column("project_id", String(36), primary_key=True),
    Column("experiment_id", String(64), primary_key=True),
    Column("item_id", String(128), primary_key=True),
    Column("repetition", Integer, primary_key=True),
    Column("position", Integer, nullable=False, default=0),
    Column("input", JSONType),
    Column("expected", JSONType),
    Column("context", JSONType),
    Column("metadata", JSONType),
    Column("labels", JSONType),
    Column("output", JSONType),
    Column("error", Text),
    Column("error_type", String(64)),
    Column("trace_id", String(128)),
    Column("latency_ms", Float),
    Column("cost", Float),
    Column("usage", JSONType),
    Column("scores", JSONType),
    Column("passed", Boolean),
    Column("weighted_score", Float),
    Column("attempts", Integer, nullable=False, default=1),
    Column("created_at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(
        ["project_id", "experiment_id"], ["experiment.project_id", "experiment.id"], ondelete="CASCADE"
    ),
)

# --- monitoring (issue 14): each section is owned by one change; add its names to __all__ ---

# === job queue (0008_monitor_jobs) ===

# The worker's job queue (podium.store.repos.jobs, podium/monitor/queue/base.py). One row per
# pending job; acked jobs are deleted. ``available_at`` is when the row may be claimed next: for a
# ready job when it becomes due (nack backoff), for a leased one when its lease runs out (so an
# expired lease is claimable again by the same query). Dedup keys are unique per
# (project, kind) among the rows present (ready, leased or dead).
monitor_job = Table(
    "monitor_job",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("dedup_key", String(256)),
    Column("payload", JSONType),
    Column("status", String(16), nullable=False),  # ready | leased | dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("available_at", UtcDateTime, nullable=False),
    Column("leased_by", String(128)),
    Column("lease_until", UtcDateTime),
    Column("last_error", Text),
    Column("enqueued_at", UtcDateTime, nullable=False),
    Index(None, "project_id", "kind", "dedup_key", unique=True),
    # The claim: one kind, not dead, due, in available_at order (dead rows stay out of the index).
    Index(None, "kind", "available_at", sqlite_where=text("status <> 'dead'"),
          postgresql_where=text("status <> 'dead'")),
    Index(None, "id", unique=True),  # ack / nack by id
)

# === online evaluation (0009_online_evals) ===

# Online evaluation rules (docs/online-evaluation.md): a trace filter, a sample rate, scorers and a
# variable mapping; the producer walks traces by ``updated_at`` from the keyset cursor
# (``cursor_time``, ``cursor_id``) and enqueues the matching ones for the evaluator.
online_eval_rule = Table(
    "online_eval_rule",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("target", JSONType, nullable=False),  # {"type": "trace"} | {"type": "span", "name", "kind"}
    Column("filter", JSONType),  # the trace filters (TraceFilter's fields)
    Column("sample_rate", Float, nullable=False, default=1.0),
    Column("scorers", JSONType, nullable=False),
    Column("mapping", JSONType),  # scorer field -> path ("trace.input", "span[name=retrieve].output")
    Column("delay_s", Float, nullable=False, default=0.0),
    Column("cursor_time", UtcDateTime),
    Column("cursor_id", String(128)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "project_id", "name", unique=True),
)

# Per-rule counters in one-minute buckets (stats, throughput, the UI's charts): incremented by the
# producer (matched) and the evaluator (evaluated, failed, judge calls and cost, lag).
online_eval_stat = Table(
    "online_eval_stat",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("rule_id", String(64), primary_key=True),
    Column("bucket", UtcDateTime, primary_key=True),
    Column("matched", BigInteger, nullable=False, default=0),
    Column("evaluated", BigInteger, nullable=False, default=0),
    Column("failed", BigInteger, nullable=False, default=0),
    Column("judge_calls", BigInteger, nullable=False, default=0),
    Column("judge_cost", Float, nullable=False, default=0.0),
    Column("lag_s_sum", Float, nullable=False, default=0.0),
    ForeignKeyConstraint(
        ["project_id", "rule_id"], ["online_eval_rule.project_id", "online_eval_rule.id"], ondelete="CASCADE"
    ),
)

# The producer reads traces by last update.
Index("ix_trace_project_id_updated_at", trace.c.project_id, trace.c.updated_at)

# === annotation queues (0010_annotation_queues) ===

# Annotation queues (docs/annotation.md): traces or spans people review against one or more score
# configs. ``score_config_ids`` is a JSON list (at least one); ``source`` says how items came in
# ({"kind": "filter", "filter": {...}, "limit": n} or {"kind": "ids"}).
annotation_queue = Table(
    "annotation_queue",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("description", Text),
    Column("score_config_ids", JSONType, nullable=False),
    Column("reviews_per_item", Integer, nullable=False, default=1),
    Column("lock_seconds", Integer, nullable=False, default=600),
    Column("source", JSONType),
    Column("created_by", String(256)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "project_id", "name", unique=True),
)

# One trace (``span_id`` NULL) or span to review. ``id`` is derived from (trace_id, span_id), so
# adding the same target twice is a no-op. ``assigned_to``/``locked_until``: the annotator holding
# it now (a claim from ``/next``) and until when. status: pending | in_progress | done | skipped.
annotation_item = Table(
    "annotation_item",
    metadata,
    Column("project_id", String(36), primary_key=True),
    Column("queue_id", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("trace_id", String(128), nullable=False),
    Column("span_id", String(128)),
    Column("position", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("review_count", Integer, nullable=False, default=0),
    Column("assigned_to", String(256)),
    Column("locked_until", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(
        ["project_id", "queue_id"], ["annotation_queue.project_id", "annotation_queue.id"], ondelete="CASCADE"
    ),
    Index(None, "project_id", "queue_id", "status", "position"),
)

# One annotator's value for one score config on one item (submitting again replaces it). The same
# value is a row of ``score`` (source "human", id ``score_id``) on the item's trace/span.
annotation = Table(
    "annotation",
    metadata,
    Column("project_id", String(36), primary_key=True),
    Column("queue_id", String(64), primary_key=True),
    Column("item_id", String(64), primary_key=True),
    Column("annotator", String(256), primary_key=True),
    Column("score_config_id", String(64), primary_key=True),
    Column("value", Float),
    Column("string_value", Text),
    Column("comment", Text),
    Column("score_id", String(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(
        ["project_id", "queue_id", "item_id"],
        ["annotation_item.project_id", "annotation_item.queue_id", "annotation_item.id"],
        ondelete="CASCADE",
    ),
    Index(None, "project_id", "queue_id", "annotator", "created_at"),
)

# === dashboards (0011_dashboards) ===
# A saved dashboard (podium/store/repos/dashboards.py) and its charts, in order. A chart is a
# MetricQuery (podium/core/metrics.py) plus how to draw it; ``layout`` holds grid hints.
dashboard = Table(
    "dashboard",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("description", Text),
    Column("layout", JSONType),
    Column("created_by", String(64)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "project_id", "name", unique=True),
)

dashboard_chart = Table(
    "dashboard_chart",
    metadata,
    Column("project_id", String(36), primary_key=True),
    Column("dashboard_id", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("title", String(200), nullable=False),
    Column("metric", String(300), nullable=False),
    Column("agg", String(16), nullable=False),
    Column("dimension", String(32)),
    Column("filters", JSONType),
    Column("chart_type", String(16), nullable=False),  # line | bar | number
    Column("interval_s", Integer),  # None: picked from the range
    Column("range_s", Integer),  # the default time range (seconds back from now)
    Column("top", Integer),
    ForeignKeyConstraint(
        ["project_id", "dashboard_id"], ["dashboard.project_id", "dashboard.id"], ondelete="CASCADE"
    ),
)


# === drift (0012_drift) ===

# A drift monitor (docs/drift.md): which traces (``scope``: trace filters, optional span kind/name),
# which reference (``{"kind": "rolling"|"fixed"|"dataset", ...}``), the current window's length,
# the features compared and the thresholds. ``next_run_at`` / ``lease_*``: the worker's
# compare-and-set so that two workers never run the same monitor at once.
drift_monitor = Table(
    "drift_monitor",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("description", Text),
    Column("scope", JSONType),
    Column("reference", JSONType, nullable=False),
    Column("window_s", Integer, nullable=False),
    Column("features", JSONType, nullable=False),
    Column("thresholds", JSONType),
    Column("sample_size", Integer, nullable=False),
    Column("interval_s", Integer, nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("next_run_at", UtcDateTime),
    Column("lease_owner", String(128)),
    Column("lease_until", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "project_id", "name", unique=True),
    Index(None, "next_run_at"),
)

# One run of a monitor: windows, sample sizes, every statistic (flat ``{name: number}``, the
# names docs/drift.md lists and alert rules watch), the verdict and details (per-feature
# tables, new topic clusters with example texts).
drift_result = Table(
    "drift_result",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("monitor_id", String(64), nullable=False),
    Column("computed_at", UtcDateTime, nullable=False),
    Column("status", String(16), nullable=False),  # ok | insufficient | error
    Column("window_start", UtcDateTime, nullable=False),
    Column("window_end", UtcDateTime, nullable=False),
    Column("reference_start", UtcDateTime),
    Column("reference_end", UtcDateTime),
    Column("reference_n", Integer, nullable=False, default=0),
    Column("current_n", Integer, nullable=False, default=0),
    Column("drifted", Boolean, nullable=False, default=False),
    Column("statistics", JSONType),
    Column("details", JSONType),
    Column("error", Text),
    Column("duration_ms", Float),
    ForeignKeyConstraint(
        ["project_id", "monitor_id"], ["drift_monitor.project_id", "drift_monitor.id"], ondelete="CASCADE"
    ),
    Index(None, "project_id", "monitor_id", "computed_at"),
)


# === alert rules (0013_alert_rules) ===

# A rule watches one value (a metric query or a drift statistic) and fires through its channels;
# the state columns belong to the evaluator (podium.monitor.alerting), the rest to the API.
alert_rule = Table(
    "alert_rule",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("description", Text),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("severity", String(16), nullable=False),  # info | warning | critical
    Column("condition", JSONType, nullable=False),  # {"metric": ..., "agg": ..., "filters": ...} | {"drift": ..., "statistic": ...}
    Column("kind", String(16), nullable=False),  # threshold | change | anomaly
    Column("op", String(4), nullable=False),  # > >= < <=
    Column("threshold", Float, nullable=False),
    Column("params", JSONType),  # kind-specific: baseline_offset_s, change_mode, anomaly_windows, two_sided
    Column("window_s", Integer, nullable=False),
    Column("min_samples", Integer, nullable=False, default=0),
    Column("cooldown_s", Integer, nullable=False, default=0),
    Column("renotify_s", Integer, nullable=False, default=0),
    Column("eval_interval_s", Integer, nullable=False),
    Column("channels", JSONType),  # [{"type": ..., "params": {...}}]
    Column("muted_until", UtcDateTime),
    Column("state", String(16), nullable=False, default="ok"),  # ok | firing
    Column("episode", Integer, nullable=False, default=0),  # +1 per firing; part of the dedup key
    Column("notified_episode", Integer, nullable=False, default=0),  # the last episode whose firing was sent
    Column("fired_at", UtcDateTime),
    Column("last_notified_at", UtcDateTime),
    Column("last_evaluated_at", UtcDateTime),
    Column("next_eval_at", UtcDateTime, nullable=False),
    Column("last_value", Float),
    Column("last_error", Text),
    Column("created_by", String(64)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "project_id", "name", unique=True),
    Index(None, "next_eval_at"),
)

# The history: fired / resolved / renotified / suppressed / test / error, with the deliveries.
alert_event = Table(
    "alert_event",
    metadata,
    Column("project_id", String(36), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("rule_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("episode", Integer, nullable=False, default=0),
    Column("value", Float),
    Column("threshold", Float),
    Column("window_start", UtcDateTime),
    Column("window_end", UtcDateTime),
    Column("message", Text),
    Column("actor", String(64)),
    Column("deliveries", JSONType),  # [{"channel", "ok", "status", "error", "latency_ms", "attempts", "target"}]
    Column("created_at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(["project_id", "rule_id"], ["alert_rule.project_id", "alert_rule.id"], ondelete="CASCADE"),
    Index(None, "project_id", "created_at"),
    Index(None, "project_id", "rule_id", "created_at"),
)

# === model registry (0014_model_registry) ===

# Registered models and their immutable, numbered versions (artifact, base model, lineage, eval
# results); aliases (champion, challenger, ...) point at one version, every move is an event
# (podium/store/repos/models.py, podium/registry/).
registered_model = Table(
    "registered_model",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("description", Text),
    Column("tags", JSONType),
    Column("latest_version", Integer, nullable=False, default=0),
    Column("created_by", String(64)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

model_version = Table(
    "model_version",
    metadata,
    Column("project_id", String(36), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("artifact", JSONType, nullable=False),  # {"kind", "uri", "format", "size", "sha256", "copied"}
    Column("base_model", String(512)),  # a model id or registry:/name@version
    Column("training_run_id", String(64)),
    Column("dataset_name", String(200)),
    Column("dataset_version", Integer),
    Column("eval_results", JSONType),  # [{"suite", "experiment_ids", "metrics": {name: mean}}]
    Column("metadata", JSONType),
    Column("description", Text),
    Column("status", String(16), nullable=False, default="ready"),  # ready | archived
    Column("created_by", String(64)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(["project_id", "name"], ["registered_model.project_id", "registered_model.name"],
                         ondelete="CASCADE"),
    Index(None, "project_id", "dataset_name", "dataset_version"),
)

model_alias = Table(
    "model_alias",
    metadata,
    Column("project_id", String(36), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_by", String(64)),
    Column("updated_at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(["project_id", "name"], ["registered_model.project_id", "registered_model.name"],
                         ondelete="CASCADE"),
)

model_alias_event = Table(
    "model_alias_event",
    metadata,
    Column("project_id", String(36), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("action", String(16), nullable=False),  # set | rollback | delete
    Column("from_version", Integer),
    Column("to_version", Integer),
    Column("actor", String(64)),
    Column("comment", Text),
    Column("created_at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(["project_id", "name"], ["registered_model.project_id", "registered_model.name"],
                         ondelete="CASCADE"),
)

# === training runs (0015_training_runs) ===

# Fine-tuning runs (parameters, hardware, metrics, artifacts, status with cancel and resume), their
# per-step loss / learning rate (one row per logged step, upserted: a resumed run may resend one)
# and hyperparameter sweeps whose trials are runs (podium/store/repos/training.py).
training_sweep = Table(
    "training_sweep",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("name", String(200)),
    Column("status", String(16), nullable=False),  # running | completed | failed | cancelled
    Column("space", JSONType),
    Column("objective", JSONType),
    Column("settings", JSONType),
    Column("best_run_id", String(64)),
    Column("summary", JSONType),
    Column("created_by", String(64)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "project_id", "created_at"),
)

training_run = Table(
    "training_run",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("name", String(200)),
    Column("method", String(16), nullable=False),  # sft | dpo | kto
    Column("status", String(16), nullable=False),  # running | completed | failed | cancelled | pruned
    Column("base_model", String(512), nullable=False),
    Column("dataset_name", String(200)),
    Column("dataset_version", Integer),
    Column("data_path", Text),
    Column("params", JSONType),
    Column("hardware", JSONType),
    Column("output_dir", Text),
    Column("metrics", JSONType),
    Column("artifacts", JSONType),
    Column("sweep_id", String(64)),
    Column("trial", Integer),
    Column("tags", JSONType),
    Column("error", Text),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("last_step", Integer),
    Column("duration_s", Float),
    Column("created_by", String(64)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime),
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "project_id", "created_at"),
    Index(None, "project_id", "sweep_id"),
)

training_step = Table(
    "training_step",
    metadata,
    Column("project_id", String(36), primary_key=True),
    Column("run_id", String(64), primary_key=True),
    Column("step", Integer, primary_key=True),
    Column("loss", Float),
    Column("learning_rate", Float),
    Column("epoch", Float),
    Column("grad_norm", Float),
    Column("eval_loss", Float),
    Column("extra", JSONType),  # other numbers the trainer logs (DPO rewards, accuracies, ...)
    Column("logged_at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(["project_id", "run_id"], ["training_run.project_id", "training_run.id"],
                         ondelete="CASCADE"),
)


# === canaries (0016_canaries) ===

# Canary deployments (podium/monitor/canary/): a gateway alias split between two versions of a
# registered model with weights that step up (5 -> 25 -> 50 -> 100) while live gates pass; a
# breach rolls back. ``canary_event`` is each canary's audit trail (start, step, check, rollback,
# promote, pause, resume, abort), in sequence order.
canary = Table(
    "canary",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("gateway_alias", String(256), nullable=False),
    Column("model_name", String(200), nullable=False),
    Column("baseline_version", Integer, nullable=False),
    Column("candidate_version", Integer, nullable=False),
    Column("steps", JSONType, nullable=False),  # candidate percentages, increasing, ending at 100
    Column("step_index", Integer, nullable=False, default=0),
    Column("step_duration_s", Integer, nullable=False),
    Column("min_requests", Integer, nullable=False),
    Column("gates", JSONType, nullable=False),  # thresholds: podium.monitor.canary.gates.Gates
    Column("suite", JSONType),  # the eval-suite evidence the client sent (or null: no suite gate)
    Column("status", String(16), nullable=False),  # pending|running|paused|promoted|rolled_back|aborted
    Column("promote_alias", String(64), nullable=False),  # the registry alias moved on promotion
    Column("alert_rule", String(64)),  # the alert rule a rollback raises (its channels notify)
    Column("original_spec", JSONType),  # the gateway alias's stored spec before the canary
    Column("actor", String(64)),
    Column("reason", Text),  # why it ended (the breach, who promoted/aborted)
    Column("step_started_at", UtcDateTime),
    Column("next_check_at", UtcDateTime),  # claimed by compare-and-set (one worker checks at a time)
    Column("last_check", JSONType),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime),
    Index(None, "project_id", "gateway_alias", "status"),
    Index(None, "status", "next_check_at"),
)

canary_event = Table(
    "canary_event",
    metadata,
    Column("project_id", String(36), primary_key=True),
    Column("canary_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("action", String(16), nullable=False),  # start|step|check|rollback|promote|pause|resume|abort
    Column("detail", JSONType),
    Column("actor", String(64)),
    Column("created_at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(["project_id", "canary_id"], ["canary.project_id", "canary.id"], ondelete="CASCADE"),
)

# === eval sweeps (0017_eval_sweeps) ===

# Evaluation sweeps (issue 19): configurations of models, prompt versions and inference
# parameters tried against one eval suite (podium.experiments.sweep posts them); each trial is a
# normal experiment (``experiment_id``) plus its objective metrics (score, cost per 1,000 items,
# p95 latency), upserted on ``(sweep, number)`` (podium/store/repos/eval_sweeps.py).
eval_sweep = Table(
    "eval_sweep",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("status", String(16), nullable=False),  # running | completed | stopped | failed
    Column("suite", JSONType, nullable=False),  # {name, description?, path?}
    Column("space", JSONType),
    Column("objectives", JSONType),  # ["score", "cost_per_1k", "p95_ms"]
    Column("search", JSONType),  # {method: grid|optuna, trials?, seed?}
    Column("budget_usd", Float),
    Column("spent_usd", Float, nullable=False, default=0.0),
    Column("summary", JSONType),
    Column("created_by", String(64)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "project_id", "created_at"),
)

eval_sweep_trial = Table(
    "eval_sweep_trial",
    metadata,
    Column("project_id", String(36), primary_key=True),
    Column("sweep_id", String(64), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("config", JSONType, nullable=False),  # {model, prompt?, params, system_variant?, few_shot?}
    Column("experiment_id", String(64)),
    Column("status", String(16), nullable=False),  # complete | stopped | failed
    Column("items", Integer, nullable=False, default=0),
    Column("metrics", JSONType),  # {score_mean, score_ci, pass_rate, cost_total, cost_per_1k, p95_ms, ...}
    Column("error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(["project_id", "sweep_id"], ["eval_sweep.project_id", "eval_sweep.id"],
                         ondelete="CASCADE"),
)

# === users (0018_users) ===

# People (issue 16): organisations own projects; a user (email + argon2id password hash, or an
# OIDC subject) is a member of projects with a role (podium.core.roles.USER_ROLES); sign-ins are
# server-side session rows (the cookie holds a random token, the row its sha256); invitations are
# one-time links (the row keeps the token's sha256). Organisation- and user-level, so not project-scoped.
organisation = Table(
    "organisation",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
)

organisation_project = Table(
    "organisation_project",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("organisation_id", String(36), ForeignKey("organisation.id", ondelete="CASCADE"), nullable=False),
    Index(None, "organisation_id"),
)

app_user = Table(
    "app_user",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),  # lower-cased
    Column("name", String(200)),
    Column("password_hash", String(200)),  # argon2id; None: signs in through OIDC only
    Column("oidc_subject", String(500), unique=True),  # "issuer|sub" of a single sign-on account
    Column("created_at", UtcDateTime, nullable=False),
    Column("disabled_at", UtcDateTime),
    Column("last_login_at", UtcDateTime),
)

project_member = Table(
    "project_member",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", String(36), ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "user_id"),
)

user_session = Table(
    "user_session",
    metadata,
    Column("id", String(64), primary_key=True),  # sha256 of the cookie's token
    Column("user_id", String(36), ForeignKey("app_user.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", String(36), ForeignKey("project.id", ondelete="SET NULL")),  # the project it acts on
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),  # absolute expiry
    Column("revoked_at", UtcDateTime),
    Column("ip", String(64)),
    Column("user_agent", String(300)),
    Column("method", String(16), nullable=False),  # password | oidc | invite
    Index(None, "user_id"),
)

invitation = Table(
    "invitation",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), nullable=False),
    Column("email", String(320), nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("invited_by", String(400)),  # the actor's label
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("accepted_at", UtcDateTime),
    Column("accepted_by", String(36)),
    Column("revoked_at", UtcDateTime),
    Index(None, "project_id", "created_at"),
)

# === audit (0019_audit) ===

# The audit log (podium.governance.audit): append-only, one hash chain across the installation.
# No foreign key to project on purpose: deleting a project must not delete the record of who
# deleted it (and a cascade would break the chain). Never touched by the retention job.
audit_event = Table(
    "audit_event",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),  # position in the chain, 1, 2, ...
    Column("created_at", UtcDateTime, nullable=False),
    Column("project_id", String(36)),
    Column("actor_kind", String(16), nullable=False),  # key | user | local | cli | system | anonymous
    Column("actor_id", String(255), nullable=False),
    Column("actor_name", String(255)),
    Column("actor_role", String(32)),
    Column("action", String(128), nullable=False),  # dotted: prompt.label.move, key.create, http.post
    Column("target_type", String(64)),
    Column("target_id", String(512)),
    Column("method", String(16)),
    Column("route", String(512)),  # the route template: /api/v1/prompts/{name}/labels/{label}
    Column("path", String(2048)),
    Column("status", Integer),
    Column("ip", String(64)),
    Column("user_agent", String(512)),
    Column("before_digest", String(64)),  # sha256 of the canonical JSON of the value
    Column("after_digest", String(64)),
    Column("before_value", Text),  # the canonical JSON itself when under 4 KiB
    Column("after_value", Text),
    Column("detail", Text),  # canonical JSON (text, so what was hashed is what is read back)
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index(None, "project_id", "seq"),
    Index(None, "project_id", "action"),
    Index(None, "project_id", "target_type", "target_id"),
    Index(None, "project_id", "actor_id"),
)

# The chain's head: one row (id 1), locked by every append (SELECT ... FOR UPDATE on PostgreSQL;
# SQLite's BEGIN IMMEDIATE serialises writers anyway), so concurrent appends cannot fork the chain.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# === data lifecycle (0020_data_lifecycle) ===
# Retention and data-subject requests (podium/store/repos/lifecycle.py, docs/governance.md). One
# policy row per project: a period per kind in days (NULL: the installation default
# PODIUM_RETENTION_DAYS; 0: keep forever), the legal hold (nothing is deleted while on) and the
# worker's lease (``next_run_at``: the job claims a project by moving it forward).
retention_policy = Table(
    "retention_policy",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("traces_days", Integer),
    Column("scores_days", Integer),
    Column("gateway_days", Integer),
    Column("legal_hold", Boolean, nullable=False, default=False),
    Column("legal_hold_reason", Text),
    Column("next_run_at", UtcDateTime),
    Column("updated_by", String(256)),
    Column("updated_at", UtcDateTime, nullable=False),
)

# One purge (the worker's or a manual one; dry runs too): the cut-off per kind and the rows
# deleted (or that would be) per table, the longest transaction and how long it took.
retention_run = Table(
    "retention_run",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(36), primary_key=True),
    Column("dry_run", Boolean, nullable=False, default=False),
    Column("status", String(16), nullable=False),  # ok | error
    Column("cutoffs", JSONType),
    Column("counts", JSONType),
    Column("batches", Integer, nullable=False, default=0),
    Column("max_tx_ms", Float),
    Column("error", Text),
    Column("actor", String(256)),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    Index(None, "project_id", "started_at"),
)

# A data-subject request's receipt: counts per table (never the data), who asked and when.
subject_request = Table(
    "subject_request",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(36), primary_key=True),
    Column("kind", String(16), nullable=False),  # delete | export
    Column("user_id", String(256), nullable=False),
    Column("counts", JSONType, nullable=False),
    Column("notes", JSONType),
    Column("actor", String(256)),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "project_id", "created_at"),
)

# Retention reads scores by age and annotation items by trace, through these.
Index("ix_score_retention", score.c.project_id, score.c.timestamp)
Index("ix_annotation_item_trace", annotation_item.c.project_id, annotation_item.c.trace_id)


# === redaction (0021_redaction) ===

# Redaction rules applied before storage (podium/governance/redaction.py): one document per
# project, ``{"rules": [...]}`` as set by PUT /api/v1/redaction-rules, and whether an item
# that cannot be redacted is rejected (fail-closed) or stored with a counted warning.
redaction_rules = Table(
    "redaction_rules",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("rules", JSONType, nullable=False),  # [{preset|path|pattern|scanner: ..., ...}, ...]
    Column("fail_closed", Boolean, nullable=False, default=False),
    Column("updated_by", String(256)),  # the actor's label (key:pk-..., user:ana@...)
    Column("updated_at", UtcDateTime, nullable=False),
)

# === collections (0022_collections) ===

from sqlalchemy.dialects.postgresql import TSVECTOR  # noqa: E402  (kept with the only table that uses it)

# Knowledge collections (issue 17, podium/rag, docs/rag.md): documents and their chunks, versioned
# like datasets (a row is valid for versions ``valid_from <= v < valid_to``; NULL: still current).
# ``collection_chunk.key`` is a 63-bit hash of the chunk's identity, the row id of the keyword
# index; ``embedding`` holds the float32 vector; ``fts`` the PostgreSQL tsvector. SQLite's FTS5
# virtual table ``rag_fts`` and the pgvector tables are created at run time by
# podium/store/repos/collections.py (alembic cannot describe them).
collection = Table(
    "collection",
    metadata,
    Column("project_id", String(36), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("description", Text),
    Column("embedder", String(200), nullable=False),  # local:minilm-l6-v2 | gateway:ALIAS
    Column("dimensions", Integer),  # set by the first ingestion
    Column("chunking", JSONType, nullable=False),  # {strategy, size, overlap}
    Column("metadata", JSONType),
    Column("latest_version", Integer, nullable=False, default=0),
    Column("created_by", String(64)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

collection_version = Table(
    "collection_version",
    metadata,
    Column("project_id", String(36), primary_key=True),
    Column("collection", String(200), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("document_count", Integer, nullable=False),
    Column("chunk_count", Integer, nullable=False),
    Column("added", Integer, nullable=False, default=0),
    Column("updated", Integer, nullable=False, default=0),
    Column("removed", Integer, nullable=False, default=0),
    Column("message", Text),
    Column("created_by", String(64)),
    Column("created_at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(["project_id", "collection"], ["collection.project_id", "collection.name"],
                         ondelete="CASCADE"),
)

collection_document = Table(
    "collection_document",
    metadata,
    Column("project_id", String(36), primary_key=True),
    Column("collection", String(200), primary_key=True),
    Column("id", String(200), primary_key=True),
    Column("valid_from", Integer, primary_key=True),
    Column("valid_to", Integer),
    Column("title", String(500)),
    Column("source", String(1000)),
    Column("kind", String(16), nullable=False),  # txt | md | html | pdf
    Column("metadata", JSONType),
    Column("content_hash", String(64), nullable=False),
    Column("chars", Integer, nullable=False),
    Column("chunk_count", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(["project_id", "collection"], ["collection.project_id", "collection.name"],
                         ondelete="CASCADE"),
    Index(None, "project_id", "collection", "valid_to"),
)

collection_chunk = Table(
    "collection_chunk",
    metadata,
    Column("project_id", String(36), primary_key=True),
    Column("collection", String(200), primary_key=True),
    Column("document_id", String(200), primary_key=True),
    Column("valid_from", Integer, primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("key", BigInteger, nullable=False),
    Column("valid_to", Integer),
    Column("text", Text, nullable=False),
    Column("start", Integer, nullable=False),
    Column("end", Integer, nullable=False),
    Column("tokens", Integer, nullable=False),
    Column("heading", String(500)),
    Column("embedding", LargeBinary, nullable=False),  # float32, little-endian
    # PostgreSQL: to_tsvector('english', text), set by the repo after insert (GIN-indexed); NULL on SQLite
    Column("fts", Text().with_variant(TSVECTOR(), "postgresql")),
    ForeignKeyConstraint(["project_id", "collection"], ["collection.project_id", "collection.name"],
                         ondelete="CASCADE"),
    Index(None, "key", unique=True),
    Index(None, "project_id", "collection", "valid_to"),
    Index(None, "fts", postgresql_using="gin"),
)

# === attributions (0023_attributions) ===
# Context attributions of a trace's answer (podium.rag.attribution, docs/rag.md): which retrieved chunks
# drove the generation span's response. Deleted with their trace (retention, data-subject requests).
attribution = Table(
    "attribution",
    metadata,
    Column("project_id", String(36), primary_key=True),
    Column("id", String(36), primary_key=True),
    Column("trace_id", String(128), nullable=False),
    Column("span_id", String(128), nullable=False),  # the generation span whose response is attributed
    Column("retrieval_span_id", String(128), nullable=False),
    Column("method", String(32), nullable=False),  # leave-one-out | context-cite
    Column("level", String(16), nullable=False),  # chunk | sentence
    Column("model", String(200)),
    Column("top_chunk", String(500)),
    Column("passes", Integer, nullable=False),
    Column("seconds", Float, nullable=False),
    Column("result", JSONType, nullable=False),  # Attribution.to_dict(): chunks ranked, sentences, fit, params
    Column("created_by", String(64)),
    Column("created_at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(["project_id", "trace_id"], ["trace.project_id", "trace.id"], ondelete="CASCADE"),
    Index(None, "project_id", "trace_id", "created_at"),
)
