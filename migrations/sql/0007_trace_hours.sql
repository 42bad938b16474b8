-- Where each trace's spans are: the hours (the second key of `spans`) its spans start in, by
-- project and trace. `spans` is sorted by (project, hour, trace), so a read of one trace
-- without its time checks the trace-id bloom filter of every granule of the project; reading
-- the trace's hours here first (a primary-key lookup) lets that read use the sort key instead
-- (a 10k-span trace in a 10M-span project: 60 ms -> 43 ms through the local engine).
-- A row outlives the spans it points to by an hour, so a trace is never stored but unfindable;
-- a stale or repeated row only widens the read.
CREATE TABLE IF NOT EXISTS trace_hours
(
    project_id      String,
    trace_id        String,
    hour            DateTime('UTC'),
    retention_days  UInt16
)
ENGINE = ReplacingMergeTree
ORDER BY (project_id, trace_id, hour)
TTL hour + toIntervalHour(1) + toIntervalDay(retention_days);

CREATE MATERIALIZED VIEW IF NOT EXISTS trace_hours_mv TO trace_hours AS
SELECT
    project_id,
    trace_id,
    toStartOfHour(start_time) AS hour,
    max(retention_days) AS retention_days
FROM spans
GROUP BY project_id, trace_id, hour;

-- Spans stored before this migration.
INSERT INTO trace_hours
SELECT
    project_id,
    trace_id,
    toStartOfHour(start_time) AS hour,
    max(retention_days) AS retention_days
FROM spans
GROUP BY project_id, trace_id, hour;
