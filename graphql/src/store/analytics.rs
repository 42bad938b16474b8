//! Aggregates for lists and dashboards: sessions and users (from `traces`), metrics time
//! series (from `spans`), monthly usage (from `usage_hourly`), and the values a filter can take.

use clickhouse::Row;
use serde::Deserialize;

use super::{Bind, Sql, Store, i, s};
use crate::cursor::Cursor;
use crate::error::ApiError;

/// Per-trace rows of a project in a time range, the input of session and user lists.
///
/// A trace has a `traces` row per day its spans started on. The day before `from` and the day
/// after `to` are read too (as the trace lists do), so a trace that crossed midnight is summed
/// whole: one that started before `from` is left out by its real start instead of being
/// counted from its second day, and one that started on `to`'s day and went on past midnight
/// keeps the spans of its next day.
fn per_trace(project_id: &str, from_ns: i64, to_ns: i64) -> Sql {
    let mut sql = Sql::default();
    sql.push_bound(
        "SELECT trace_id, max(session_id) AS session, max(user_id) AS user, \
         toUnixTimestamp64Nano(min(start_time)) AS start_ns, \
         toUnixTimestamp64Nano(max(end_time)) AS end_ns, \
         sum(span_count) AS n_spans, sum(error_count) AS n_errors, \
         sum(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens \
             + reasoning_tokens) AS tokens, \
         sum(total_cost) AS cost \
         FROM traces WHERE project_id = ? \
         AND day >= toDate(fromUnixTimestamp64Nano(?)) - 1 \
         AND day <= toDate(fromUnixTimestamp64Nano(?)) + 1 \
         GROUP BY trace_id HAVING n_spans > 0 AND start_ns >= ? AND start_ns < ?",
        [s(project_id), i(from_ns), i(to_ns), i(from_ns), i(to_ns)],
    );
    sql
}

/// A conversation: the traces sharing a session id.
#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
pub struct SessionRow {
    pub session_id: String,
    pub user_id: String,
    pub traces: u64,
    pub spans: i64,
    pub errors: i64,
    pub tokens: i64,
    pub total_cost: String,
    pub first_ns: i64,
    pub last_ns: i64,
}

/// Sessions by most recent activity, keyset-paged on (last activity, id).
pub async fn sessions(
    store: &Store,
    project_id: &str,
    range: (i64, i64),
    only: Option<&str>,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<Vec<SessionRow>, ApiError> {
    let mut sql = Sql::new(
        "SELECT session AS session_id, max(user) AS user_id, count() AS traces, \
         sum(n_spans) AS spans, sum(n_errors) AS errors, sum(tokens) AS tokens, \
         toString(sum(cost)) AS total_cost, min(start_ns) AS first_ns, max(end_ns) AS last_ns \
         FROM (",
    );
    sql.append(per_trace(project_id, range.0, range.1))
        .push(") WHERE session != ''");
    if let Some(id) = only {
        sql.push_bound(" AND session = ?", [s(id)]);
    }
    sql.push(" GROUP BY session");
    keyset(&mut sql, "last_ns", "session_id", after)?;
    sql.push(&format!(
        " ORDER BY last_ns DESC, session_id DESC LIMIT {limit}"
    ));
    store.fetch_all(sql).await
}

/// Someone the application served: the traces sharing a user id.
#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
pub struct UserRow {
    pub user_id: String,
    pub traces: u64,
    pub sessions: u64,
    pub spans: i64,
    pub errors: i64,
    pub tokens: i64,
    pub total_cost: String,
    pub first_ns: i64,
    pub last_ns: i64,
}

/// Users by most recent activity, keyset-paged on (last activity, id).
pub async fn users(
    store: &Store,
    project_id: &str,
    range: (i64, i64),
    only: Option<&str>,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<Vec<UserRow>, ApiError> {
    let mut sql = Sql::new(
        "SELECT user AS user_id, count() AS traces, uniqExactIf(session, session != '') AS sessions, \
         sum(n_spans) AS spans, sum(n_errors) AS errors, sum(tokens) AS tokens, \
         toString(sum(cost)) AS total_cost, min(start_ns) AS first_ns, max(end_ns) AS last_ns \
         FROM (",
    );
    sql.append(per_trace(project_id, range.0, range.1))
        .push(") WHERE user != ''");
    if let Some(id) = only {
        sql.push_bound(" AND user = ?", [s(id)]);
    }
    sql.push(" GROUP BY user");
    keyset(&mut sql, "last_ns", "user_id", after)?;
    sql.push(&format!(
        " ORDER BY last_ns DESC, user_id DESC LIMIT {limit}"
    ));
    store.fetch_all(sql).await
}

fn keyset(sql: &mut Sql, value: &str, key: &str, after: Option<&Cursor>) -> Result<(), ApiError> {
    if let Some(cursor) = after {
        let v: i64 = cursor.value.parse().map_err(|_| {
            ApiError::BadUserInput(format!("invalid cursor value `{}`", cursor.value))
        })?;
        sql.push_bound(
            &format!(" HAVING ({value}, {key}) < (?, ?)"),
            [i(v), s(cursor.key.clone())],
        );
    }
    Ok(())
}

/// How metrics are bucketed in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Minute,
    Hour,
    Day,
}

impl Granularity {
    pub fn seconds(self) -> i64 {
        match self {
            Granularity::Minute => 60,
            Granularity::Hour => 3_600,
            Granularity::Day => 86_400,
        }
    }
}

/// What metrics are broken down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    None,
    Model,
    Provider,
    Kind,
    Name,
}

