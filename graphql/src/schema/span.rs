//! The `Span` type, for stored and live spans alike. A stored span starts as a skeleton (no
//! message bodies, attributes or events); asking for any of those loads the full row through a
//! per-request [`SpanLoader`], one query for every span the request opens.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, Json, Object, SimpleObject};
use spindle_schemas::canonical::EnrichedSpan;

use super::types::{CostStatus, DateTime, Decimal, KeyValue, SpanKind, StatusCode, Tokens};
use crate::error::ApiError;
use crate::store::{Store, spans};

/// (project, trace, span).
pub type SpanKey = (String, String, String);

/// Loads full spans in batches.
pub struct SpanLoader {
    store: Store,
}

impl SpanLoader {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

impl Loader<SpanKey> for SpanLoader {
    type Value = Arc<EnrichedSpan>;
    type Error = Arc<ApiError>;

    async fn load(&self, keys: &[SpanKey]) -> Result<HashMap<SpanKey, Self::Value>, Self::Error> {
        let mut by_project: HashMap<&str, Vec<(String, String)>> = HashMap::new();
        for (project, trace, span) in keys {
            by_project
                .entry(project)
                .or_default()
                .push((trace.clone(), span.clone()));
        }
        let mut found = HashMap::new();
        for (project, pairs) in by_project {
            for span in spans::details(&self.store, project, &pairs)
                .await
                .map_err(Arc::new)?
            {
                found.insert(
                    (
                        project.to_owned(),
                        span.trace_id.clone(),
                        span.span_id.clone(),
                    ),
                    Arc::new(span),
                );
            }
        }
        Ok(found)
    }
}

/// A span with its place in the trace tree (when it was read as part of one).
#[derive(Clone)]
pub struct SpanNode {
    pub span: Arc<EnrichedSpan>,
    /// Whether `span` holds every column (live spans and spans read in full do).
    pub full: bool,
    pub depth: Option<i32>,
    pub order: Option<i32>,
}

impl SpanNode {
    pub fn full(span: Arc<EnrichedSpan>) -> Self {
        Self {
            span,
            full: true,
            depth: None,
            order: None,
        }
    }

