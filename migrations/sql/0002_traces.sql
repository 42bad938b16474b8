-- Trace summaries, one row per project, trace and day of span start (a trace that crosses
-- midnight has two rows; readers merge them with GROUP BY trace_id). Maintained by the
-- materialized view from `spans` inserts; every additive column is weighted by `sign`, so a
-- replaced span's -1/+1 pair nets out and nothing is counted twice.
CREATE TABLE IF NOT EXISTS traces
(
    project_id          String,
    day                 Date,
    trace_id            String,
    start_time          SimpleAggregateFunction(min, DateTime64(9, 'UTC')),
    end_time            SimpleAggregateFunction(max, DateTime64(9, 'UTC')),
    root_name           SimpleAggregateFunction(max, String),
    root_service        SimpleAggregateFunction(max, String),
    has_root            SimpleAggregateFunction(max, UInt8),
    span_count          SimpleAggregateFunction(sum, Int64),
    error_count         SimpleAggregateFunction(sum, Int64),
    llm_span_count      SimpleAggregateFunction(sum, Int64),
    input_tokens        SimpleAggregateFunction(sum, Int64),
    output_tokens       SimpleAggregateFunction(sum, Int64),
    cache_read_tokens   SimpleAggregateFunction(sum, Int64),
    cache_write_tokens  SimpleAggregateFunction(sum, Int64),
    reasoning_tokens    SimpleAggregateFunction(sum, Int64),
    total_cost          SimpleAggregateFunction(sum, Decimal(38, 12)),
    unknown_cost_spans  SimpleAggregateFunction(sum, Int64),
    session_id          SimpleAggregateFunction(max, String),
    user_id             SimpleAggregateFunction(max, String),
    models              SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    tags                SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    retention_days      SimpleAggregateFunction(max, UInt16),
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_session_id session_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_user_id user_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (project_id, day, trace_id)
TTL day + toIntervalDay(retention_days);

CREATE MATERIALIZED VIEW IF NOT EXISTS traces_mv TO traces AS
SELECT
    spans.project_id,
    toDate(spans.start_time) AS day,
    spans.trace_id,
    min(spans.start_time) AS start_time,
    max(spans.end_time) AS end_time,
    max(if(spans.parent_span_id = '', spans.name, '')) AS root_name,
    max(if(spans.parent_span_id = '', toString(spans.service), '')) AS root_service,
    max(toUInt8(spans.parent_span_id = '')) AS has_root,
    sum(toInt64(spans.sign)) AS span_count,
    sum(spans.sign * toInt64(spans.status_code = 'error')) AS error_count,
    sum(spans.sign * toInt64(spans.kind = 'llm')) AS llm_span_count,
    sum(spans.sign * toInt64(spans.input_tokens)) AS input_tokens,
    sum(spans.sign * toInt64(spans.output_tokens)) AS output_tokens,
    sum(spans.sign * toInt64(spans.cache_read_tokens)) AS cache_read_tokens,
    sum(spans.sign * toInt64(spans.cache_write_tokens)) AS cache_write_tokens,
    sum(spans.sign * toInt64(spans.reasoning_tokens)) AS reasoning_tokens,
    sum(toDecimal128(spans.sign, 0) * toDecimal128(ifNull(spans.total_cost, 0), 12)) AS total_cost,
    sum(spans.sign * toInt64(spans.cost_status = 'unknown_model')) AS unknown_cost_spans,
    max(spans.session_id) AS session_id,
    max(spans.user_id) AS user_id,
    groupUniqArrayIf(toString(spans.model), spans.model != '') AS models,
    groupUniqArrayArray(arrayMap(t -> toString(t), spans.tags)) AS tags,
    max(spans.retention_days) AS retention_days
FROM spans
GROUP BY spans.project_id, day, spans.trace_id;