impl GroupBy {
    fn expr(self) -> &'static str {
        match self {
            GroupBy::None => "''",
            GroupBy::Model => "toString(model)",
            GroupBy::Provider => "toString(provider)",
            GroupBy::Kind => "toString(kind)",
            GroupBy::Name => "name",
        }
    }
}

/// One bucket of one group. Counts and sums are `sign`-weighted, hence signed.
#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
pub struct MetricRow {
    pub bucket: i64,
    pub group_key: String,
    pub spans: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub total_cost: String,
    pub unknown_cost_spans: i64,
    pub latency: Vec<f64>,
}

/// Metrics over spans (of `kinds`, when given) in `[from, to)`.
///
/// No `FINAL`: merging every part of a month by the full sorting key costs several times the
/// aggregation itself. Sums weight each row by `sign`, so a replaced span's cancelled row and
/// its replacement count once, as in `traces` and `usage_hourly`. Percentiles read the `+1`
/// rows: until merges collapse a replacement, its old and new durations both count.
pub fn metrics_sql(
    project_id: &str,
    range: (i64, i64),
    granularity: Granularity,
    group_by: GroupBy,
    kinds: &[String],
) -> Sql {
    let mut sql = Sql::new(&format!(
        "SELECT toInt64(toUnixTimestamp(toStartOfInterval(toDateTime(start_time, 'UTC'), \
         INTERVAL {} SECOND))) AS bucket, {} AS group_key, \
         toInt64(sum(sign)) AS spans, toInt64(sumIf(sign, status_code = 'error')) AS errors, \
         toInt64(sum(sign * input_tokens)) AS input_tokens, \
         toInt64(sum(sign * output_tokens)) AS output_tokens, \
         toInt64(sum(sign * cache_read_tokens)) AS cache_read_tokens, \
         toInt64(sum(sign * cache_write_tokens)) AS cache_write_tokens, \
         toInt64(sum(sign * reasoning_tokens)) AS reasoning_tokens, \
         toString(sum(sign * ifNull(total_cost, toDecimal64(0, 12)))) AS total_cost, \
         toInt64(sumIf(sign, cost_status = 'unknown_model')) AS unknown_cost_spans, \
         arrayMap(q -> q / 1e6, quantilesIf(0.5, 0.95, 0.99)(duration_ns, sign = 1)) AS latency \
         FROM spans WHERE project_id = ? \
         AND start_time >= fromUnixTimestamp64Nano(?) AND start_time < fromUnixTimestamp64Nano(?)",
        granularity.seconds(),
        group_by.expr()
    ));
    sql.binds = vec![s(project_id), i(range.0), i(range.1)];
    if !kinds.is_empty() {
        sql.push_bound(" AND has(?, toString(kind))", [Bind::Strs(kinds.to_vec())]);
    }
    sql.push(
        " GROUP BY bucket, group_key HAVING spans != 0 ORDER BY bucket, group_key LIMIT 100000",
    );
    sql
}

pub async fn metrics(store: &Store, sql: Sql) -> Result<Vec<MetricRow>, ApiError> {
    store.fetch_all(sql).await
}

/// One day of a month's usage.
#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
pub struct UsageRow {
    pub day: String,
    pub spans: i64,
    pub bytes: i64,
    pub llm_spans: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub total_cost: String,
    pub unknown_cost_spans: i64,
}

