-- Traces the sink found fully stored: written just before it emits `trace.persisted`, so a
-- client that subscribes to a trace after that event can be told at once. One row per trace
-- (the latest answer wins on merge); rows expire with the spans they vouch for.
CREATE TABLE IF NOT EXISTS trace_lifecycle
(
    project_id      String,
    trace_id        String,
    span_count      UInt64,
    persisted_at    DateTime64(3, 'UTC'),
    retention_days  UInt16
)
ENGINE = ReplacingMergeTree(persisted_at)
ORDER BY (project_id, trace_id)
TTL toDateTime(persisted_at) + toIntervalDay(retention_days);