    async fn detail(&self, ctx: &Context<'_>) -> Result<Arc<EnrichedSpan>, ApiError> {
        if self.full {
            return Ok(self.span.clone());
        }
        let not_found = || {
            ApiError::NotFound(format!(
                "span `{}` of trace `{}` is no longer stored",
                self.span.span_id, self.span.trace_id
            ))
        };
        let Some(loader) = ctx.data_opt::<DataLoader<SpanLoader>>() else {
            // Subscriptions live longer than a request: they read without a cache.
            let state = ctx.data_unchecked::<super::State>();
            let key = (self.span.trace_id.clone(), self.span.span_id.clone());
            let found = spans::details(&state.store, &self.span.project_id, &[key]).await?;
            return found.into_iter().next().map(Arc::new).ok_or_else(not_found);
        };
        let key = (
            self.span.project_id.clone(),
            self.span.trace_id.clone(),
            self.span.span_id.clone(),
        );
        loader
            .load_one(key)
            .await
            .map_err(|e| (*e).clone())?
            .ok_or_else(not_found)
    }
}

/// The skeleton fields' values, shared by the resolvers below and by the big-page renderer
/// ([`super::span_page`]), so both answer alike.
impl SpanNode {
    pub(super) fn parent_id(&self) -> Option<&str> {
        non_empty(&self.span.parent_span_id)
    }
    pub(super) fn kind_of(&self) -> SpanKind {
        SpanKind::from_canonical(self.span.kind)
    }
    pub(super) fn latency_ms_of(&self) -> f64 {
        self.span.duration_ns as f64 / 1e6
    }
    fn status_of(&self) -> Status {
        Status {
            code: StatusCode::from_canonical(self.span.status_code),
            message: self.span.status_message.clone(),
        }
    }
    pub(super) fn tokens_of(&self) -> Tokens {
        let s = &self.span;
        Tokens::new(
            signed(s.input_tokens),
            signed(s.output_tokens),
            signed(s.cache_read_tokens),
            signed(s.cache_write_tokens),
            signed(s.reasoning_tokens),
        )
    }
    fn cost_of(&self) -> Cost {
        let s = &self.span;
        Cost {
            input: s.input_cost_nanos.map(Decimal::from_nanos),
            output: s.output_cost_nanos.map(Decimal::from_nanos),
            total: s.total_cost_nanos.map(Decimal::from_nanos),
            status: CostStatus::from_canonical(s.cost_status),
        }
    }
}

/// `None` for an empty text (an absent value in the store).
pub(super) fn non_empty(text: &str) -> Option<&str> {
    Some(text).filter(|t| !t.is_empty())
}

/// A span's status.
#[derive(SimpleObject)]
pub struct Status {
    pub code: StatusCode,
    pub message: String,
}

/// What a span cost, in USD; null parts are unknown (see `status`), never 0.
#[derive(SimpleObject)]
pub struct Cost {
    /// Uncached input, cache reads and cache writes.
    pub input: Option<Decimal>,
    /// Output and reasoning.
    pub output: Option<Decimal>,
    pub total: Option<Decimal>,
    pub status: CostStatus,
}

/// Something that happened during a span.
#[derive(SimpleObject)]
pub struct SpanEventObject {
    pub time: DateTime,
    pub name: String,
    pub attributes: Vec<KeyValue>,
}

/// A link to another span.
#[derive(SimpleObject)]
pub struct SpanLinkObject {
    pub trace_id: String,
    pub span_id: String,
    pub attributes: Vec<KeyValue>,
}

fn key_values(map: &std::collections::BTreeMap<String, String>) -> Vec<KeyValue> {
    map.iter()
        .map(|(key, value)| KeyValue {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

pub(super) fn nanos(n: u64) -> DateTime {
    DateTime(i64::try_from(n).unwrap_or(i64::MAX))
}

fn messages(text: &str) -> Option<Json<serde_json::Value>> {
    if text.is_empty() {
        return None;
    }
    // A truncated payload may not parse: hand it over as a string rather than lose it.
    Some(Json(serde_json::from_str(text).unwrap_or_else(|_| {
        serde_json::Value::String(text.to_owned())
    })))
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One span.
#[Object(name = "Span")]
impl SpanNode {
    async fn trace_id(&self) -> &str {
        &self.span.trace_id
    }
    async fn span_id(&self) -> &str {
        &self.span.span_id
    }
    /// Null for a root span.
    async fn parent_span_id(&self) -> Option<&str> {
        self.parent_id()
    }
    /// Distance from the root in the trace tree (0 for roots and orphans).
    async fn depth(&self) -> Option<i32> {
        self.depth
    }
    /// Position in the tree's depth-first order, children by start time.
    async fn order(&self) -> Option<i32> {
        self.order
    }
    async fn name(&self) -> &str {
        &self.span.name
    }
    async fn kind(&self) -> SpanKind {
        self.kind_of()
    }
    async fn service(&self) -> &str {
        &self.span.service
    }
    async fn start_time(&self) -> DateTime {
        nanos(self.span.start_time_unix_nano)
    }
    async fn end_time(&self) -> DateTime {
        nanos(self.span.end_time_unix_nano)
    }
    async fn latency_ms(&self) -> f64 {
        self.latency_ms_of()
    }
    async fn status(&self) -> Status {
        self.status_of()
    }
    async fn model(&self) -> Option<&str> {
        non_empty(&self.span.model)
    }
    async fn provider(&self) -> Option<&str> {
        non_empty(&self.span.provider)
    }
    async fn tokens(&self) -> Tokens {
        self.tokens_of()
    }
    async fn cost(&self) -> Cost {
        self.cost_of()
    }
    async fn session_id(&self) -> Option<&str> {
        non_empty(&self.span.session_id)
    }
    async fn user_id(&self) -> Option<&str> {
        non_empty(&self.span.user_id)
    }
    async fn tool_name(&self) -> Option<&str> {
        non_empty(&self.span.tool_name)
    }
    /// Canonical messages `[{role, content, tool_calls?, tool_call_id?}]`; loads the full span.
    async fn input_messages(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Option<Json<serde_json::Value>>, ApiError> {
        Ok(messages(&self.detail(ctx).await?.input_messages))
    }
    async fn output_messages(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Option<Json<serde_json::Value>>, ApiError> {
        Ok(messages(&self.detail(ctx).await?.output_messages))
    }
    /// Whether messages or tool arguments were cut to fit the row (the archive has them whole).
    async fn messages_truncated(&self, ctx: &Context<'_>) -> Result<bool, ApiError> {
        Ok(self.detail(ctx).await?.messages_truncated)
    }
    async fn tool_call_id(&self, ctx: &Context<'_>) -> Result<Option<String>, ApiError> {
        Ok(Some(self.detail(ctx).await?.tool_call_id.clone()).filter(|s| !s.is_empty()))
    }
    async fn tool_arguments(&self, ctx: &Context<'_>) -> Result<Option<String>, ApiError> {
        Ok(Some(self.detail(ctx).await?.tool_arguments.clone()).filter(|s| !s.is_empty()))
    }
    async fn tags(&self, ctx: &Context<'_>) -> Result<Vec<String>, ApiError> {
        Ok(self.detail(ctx).await?.tags.clone())
    }
    async fn attributes(&self, ctx: &Context<'_>) -> Result<Vec<KeyValue>, ApiError> {
        Ok(key_values(&self.detail(ctx).await?.attributes))
    }
    async fn resource_attributes(&self, ctx: &Context<'_>) -> Result<Vec<KeyValue>, ApiError> {
        Ok(key_values(&self.detail(ctx).await?.resource_attributes))
    }
    async fn events(&self, ctx: &Context<'_>) -> Result<Vec<SpanEventObject>, ApiError> {
        Ok(self
            .detail(ctx)
            .await?
            .events
            .iter()
            .map(|e| SpanEventObject {
                time: nanos(e.time_unix_nano),
                name: e.name.clone(),
                attributes: key_values(&e.attributes),
            })
            .collect())
    }
    async fn links(&self, ctx: &Context<'_>) -> Result<Vec<SpanLinkObject>, ApiError> {
        Ok(self
            .detail(ctx)
            .await?
            .links
            .iter()
            .map(|l| SpanLinkObject {
                trace_id: l.trace_id.clone(),
                span_id: l.span_id.clone(),
                attributes: key_values(&l.attributes),
            })
            .collect())
    }
    /// Where the request that carried the span is archived (`s3://bucket/key#index`).
    async fn raw_pointer(&self, ctx: &Context<'_>) -> Result<Option<String>, ApiError> {
        Ok(Some(self.detail(ctx).await?.raw_pointer()).filter(|s| !s.is_empty()))
    }
}
