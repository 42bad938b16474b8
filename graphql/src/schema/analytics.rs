//! Sessions, users, dashboard metrics, monthly usage and filter vocabularies.

use std::sync::Arc;

use async_graphql::{ComplexObject, Context, Enum, Object, SimpleObject};

use super::State;
use super::span::SpanNode;
use super::types::{DateTime, Decimal, PageInfo, SpanKind, TimeRange, Tokens, page_size};
use crate::auth;
use crate::cursor::Cursor;
use crate::error::ApiError;
use crate::store::analytics::{self as store, Field, Granularity, GroupBy, SessionRow, UserRow};

/// Buckets one metrics query may return per group.
const MAX_BUCKETS: i64 = 2_000;
/// How far back filter values are looked up.
const FILTER_LOOKBACK_NS: i64 = 30 * 86_400 * 1_000_000_000;

/// A conversation: the traces that share a session id.
#[derive(Clone, SimpleObject)]
#[graphql(complex)]
pub struct Session {
    pub id: String,
    pub user_id: Option<String>,
    pub trace_count: i64,
    pub span_count: i64,
    pub error_count: i64,
    pub total_tokens: i64,
    pub total_cost: Decimal,
    pub first_seen: DateTime,
    pub last_seen: DateTime,
    #[graphql(skip)]
    project_id: String,
}

#[ComplexObject]
impl Session {
    /// The LLM calls of the session in order, with their messages.
    #[graphql(
        complexity = "usize::try_from(first.unwrap_or(50)).unwrap_or(1).max(1) * child_complexity"
    )]
    async fn turns(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        offset: Option<i32>,
    ) -> Result<Vec<SpanNode>, ApiError> {
        let state = ctx.data_unchecked::<State>();
        let first = page_size(
            first,
            state.limits.default_page_size,
            state.limits.max_page_size,
        )?;
        let offset = usize::try_from(offset.unwrap_or(0))
            .map_err(|_| ApiError::BadUserInput("`offset` must not be negative".into()))?;
        let spans = crate::store::spans::session_turns(
            &state.store,
            &self.project_id,
            &self.id,
            offset,
            first,
        )
        .await?;
        Ok(spans
            .into_iter()
            .map(|s| SpanNode::full(Arc::new(s)))
            .collect())
    }
}

impl Session {
    fn from_row(project_id: &str, row: SessionRow) -> Self {
        Session {
            id: row.session_id,
            user_id: Some(row.user_id).filter(|u| !u.is_empty()),
            trace_count: i64::try_from(row.traces).unwrap_or(i64::MAX),
            span_count: row.spans,
            error_count: row.errors,
            total_tokens: row.tokens,
            total_cost: Decimal(row.total_cost),
            first_seen: DateTime(row.first_ns),
            last_seen: DateTime(row.last_ns),
            project_id: project_id.to_owned(),
        }
    }
}

/// Someone the application served.
#[derive(Clone, SimpleObject)]
pub struct User {
    pub id: String,
    pub trace_count: i64,
    pub session_count: i64,
    pub span_count: i64,
    pub error_count: i64,
    pub total_tokens: i64,
    pub total_cost: Decimal,
    pub first_seen: DateTime,
    pub last_seen: DateTime,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User {
            id: row.user_id,
            trace_count: i64::try_from(row.traces).unwrap_or(i64::MAX),
            session_count: i64::try_from(row.sessions).unwrap_or(i64::MAX),
            span_count: row.spans,
            error_count: row.errors,
            total_tokens: row.tokens,
            total_cost: Decimal(row.total_cost),
            first_seen: DateTime(row.first_ns),
            last_seen: DateTime(row.last_ns),
        }
    }
}

#[derive(SimpleObject)]
pub struct SessionConnection {
    pub nodes: Vec<Session>,
    pub page_info: PageInfo,
}

#[derive(SimpleObject)]
pub struct UserConnection {
    pub nodes: Vec<User>,
    pub page_info: PageInfo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum MetricsGranularity {
    Minute,
    Hour,
    Day,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Default)]
pub enum MetricsGroupBy {
    #[default]
    None,
    Model,
    Provider,
    Kind,
    Name,
}

/// One time bucket of one group.
#[derive(SimpleObject)]
pub struct MetricPoint {
    /// Start of the bucket.
    pub time: DateTime,
    /// The model, provider, kind or name; empty when not grouped.
    pub group: String,
    pub span_count: i64,
    pub error_count: i64,
    pub error_rate: f64,
    pub tokens: Tokens,
    pub total_cost: Decimal,
    pub unknown_cost_spans: i64,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    pub latency_p99_ms: f64,
}

