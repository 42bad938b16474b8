-- Usage per project per hour of span start: the source for metering and billing.
-- SummingMergeTree over `sign`-weighted sums, so replaced spans net out (see 0001_spans.sql).
CREATE TABLE IF NOT EXISTS usage_hourly
(
    project_id          String,
    hour                DateTime('UTC'),
    spans               Int64,
    bytes               Int64,
    llm_spans           Int64,
    input_tokens        Int64,
    output_tokens       Int64,
    cache_read_tokens   Int64,
    cache_write_tokens  Int64,
    reasoning_tokens    Int64,
    total_cost          Decimal(38, 12),
    unknown_cost_spans  Int64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (project_id, hour);

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_hourly_mv TO usage_hourly AS
SELECT
    spans.project_id,
    toStartOfHour(toDateTime(spans.start_time, 'UTC')) AS hour,
    sum(toInt64(spans.sign)) AS spans,
    sum(spans.sign * toInt64(spans.span_bytes)) AS bytes,
    sum(spans.sign * toInt64(spans.kind = 'llm')) AS llm_spans,
    sum(spans.sign * toInt64(spans.input_tokens)) AS input_tokens,
    sum(spans.sign * toInt64(spans.output_tokens)) AS output_tokens,
    sum(spans.sign * toInt64(spans.cache_read_tokens)) AS cache_read_tokens,
    sum(spans.sign * toInt64(spans.cache_write_tokens)) AS cache_write_tokens,
    sum(spans.sign * toInt64(spans.reasoning_tokens)) AS reasoning_tokens,
    sum(toDecimal128(spans.sign, 0) * toDecimal128(ifNull(spans.total_cost, 0), 12)) AS total_cost,
    sum(spans.sign * toInt64(spans.cost_status = 'unknown_model')) AS unknown_cost_spans
FROM spans
GROUP BY spans.project_id, hour;
