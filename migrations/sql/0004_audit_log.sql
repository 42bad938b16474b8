-- The audit trail: a projection of the `platform.events` topic. Re-projecting the topic
-- inserts the same events again; ReplacingMergeTree keyed on the event id drops the copies.
CREATE TABLE IF NOT EXISTS audit_log
(
    workspace_id        String,
    occurred_at         DateTime64(3, 'UTC'),
    event_id            String,
    event_type          LowCardinality(String),
    aggregate_type      LowCardinality(String),
    aggregate_id        String,
    aggregate_version   UInt64,
    project_id          String,
    actor               String,
    payload             String CODEC(ZSTD(3)),
    kafka_partition     Int32,
    kafka_offset        Int64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (workspace_id, occurred_at, event_id);