/// A day of usage.
#[derive(SimpleObject)]
pub struct UsageDay {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub spans: i64,
    pub bytes: i64,
    pub llm_spans: i64,
    pub tokens: Tokens,
    pub total_cost: Decimal,
    pub unknown_cost_spans: i64,
}

/// What a project used in a month.
#[derive(SimpleObject)]
pub struct Usage {
    /// `YYYY-MM`.
    pub month: String,
    pub spans: i64,
    pub bytes: i64,
    pub llm_spans: i64,
    pub tokens: Tokens,
    pub total_cost: Decimal,
    pub unknown_cost_spans: i64,
    pub days: Vec<UsageDay>,
}

/// A field traces can be filtered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum FilterField {
    Name,
    Model,
    Provider,
    Kind,
    Service,
    Session,
    User,
    Tag,
    CostStatus,
    /// An attribute; name the key.
    Attribute,
}

impl FilterField {
    fn store(self) -> Field {
        match self {
            FilterField::Name => Field::Name,
            FilterField::Model => Field::Model,
            FilterField::Provider => Field::Provider,
            FilterField::Kind => Field::Kind,
            FilterField::Service => Field::Service,
            FilterField::Session => Field::Session,
            FilterField::User => Field::User,
            FilterField::Tag => Field::Tag,
            FilterField::CostStatus => Field::CostStatus,
            FilterField::Attribute => Field::Attribute,
        }
    }
}

/// A filter a UI can offer.
#[derive(SimpleObject)]
pub struct FilterFieldInfo {
    pub field: FilterField,
    /// The `TraceFilterInput` field that takes it.
    pub filter_input: String,
    /// For `ATTRIBUTE`: the attribute key; how many recent spans carry it.
    pub key: Option<String>,
    pub count: Option<i64>,
}

/// A value a filter can take and how many recent spans carry it.
#[derive(SimpleObject)]
pub struct FilterValue {
    pub value: String,
    pub count: i64,
}

fn months(month: &str) -> Result<String, ApiError> {
    let ok = month.len() == 7
        && month.as_bytes()[4] == b'-'
        && month[..4].bytes().all(|b| b.is_ascii_digit())
        && matches!(month[5..].parse::<u8>(), Ok(1..=12));
    if ok {
        Ok(format!("{month}-01"))
    } else {
        Err(ApiError::BadUserInput(format!(
            "`{month}` is not a month (`YYYY-MM`)"
        )))
    }
}

fn cursor_of(ordering: &str, last_ns: i64, key: &str) -> String {
    Cursor {
        ordering: ordering.to_owned(),
        value: last_ns.to_string(),
        key: key.to_owned(),
    }
    .encode()
}

#[derive(Default)]
pub struct AnalyticsQuery;