/// Usage of the month starting at `month_start` (`YYYY-MM-01`), per day.
pub async fn usage(
    store: &Store,
    project_id: &str,
    month_start: &str,
) -> Result<Vec<UsageRow>, ApiError> {
    let mut sql = Sql::default();
    sql.push_bound(
        "SELECT toString(toDate(hour)) AS day, sum(spans) AS spans, sum(bytes) AS bytes, \
         sum(llm_spans) AS llm_spans, sum(input_tokens) AS input_tokens, \
         sum(output_tokens) AS output_tokens, sum(cache_read_tokens) AS cache_read_tokens, \
         sum(cache_write_tokens) AS cache_write_tokens, sum(reasoning_tokens) AS reasoning_tokens, \
         toString(sum(total_cost)) AS total_cost, sum(unknown_cost_spans) AS unknown_cost_spans \
         FROM usage_hourly WHERE project_id = ? AND hour >= toDateTime(toDate(?), 'UTC') \
         AND hour < toDateTime(addMonths(toDate(?), 1), 'UTC') \
         GROUP BY day HAVING spans != 0 ORDER BY day",
        [s(project_id), s(month_start), s(month_start)],
    );
    store.fetch_all(sql).await
}

/// A field a filter can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Name,
    Model,
    Provider,
    Kind,
    Service,
    Session,
    User,
    Tag,
    CostStatus,
    /// The values of one attribute key.
    Attribute,
}

impl Field {
    fn expr(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Model => "toString(model)",
            Field::Provider => "toString(provider)",
            Field::Kind => "toString(kind)",
            Field::Service => "toString(service)",
            Field::Session => "session_id",
            Field::User => "user_id",
            Field::Tag => "toString(arrayJoin(tags))",
            Field::CostStatus => "toString(cost_status)",
            Field::Attribute => "attributes[?]",
        }
    }
}

/// A value and how many spans carry it.
#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
pub struct ValueCount {
    pub value: String,
    pub count: u64,
}

/// The most common values of `field` (for `Attribute`, of attribute `key`) starting with
/// `prefix`, among spans that started after `since_ns`.
pub async fn values(
    store: &Store,
    project_id: &str,
    field: Field,
    key: Option<&str>,
    prefix: &str,
    since_ns: i64,
    limit: usize,
) -> Result<Vec<ValueCount>, ApiError> {
    let mut sql = Sql::new(&format!(
        "SELECT {} AS value, count() AS count",
        field.expr()
    ));
    if field == Field::Attribute {
        let key = key.ok_or_else(|| {
            ApiError::BadUserInput("`key` is required for the ATTRIBUTE field".into())
        })?;
        sql.binds.push(s(key));
    }
    sql.push_bound(
        " FROM spans WHERE project_id = ? AND start_time >= fromUnixTimestamp64Nano(?) \
         AND sign = 1 AND value != '' AND startsWith(value, ?) \
         GROUP BY value ORDER BY count DESC, value LIMIT ?",
        [
            s(project_id),
            i(since_ns),
            s(prefix),
            i(i64::try_from(limit).unwrap_or(i64::MAX)),
        ],
    );
    store.fetch_all(sql).await
}

/// The attribute keys seen on spans that started after `since_ns`, most common first.
pub async fn attribute_keys(
    store: &Store,
    project_id: &str,
    since_ns: i64,
    limit: usize,
) -> Result<Vec<ValueCount>, ApiError> {
    let mut sql = Sql::default();
    sql.push_bound(
        "SELECT toString(arrayJoin(mapKeys(attributes))) AS value, count() AS count \
         FROM spans WHERE project_id = ? AND start_time >= fromUnixTimestamp64Nano(?) AND sign = 1 \
         GROUP BY value ORDER BY count DESC, value LIMIT ?",
        [
            s(project_id),
            i(since_ns),
            i(i64::try_from(limit).unwrap_or(i64::MAX)),
        ],
    );
    store.fetch_all(sql).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_bind_every_value() {
        let sql = metrics_sql(
            "p",
            (0, 86_400_000_000_000),
            Granularity::Hour,
            GroupBy::Model,
            &["llm".into()],
        );
        assert_eq!(
            sql.text.matches('?').count(),
            sql.binds.len(),
            "{}",
            sql.text
        );
        assert!(sql.text.contains("INTERVAL 3600 SECOND"));
        assert!(sql.text.contains("toString(model) AS group_key"));
    }
}
