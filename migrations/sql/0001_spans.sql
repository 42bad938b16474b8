-- One row per span version: the canonical, LLM-aware span written by the sink.
--
-- Engine: VersionedCollapsingMergeTree(sign, version). A writer inserts a span once with
-- sign = +1; to replace it (a replay under a new price table or processor version) it inserts
-- the stored row again with sign = -1 and the new row with sign = +1 and a higher version.
-- Merges collapse the pairs, and the summary views below sum `sign`-weighted values, so
-- `traces` and `usage_hourly` count every span exactly once whatever is replayed.
-- Read with FINAL (or aggregate with `sign`) until merges have run.
--
-- Ordering serves the two hot paths: per-project time-range lists (project_id, hour) and trace
-- fetches (trace_id within the hour, plus the bloom filter when the hour is unknown).
-- Rows expire `retention_days` after the span started (set per project from its plan).
CREATE TABLE IF NOT EXISTS spans
(
    project_id          String,
    trace_id            String,
    span_id             String,
    parent_span_id      String,
    name                String,
    kind                LowCardinality(String),
    service             LowCardinality(String),
    start_time          DateTime64(9, 'UTC'),
    end_time            DateTime64(9, 'UTC'),
    duration_ns         UInt64,
    status_code         LowCardinality(String),
    status_message      String,
    model               LowCardinality(String),
    provider            LowCardinality(String),
    input_tokens        UInt64,
    output_tokens       UInt64,
    cache_read_tokens   UInt64,
    cache_write_tokens  UInt64,
    reasoning_tokens    UInt64,
    input_cost          Nullable(Decimal(18, 12)),
    output_cost         Nullable(Decimal(18, 12)),
    total_cost          Nullable(Decimal(18, 12)),
    cost_status         LowCardinality(String),
    input_messages      String CODEC(ZSTD(3)),
    output_messages     String CODEC(ZSTD(3)),
    messages_truncated  Bool,
    tool_name           LowCardinality(String),
    tool_call_id        String,
    tool_arguments      String CODEC(ZSTD(3)),
    session_id          String,
    user_id             String,
    tags                Array(LowCardinality(String)),
    attributes          Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    resource_attributes Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    events              Nested(
                            time DateTime64(9, 'UTC'),
                            name String,
                            attributes Map(LowCardinality(String), String)
                        ),
    links               Nested(
                            trace_id String,
                            span_id String,
                            attributes Map(LowCardinality(String), String)
                        ),
    raw_pointer         String,
    span_bytes          UInt32,
    retention_days      UInt16,
    ingested_at         DateTime64(3, 'UTC'),
    version             UInt64,
    sign                Int8,
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_session_id session_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_user_id user_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_model model TYPE set(256) GRANULARITY 4
)
ENGINE = VersionedCollapsingMergeTree(sign, version)
PARTITION BY toYYYYMM(start_time)
ORDER BY (project_id, toStartOfHour(start_time), trace_id, span_id)
TTL toDateTime(start_time) + toIntervalDay(retention_days)
SETTINGS non_replicated_deduplication_window = 1000;