#[Object]
impl AnalyticsQuery {
    /// Sessions active in the range (default the last seven days), most recent first.
    #[graphql(
        complexity = "usize::try_from(first.unwrap_or(50)).unwrap_or(1).max(1) * child_complexity"
    )]
    async fn sessions(
        &self,
        ctx: &Context<'_>,
        project_id: String,
        time_range: Option<TimeRange>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<SessionConnection, ApiError> {
        auth::project(ctx, &project_id)?;
        let state = ctx.data_unchecked::<State>();
        let first = page_size(
            first,
            state.limits.default_page_size,
            state.limits.max_page_size,
        )?;
        let range = TimeRange::resolve(time_range)?;
        let after = after.map(|t| Cursor::decode(&t, "sessions")).transpose()?;
        let mut rows = store::sessions(
            &state.store,
            &project_id,
            range,
            None,
            after.as_ref(),
            first + 1,
        )
        .await?;
        let has_next_page = rows.len() > first;
        rows.truncate(first);
        let end_cursor = rows
            .last()
            .map(|r| cursor_of("sessions", r.last_ns, &r.session_id));
        Ok(SessionConnection {
            nodes: rows
                .into_iter()
                .map(|r| Session::from_row(&project_id, r))
                .collect(),
            page_info: PageInfo {
                has_next_page,
                end_cursor,
            },
        })
    }

    /// One session; null when no trace in the range carries it.
    async fn session(
        &self,
        ctx: &Context<'_>,
        project_id: String,
        session_id: String,
        time_range: Option<TimeRange>,
    ) -> Result<Option<Session>, ApiError> {
        auth::project(ctx, &project_id)?;
        let state = ctx.data_unchecked::<State>();
        let range = TimeRange::resolve(time_range)?;
        let rows =
            store::sessions(&state.store, &project_id, range, Some(&session_id), None, 1).await?;
        Ok(rows
            .into_iter()
            .next()
            .map(|r| Session::from_row(&project_id, r)))
    }

    /// Users active in the range (default the last seven days), most recent first.
    #[graphql(
        complexity = "usize::try_from(first.unwrap_or(50)).unwrap_or(1).max(1) * child_complexity"
    )]
    async fn users(
        &self,
        ctx: &Context<'_>,
        project_id: String,
        time_range: Option<TimeRange>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<UserConnection, ApiError> {
        auth::project(ctx, &project_id)?;
        let state = ctx.data_unchecked::<State>();
        let first = page_size(
            first,
            state.limits.default_page_size,
            state.limits.max_page_size,
        )?;
        let range = TimeRange::resolve(time_range)?;
        let after = after.map(|t| Cursor::decode(&t, "users")).transpose()?;
        let mut rows = store::users(
            &state.store,
            &project_id,
            range,
            None,
            after.as_ref(),
            first + 1,
        )
        .await?;
        let has_next_page = rows.len() > first;
        rows.truncate(first);
        let end_cursor = rows
            .last()
            .map(|r| cursor_of("users", r.last_ns, &r.user_id));
        Ok(UserConnection {
            nodes: rows.into_iter().map(User::from).collect(),
            page_info: PageInfo {
                has_next_page,
                end_cursor,
            },
        })
    }

    /// One user with their stats; null when no trace in the range carries the id.
    async fn user(
        &self,
        ctx: &Context<'_>,
        project_id: String,
        user_id: String,
        time_range: Option<TimeRange>,
    ) -> Result<Option<User>, ApiError> {
        auth::project(ctx, &project_id)?;
        let state = ctx.data_unchecked::<State>();
        let range = TimeRange::resolve(time_range)?;
        let rows = store::users(&state.store, &project_id, range, Some(&user_id), None, 1).await?;
        Ok(rows.into_iter().next().map(User::from))
    }

    /// Time series for dashboards: counts, tokens, cost, latency percentiles and error rate
    /// per bucket, optionally per model, provider, kind or name, over spans (of `kinds`).
    async fn metrics(
        &self,
        ctx: &Context<'_>,
        project_id: String,
        time_range: TimeRange,
        granularity: MetricsGranularity,
        #[graphql(default)] group_by: MetricsGroupBy,
        kinds: Option<Vec<SpanKind>>,
    ) -> Result<Vec<MetricPoint>, ApiError> {
        auth::project(ctx, &project_id)?;
        let state = ctx.data_unchecked::<State>();
        let range = TimeRange::resolve(Some(time_range))?;
        let granularity = match granularity {
            MetricsGranularity::Minute => Granularity::Minute,
            MetricsGranularity::Hour => Granularity::Hour,
            MetricsGranularity::Day => Granularity::Day,
        };
        let buckets = (range.1 - range.0) / (granularity.seconds() * 1_000_000_000);
        if buckets > MAX_BUCKETS {
            return Err(ApiError::BadUserInput(format!(
                "{buckets} buckets asked; at most {MAX_BUCKETS}: choose a coarser granularity"
            )));
        }
        let group_by = match group_by {
            MetricsGroupBy::None => GroupBy::None,
            MetricsGroupBy::Model => GroupBy::Model,
            MetricsGroupBy::Provider => GroupBy::Provider,
            MetricsGroupBy::Kind => GroupBy::Kind,
            MetricsGroupBy::Name => GroupBy::Name,
        };
        let kinds: Vec<String> = kinds
            .unwrap_or_default()
            .into_iter()
            .map(|k| k.stored().to_owned())
            .collect();
        let sql = store::metrics_sql(&project_id, range, granularity, group_by, &kinds);
        let rows = store::metrics(&state.store, sql).await?;
        Ok(rows
            .into_iter()
            .map(|r| MetricPoint {
                time: DateTime(r.bucket.saturating_mul(1_000_000_000)),
                group: r.group_key,
                span_count: r.spans,
                error_count: r.errors,
                error_rate: if r.spans > 0 {
                    r.errors as f64 / r.spans as f64
                } else {
                    0.0
                },
                tokens: Tokens::new(
                    r.input_tokens,
                    r.output_tokens,
                    r.cache_read_tokens,
                    r.cache_write_tokens,
                    r.reasoning_tokens,
                ),
                total_cost: Decimal(r.total_cost),
                unknown_cost_spans: r.unknown_cost_spans,
                latency_p50_ms: r.latency.first().copied().unwrap_or(0.0),
                latency_p95_ms: r.latency.get(1).copied().unwrap_or(0.0),
                latency_p99_ms: r.latency.get(2).copied().unwrap_or(0.0),
            })
            .collect())
    }

    /// What the project used in a month (`YYYY-MM`, UTC), per day.
    async fn usage(
        &self,
        ctx: &Context<'_>,
        project_id: String,
        month: String,
    ) -> Result<Usage, ApiError> {
        auth::project(ctx, &project_id)?;
        let state = ctx.data_unchecked::<State>();
        let start = months(&month)?;
        let rows = store::usage(&state.store, &project_id, &start).await?;
        let days: Vec<UsageDay> = rows
            .into_iter()
            .map(|r| UsageDay {
                day: r.day,
                spans: r.spans,
                bytes: r.bytes,
                llm_spans: r.llm_spans,
                tokens: Tokens::new(
                    r.input_tokens,
                    r.output_tokens,
                    r.cache_read_tokens,
                    r.cache_write_tokens,
                    r.reasoning_tokens,
                ),
                total_cost: Decimal(r.total_cost),
                unknown_cost_spans: r.unknown_cost_spans,
            })
            .collect();
        let sum = |f: fn(&UsageDay) -> i64| days.iter().map(f).sum::<i64>();
        let cost_nanos: i64 = days
            .iter()
            .filter_map(|d| spindle_schemas::prices::usd_to_nanos(&d.total_cost.0))
            .sum();
        Ok(Usage {
            month,
            spans: sum(|d| d.spans),
            bytes: sum(|d| d.bytes),
            llm_spans: sum(|d| d.llm_spans),
            tokens: Tokens::new(
                sum(|d| d.tokens.input),
                sum(|d| d.tokens.output),
                sum(|d| d.tokens.cache_read),
                sum(|d| d.tokens.cache_write),
                sum(|d| d.tokens.reasoning),
            ),
            total_cost: Decimal::from_nanos(cost_nanos),
            unknown_cost_spans: sum(|d| d.unknown_cost_spans),
            days,
        })
    }

    /// The filters a UI can offer: the fixed fields, then the attribute keys seen in the last
    /// 30 days, most common first.
    async fn filter_fields(
        &self,
        ctx: &Context<'_>,
        project_id: String,
    ) -> Result<Vec<FilterFieldInfo>, ApiError> {
        auth::project(ctx, &project_id)?;
        let state = ctx.data_unchecked::<State>();
        let fixed = [
            (FilterField::Name, "name"),
            (FilterField::Model, "models"),
            (FilterField::Provider, "providers"),
            (FilterField::Kind, "kinds"),
            (FilterField::Session, "sessionId"),
            (FilterField::User, "userId"),
            (FilterField::Tag, "tags"),
            (FilterField::CostStatus, "costStatus"),
        ];
        let mut fields: Vec<FilterFieldInfo> = fixed
            .into_iter()
            .map(|(field, input)| FilterFieldInfo {
                field,
                filter_input: input.to_owned(),
                key: None,
                count: None,
            })
            .collect();
        let since = super::types::now_nanos() - FILTER_LOOKBACK_NS;
        for key in store::attribute_keys(&state.store, &project_id, since, 200).await? {
            fields.push(FilterFieldInfo {
                field: FilterField::Attribute,
                filter_input: "attributes".into(),
                key: Some(key.value),
                count: Some(i64::try_from(key.count).unwrap_or(i64::MAX)),
            });
        }
        Ok(fields)
    }

    /// The most common values of a field in the last 30 days, optionally by prefix.
    async fn filter_values(
        &self,
        ctx: &Context<'_>,
        project_id: String,
        field: FilterField,
        key: Option<String>,
        #[graphql(default)] prefix: String,
        first: Option<i32>,
    ) -> Result<Vec<FilterValue>, ApiError> {
        auth::project(ctx, &project_id)?;
        let state = ctx.data_unchecked::<State>();
        let first = page_size(
            first,
            state.limits.default_page_size,
            state.limits.max_page_size,
        )?;
        let since = super::types::now_nanos() - FILTER_LOOKBACK_NS;
        let values = store::values(
            &state.store,
            &project_id,
            field.store(),
            key.as_deref(),
            &prefix,
            since,
            first,
        )
        .await?;
        Ok(values
            .into_iter()
            .map(|v| FilterValue {
                value: v.value,
                count: i64::try_from(v.count).unwrap_or(i64::MAX),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_checked() {
        assert_eq!(months("2026-11").expect("valid"), "2026-11-01");
        assert!(months("2026-13").is_err());
        assert!(months("2026-1").is_err());
        assert!(months("'; --").is_err());
    }
}
