-- The columnar span store: spans, traces, their tags and scores (docs/columnar.md).
-- ReplacingMergeTree(version, is_deleted): a re-sent or merged row is a new version of the same
-- sorting key; reads use FINAL (the latest version, tombstones dropped). JSON columns are JSON text.
-- Granules of 1,024 rows (not 8,192): a trace or span lookup decompresses ~1 MB of input/output, not ~10.

CREATE TABLE IF NOT EXISTS span (
    project_id String,
    trace_id String,
    id String,
    parent_id Nullable(String),
    name String,
    kind LowCardinality(String),
    start_time DateTime64(6, 'UTC'),
    end_time Nullable(DateTime64(6, 'UTC')),
    latency_ms Nullable(Float64),
    status LowCardinality(String),
    status_message Nullable(String) CODEC(ZSTD(3)),
    model LowCardinality(Nullable(String)),
    provider LowCardinality(Nullable(String)),
    model_parameters Nullable(String) CODEC(ZSTD(3)),
    input Nullable(String) CODEC(ZSTD(3)),
    output Nullable(String) CODEC(ZSTD(3)),
    metadata Nullable(String) CODEC(ZSTD(3)),
    attributes Nullable(String) CODEC(ZSTD(3)),
    input_tokens Nullable(Int64),
    output_tokens Nullable(Int64),
    total_tokens Nullable(Int64),
    usage_details Nullable(String) CODEC(ZSTD(3)),
    usage_estimated Nullable(Bool),
    usage_counted Nullable(Bool),
    cost_input Nullable(Decimal(20, 10)),
    cost_output Nullable(Decimal(20, 10)),
    cost_total Nullable(Decimal(20, 10)),
    completion_start_time Nullable(DateTime64(6, 'UTC')),
    prompt_name Nullable(String),
    prompt_version Nullable(Int32),
    updated_at DateTime64(6, 'UTC'),
    version UInt64,
    is_deleted UInt8 DEFAULT 0,
    INDEX ix_span_start start_time TYPE minmax GRANULARITY 1,
    INDEX ix_span_model model TYPE set(256) GRANULARITY 4
) ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY (project_id, trace_id, id)
SETTINGS index_granularity = 1024;

CREATE TABLE IF NOT EXISTS trace (
    project_id String,
    id String,
    name Nullable(String),
    name_explicit Bool,
    user_id Nullable(String),
    session_id Nullable(String),
    release LowCardinality(Nullable(String)),
    environment LowCardinality(Nullable(String)),
    metadata Nullable(String) CODEC(ZSTD(3)),
    input Nullable(String) CODEC(ZSTD(3)),
    output Nullable(String) CODEC(ZSTD(3)),
    input_explicit Bool,
    output_explicit Bool,
    start_time DateTime64(6, 'UTC'),
    end_time Nullable(DateTime64(6, 'UTC')),
    latency_ms Float64,
    status LowCardinality(String),
    span_count Int64,
    error_count Int64,
    input_tokens Int64,
    output_tokens Int64,
    total_tokens Int64,
    total_cost Decimal(20, 10),
    updated_at DateTime64(6, 'UTC'),
    version UInt64,
    is_deleted UInt8 DEFAULT 0,
    INDEX ix_trace_id id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX ix_trace_user user_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX ix_trace_session session_id TYPE bloom_filter(0.01) GRANULARITY 4
) ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY (project_id, toDate(start_time), id)
SETTINGS index_granularity = 1024;

CREATE TABLE IF NOT EXISTS trace_tag (
    project_id String,
    trace_id String,
    tag String
) ENGINE = ReplacingMergeTree
ORDER BY (project_id, trace_id, tag);

CREATE TABLE IF NOT EXISTS score (
    project_id String,
    id String,
    trace_id Nullable(String),
    span_id Nullable(String),
    session_id Nullable(String),
    name String,
    data_type LowCardinality(String),
    value Nullable(Float64),
    string_value Nullable(String),
    source LowCardinality(String),
    comment Nullable(String),
    metadata Nullable(String),
    timestamp DateTime64(6, 'UTC'),
    version UInt64,
    is_deleted UInt8 DEFAULT 0,
    INDEX ix_score_trace trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX ix_score_session session_id TYPE bloom_filter(0.01) GRANULARITY 4
) ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY (project_id, id);
